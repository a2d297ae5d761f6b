// The op table's shape ops: transpose, reshape, concatenation, selections and picks,
// strided selection, and the identity to_device.
// Kernels on column-major float32 buffers; backends/reference_numpy is the specification:
// size-1 data dims and batch 1 broadcast, backward sums over broadcast dims, and backward
// kernels accumulate into dx, so the executor needs no temporaries.
#include <Eigen/Dense>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common.h"
#include "kernel_util.h"

namespace dy {
namespace ku {

// ------------------------------------------------------------------ shape ops

// Strides of x visited in y's index order for transpose(perm).
Str perm_str(const Shape& x, const Attrs& a) {
  std::vector<int64_t> perm = int_list(a, attr::transpose::dims);
  if (perm.size() > size_t(MAXD)) fail("transpose supports at most 7 dimensions");
  for (int64_t k : perm)
    if (k < 0 || k >= int64_t(perm.size())) fail("transpose: not a permutation");
  Str xs = cstr(x), r{};
  r.s[BATCH] = xs.s[BATCH];
  for (size_t k = 0; k < size_t(MAXD); ++k) r.s[k] = k < perm.size() ? xs.s[perm[k]] : 0;
  return r;
}
void f_transpose(const CView* x, int, const View& y, const Attrs& a) {
  iter2(ext(y.s), cstr(y.s), perm_str(x[0].s, a), [&](int64_t iy, int64_t ix) { y.p[iy] = x[0].p[ix]; });
}
void b_transpose(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  iter2(ext(y.s), cstr(y.s), perm_str(x[0].s, a), [&](int64_t iy, int64_t ix) { dx.p[ix] += dy.p[iy]; });
}
DY_REGISTER(transpose, f_transpose, b_transpose);

void f_copy(const CView* x, int, const View& y, const Attrs&) { std::copy(x[0].p, x[0].p + y.s.total(), y.p); }
DY_REGISTER(reshape, f_copy, b_identity);
DY_REGISTER(to_device, f_copy, b_identity);

// Region of y that input j of a concatenation along axis d covers.
void concat_region(const CView* x, int j, const Shape& ys, int d, Ext& e, Str& sy, Str& sx, int64_t& off) {
  int64_t start = 0;
  for (int k = 0; k < j; ++k) start += x[k].s.d[d];
  sy = cstr(ys);
  off = start * sy.s[d];
  e = ext(x[j].s);
  e.n[BATCH] = ys.bd;
  sx = cstr(x[j].s);
  if (x[j].s.bd == 1) sx.s[BATCH] = 0;
}
void f_concat(const CView* x, int n, const View& y, const Attrs& a) {
  int d = int(a.integer(attr::concatenate::d));
  for (int j = 0; j < n; ++j) {
    Ext e;
    Str sy, sx;
    int64_t off;
    concat_region(x, j, y.s, d, e, sy, sx, off);
    iter2(e, sy, sx, [&](int64_t iy, int64_t ix) { y.p[off + iy] = x[j].p[ix]; });
  }
}
void b_concat(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs& a) {
  Ext e;
  Str sy, sx;
  int64_t off;
  concat_region(x, i, y.s, int(a.integer(attr::concatenate::d)), e, sy, sx, off);
  iter2(e, sy, sx, [&](int64_t iy, int64_t ix) { dx.p[ix] += dy.p[off + iy]; });
}
DY_REGISTER(concatenate, f_concat, b_concat);
void f_concat_batch(const CView* x, int n, const View& y, const Attrs&) {
  float* p = y.p;
  for (int j = 0; j < n; ++j) p = std::copy(x[j].p, x[j].p + x[j].s.total(), p);
}
void b_concat_batch(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t start = 0;
  for (int k = 0; k < i; ++k) start += x[k].s.total();
  Arr(dx.p, dx.s.total()) += CArr(dy.p + start, dx.s.total());
}
DY_REGISTER(concatenate_to_batch, f_concat_batch, b_concat_batch);

void f_select_rows(const CView* x, int, const View& y, const Attrs& a) {
  std::vector<int64_t> r = index_list(a, attr::select_rows::rows, x[0].s.d[0], "select_rows");
  int64_t R = x[0].s.d[0], n = int64_t(r.size()), cols = x[0].s.total() / R;
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t k = 0; k < n; ++k) y.p[c * n + k] = x[0].p[c * R + r[size_t(k)]];
}
void b_select_rows(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  std::vector<int64_t> r = index_list(a, attr::select_rows::rows, x[0].s.d[0], "select_rows");
  int64_t R = x[0].s.d[0], n = int64_t(r.size()), cols = x[0].s.total() / R;
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t k = 0; k < n; ++k) dx.p[c * R + r[size_t(k)]] += dy.p[c * n + k];
}
DY_REGISTER(select_rows, f_select_rows, b_select_rows);
void f_select_cols(const CView* x, int, const View& y, const Attrs& a) {
  std::vector<int64_t> cs = index_list(a, attr::select_cols::cols, x[0].s.d[1], "select_cols");
  int64_t R = x[0].s.d[0], C = x[0].s.d[1], n = int64_t(cs.size());
  for (int64_t b = 0; b < x[0].s.bd; ++b)
    for (int64_t k = 0; k < n; ++k)
      std::copy(x[0].p + (b * C + cs[size_t(k)]) * R, x[0].p + (b * C + cs[size_t(k)] + 1) * R, y.p + (b * n + k) * R);
}
void b_select_cols(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  std::vector<int64_t> cs = index_list(a, attr::select_cols::cols, x[0].s.d[1], "select_cols");
  int64_t R = x[0].s.d[0], C = x[0].s.d[1], n = int64_t(cs.size());
  for (int64_t b = 0; b < x[0].s.bd; ++b)
    for (int64_t k = 0; k < n; ++k) Arr(dx.p + (b * C + cs[size_t(k)]) * R, R) += CArr(dy.p + (b * n + k) * R, R);
}
DY_REGISTER(select_cols, f_select_cols, b_select_cols);

// pick: one index for all batch elements or one per element.
template <bool FWD>
void pick_visit(const CView& x, const Shape& ys, const Attrs& a, float* yp, const float* gy, float* dxp) {
  int d = int(a.integer(attr::pick::dim));
  if (d < 0 || d >= MAXD) fail("pick: dimension out of range");
  std::vector<int64_t> idx = index_list(a, attr::pick::indices, x.s.d[d], "pick");
  if (idx.size() != 1) check_count(idx.size(), ys.bd, "pick");
  Axis ax = axis_of(x.s, d);
  int64_t outer = ax.outer / x.s.bd, xsize = x.s.size(), ysize = ys.size();
  for (int64_t b = 0; b < ys.bd; ++b) {
    int64_t id = idx.size() == 1 ? idx[0] : idx[size_t(b)];
    int64_t xb = (x.s.bd == 1 ? 0 : b) * xsize;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < ax.inner; ++in) {
        int64_t xi = xb + in + ax.inner * (id + ax.len * o), yi = b * ysize + in + ax.inner * o;
        if (FWD)
          yp[yi] = x.p[xi];
        else
          dxp[xi] += gy[yi];
      }
  }
}
void f_pick(const CView* x, int, const View& y, const Attrs& a) { pick_visit<true>(x[0], y.s, a, y.p, nullptr, nullptr); }
void b_pick(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  pick_visit<false>(x[0], y.s, a, nullptr, dy.p, dx.p);
}
DY_REGISTER(pick, f_pick, b_pick);
void f_pick_batch(const CView* x, int, const View& y, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pick_batch_elems::indices, x[0].s.bd, "pick_batch_elems");
  check_count(idx.size(), y.s.bd, "pick_batch_elems");
  int64_t m = x[0].s.size();
  for (size_t j = 0; j < idx.size(); ++j) std::copy(x[0].p + idx[j] * m, x[0].p + (idx[j] + 1) * m, y.p + int64_t(j) * m);
}
void b_pick_batch(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pick_batch_elems::indices, x[0].s.bd, "pick_batch_elems");
  check_count(idx.size(), y.s.bd, "pick_batch_elems");
  int64_t m = x[0].s.size();
  for (size_t j = 0; j < idx.size(); ++j) Arr(dx.p + idx[j] * m, m) += CArr(dy.p + int64_t(j) * m, m);
}
DY_REGISTER(pick_batch_elems, f_pick_batch, b_pick_batch);
template <bool FWD>
void pickrange_visit(const CView& x, const Attrs& a, float* yp, const float* gy, float* dxp) {
  int64_t s = a.integer(attr::pickrange::start), e = a.integer(attr::pickrange::end);
  Axis ax = axis_of(x.s, int(a.integer(attr::pickrange::d)));
  int64_t ylen = e - s;
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t j = 0; j < ylen; ++j)
      for (int64_t in = 0; in < ax.inner; ++in) {
        int64_t xi = in + ax.inner * (s + j + ax.len * o), yi = in + ax.inner * (j + ylen * o);
        if (FWD)
          yp[yi] = x.p[xi];
        else
          dxp[xi] += gy[yi];
      }
}
void f_pickrange(const CView* x, int, const View& y, const Attrs& a) { pickrange_visit<true>(x[0], a, y.p, nullptr, nullptr); }
void b_pickrange(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  pickrange_visit<false>(x[0], a, nullptr, dy.p, dx.p);
}
DY_REGISTER(pickrange, f_pickrange, b_pickrange);


namespace {

// ------------------------------------------------------------------ selection along a dimension

// strided_select: entry nd of strides and range_from (the one after the data dims) is the batch.
void strided_geometry(const Shape& x, const Attrs& a, int64_t& base, Str& st) {
  std::vector<int64_t> strides = int_list(a, attr::strided_select::strides);
  std::vector<int64_t> lo = int_list(a, attr::strided_select::range_from);
  Str xs = cstr(x);
  base = 0;
  st = xs;
  size_t n = std::max(strides.size(), lo.size());
  for (size_t k = 0; k < n; ++k) {
    int ax = int(k) < x.nd ? int(k) : BATCH;
    int64_t start = k < lo.size() ? lo[k] : 0, step = k < strides.size() ? strides[k] : 1;
    base += start * xs.s[ax];
    st.s[ax] = step * xs.s[ax];
  }
}
void f_strided(const CView* x, int, const View& y, const Attrs& a) {
  int64_t base;
  Str st;
  strided_geometry(x[0].s, a, base, st);
  iter2(ext(y.s), cstr(y.s), st, [&](int64_t iy, int64_t ix) { y.p[iy] = x[0].p[base + ix]; });
}
void b_strided(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  int64_t base;
  Str st;
  strided_geometry(x[0].s, a, base, st);
  iter2(ext(y.s), cstr(y.s), st, [&](int64_t iy, int64_t ix) { dx.p[base + ix] += dy.p[iy]; });
}
DY_REGISTER(strided_select, f_strided, b_strided);

}  // namespace


}  // namespace ku
}  // namespace dy
