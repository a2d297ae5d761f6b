// The op table's convolution ops: conv2d and max pooling (VALID or SAME padding), narrow 1-D
// filters, row folding and n-gram sums.
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

namespace {

// ------------------------------------------------------------------ convolution and pooling

int64_t pad_before(int64_t n, int64_t k, int64_t s, int64_t out, bool valid) {
  if (valid) return 0;
  return std::max((out - 1) * s + k - n, int64_t(0)) / 2;
}

// conv2d: x {H,W,Ci}xB, f {kh,kw,Ci,Co}, y {Ho,Wo,Co}xB.
struct ConvGeo {
  int64_t H, W, C, B, kh, kw, O, Ho, Wo, sh, sw, ph, pw;
};
ConvGeo conv_geo(const CView& x, int64_t kh, int64_t kw, int64_t O, const Shape& y, int64_t sh, int64_t sw,
                 bool valid) {
  ConvGeo g{x.s.d[0], x.s.d[1], x.s.d[2], y.bd, kh, kw, O, y.d[0], y.d[1], sh, sw, 0, 0};
  g.ph = pad_before(g.H, kh, sh, g.Ho, valid);
  g.pw = pad_before(g.W, kw, sw, g.Wo, valid);
  return g;
}
template <int MODE>  // 0 forward, 1 grad x, 2 grad f
void conv_visit(const CView* x, const Shape& ys, const Attrs& a, float* out, const float* gy) {
  const CView &X = x[0], &F = x[1];
  IntSpan stride = a.ints(attr::conv2d::stride);
  if (stride.size() != 2) fail("conv2d: stride must be a pair");
  ConvGeo g = conv_geo(X, F.s.d[0], F.s.d[1], F.s.d[3], ys, stride[0], stride[1], a.flag(attr::conv2d::is_valid));
  for (int64_t b = 0; b < g.B; ++b) {
    const float* xb = X.p + (X.s.bd == 1 ? 0 : b) * X.s.size();
    float* dxb = MODE == 1 ? out + (X.s.bd == 1 ? 0 : b) * X.s.size() : nullptr;
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t j = 0; j < g.Wo; ++j)
        for (int64_t i = 0; i < g.Ho; ++i) {
          int64_t yi = i + g.Ho * (j + g.Wo * (o + g.O * b));
          float acc = 0, gv = MODE ? gy[yi] : 0.0f;
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t s = 0; s < g.kw; ++s) {
              int64_t col = j * g.sw + s - g.pw;
              if (col < 0 || col >= g.W) continue;
              for (int64_t r = 0; r < g.kh; ++r) {
                int64_t row = i * g.sh + r - g.ph;
                if (row < 0 || row >= g.H) continue;
                int64_t xi = row + g.H * (col + g.W * c), fi = r + g.kh * (s + g.kw * (c + g.C * o));
                if (MODE == 0)
                  acc += xb[xi] * F.p[fi];
                else if (MODE == 1)
                  dxb[xi] += gv * F.p[fi];
                else
                  out[fi] += gv * xb[xi];
              }
            }
          if (MODE == 0) out[yi] = acc;
        }
  }
}
void f_conv2d(const CView* x, int, const View& y, const Attrs& a) { conv_visit<0>(x, y.s, a, y.p, nullptr); }
void b_conv2d(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs& a) {
  if (i == 0)
    conv_visit<1>(x, y.s, a, dx.p, dy.p);
  else
    conv_visit<2>(x, y.s, a, dx.p, dy.p);
}
DY_REGISTER(conv2d, f_conv2d, b_conv2d);

// maxpooling2d: the first maximum of a window wins.
template <bool FWD>
void pool_visit(const CView& x, const Shape& ys, const Attrs& a, float* yp, const float* gy, float* dxp) {
  IntSpan ksize = a.ints(attr::maxpooling2d::ksize), stride = a.ints(attr::maxpooling2d::stride);
  if (ksize.size() != 2 || stride.size() != 2) fail("maxpooling2d: ksize and stride must be pairs");
  int64_t kh = ksize[0], kw = ksize[1], sh = stride[0], sw = stride[1];
  bool valid = a.flag(attr::maxpooling2d::is_valid);
  int64_t H = x.s.d[0], W = x.s.d[1], C = x.s.d[2], Ho = ys.d[0], Wo = ys.d[1];
  int64_t ph = pad_before(H, kh, sh, Ho, valid), pw = pad_before(W, kw, sw, Wo, valid);
  for (int64_t b = 0; b < x.s.bd; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < Wo; ++j)
        for (int64_t i = 0; i < Ho; ++i) {
          int64_t best = -1;
          float bv = -INFINITY;
          for (int64_t r = 0; r < kh; ++r)
            for (int64_t s = 0; s < kw; ++s) {  // row-major over the window, as the reference's argmax
              int64_t row = i * sh + r - ph, col = j * sw + s - pw;
              if (row < 0 || row >= H || col < 0 || col >= W) continue;
              int64_t xi = row + H * (col + W * (c + C * b));
              if (best < 0 || x.p[xi] > bv) best = xi, bv = x.p[xi];
            }
          int64_t yi = i + Ho * (j + Wo * (c + C * b));
          if (FWD)
            yp[yi] = best < 0 ? -INFINITY : bv;
          else if (best >= 0)
            dxp[best] += gy[yi];
        }
}
void f_maxpool(const CView* x, int, const View& y, const Attrs& a) { pool_visit<true>(x[0], y.s, a, y.p, nullptr, nullptr); }
void b_maxpool(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  pool_visit<false>(x[0], y.s, a, nullptr, dy.p, dx.p);
}
DY_REGISTER(maxpooling2d, f_maxpool, b_maxpool);

// filter1d_narrow: x {d,s}, filters {d,m[,n]}, y {n, s-m+1}.
void f1d_dims(const CView* x, int64_t& d, int64_t& s, int64_t& m, int64_t& nf) {
  d = x[0].s.d[0], s = x[0].s.d[1], m = x[1].s.d[1], nf = x[1].s.d[2];
}
void f_f1d(const CView* x, int, const View& y, const Attrs&) {
  int64_t d, s, m, nf;
  f1d_dims(x, d, s, m, nf);
  int64_t oc = s - m + 1;
  for (int64_t j = 0; j < oc; ++j)
    for (int64_t f = 0; f < nf; ++f) {
      float acc = 0;
      for (int64_t k = 0; k < m; ++k)
        for (int64_t r = 0; r < d; ++r) acc += x[0].p[r + d * (j + k)] * x[1].p[r + d * (k + m * f)];
      y.p[f + nf * j] = acc;
    }
}
void b_f1d(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t d, s, m, nf;
  f1d_dims(x, d, s, m, nf);
  int64_t oc = s - m + 1;
  for (int64_t j = 0; j < oc; ++j)
    for (int64_t f = 0; f < nf; ++f) {
      float g = dy.p[f + nf * j];
      for (int64_t k = 0; k < m; ++k)
        for (int64_t r = 0; r < d; ++r) {
          if (i == 0)
            dx.p[r + d * (j + k)] += g * x[1].p[r + d * (k + m * f)];
          else
            dx.p[r + d * (k + m * f)] += g * x[0].p[r + d * (j + k)];
        }
    }
}
DY_REGISTER(filter1d_narrow, f_f1d, b_f1d);

void f_fold_rows(const CView* x, int, const View& y, const Attrs& a) {
  int64_t n = a.integer(attr::fold_rows::nrows), R = x[0].s.d[0], C = x[0].s.total() / R, r2 = R / n;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < r2; ++i) {
      float s = 0;
      for (int64_t t = 0; t < n; ++t) s += x[0].p[c * R + i * n + t];
      y.p[c * r2 + i] = s;
    }
}
void b_fold_rows(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  int64_t n = a.integer(attr::fold_rows::nrows), R = x[0].s.d[0], C = x[0].s.total() / R, r2 = R / n;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < r2; ++i)
      for (int64_t t = 0; t < n; ++t) dx.p[c * R + i * n + t] += dy.p[c * r2 + i];
}
DY_REGISTER(fold_rows, f_fold_rows, b_fold_rows);
void f_kmh(const CView* x, int, const View& y, const Attrs& a) {
  int64_t n = a.integer(attr::kmh_ngram::n), R = x[0].s.d[0], oc = y.s.d[1];
  for (int64_t j = 0; j < oc; ++j)
    for (int64_t r = 0; r < R; ++r) {
      float s = 0;
      for (int64_t t = 0; t < n; ++t) s += x[0].p[r + R * (j + t)];
      y.p[r + R * j] = s;
    }
}
void b_kmh(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  int64_t n = a.integer(attr::kmh_ngram::n), R = x[0].s.d[0], oc = y.s.d[1];
  for (int64_t j = 0; j < oc; ++j)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t t = 0; t < n; ++t) dx.p[r + R * (j + t)] += dy.p[r + R * j];
}
DY_REGISTER(kmh_ngram, f_kmh, b_kmh);

}  // namespace


}  // namespace ku
}  // namespace dy
