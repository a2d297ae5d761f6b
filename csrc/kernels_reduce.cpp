// The op table's softmax family (sparsemax, its loss and constrained softmax included) and reductions
// along dimensions (sums, moments, std, max/min, cumsum, k-max pooling).
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
#include "rowops.h"

namespace dy {
namespace ku {

// ------------------------------------------------------------------ softmax family

void f_softmax(const CView* x, int, const View& y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::softmax::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      const float* xp = x[0].p + in + ax.inner * ax.len * o;
      float* yp = y.p + in + ax.inner * ax.len * o;
      if (ax.inner == 1) {  // contiguous: vectorised exp
        float m = CArr(xp, ax.len).maxCoeff();
        Arr(yp, ax.len) = (CArr(xp, ax.len) - m).exp();
        Arr(yp, ax.len) /= Arr(yp, ax.len).sum();
        continue;
      }
      float m = NEG_INF;
      for (int64_t j = 0; j < ax.len; ++j) m = std::max(m, xp[j * ax.inner]);
      float s = 0;
      for (int64_t j = 0; j < ax.len; ++j) s += (yp[j * ax.inner] = std::exp(xp[j * ax.inner] - m));
      for (int64_t j = 0; j < ax.len; ++j) yp[j * ax.inner] /= s;
    }
}
void b_softmax(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  Axis ax = axis_of(y.s, int(a.integer(attr::softmax::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      float s = 0;
      for (int64_t j = 0; j < ax.len; ++j) s += y.p[base + j * ax.inner] * dy.p[base + j * ax.inner];
      for (int64_t j = 0; j < ax.len; ++j) {
        int64_t q = base + j * ax.inner;
        dx.p[q] += (dy.p[q] - s) * y.p[q];
      }
    }
}
DY_REGISTER(softmax, f_softmax, b_softmax);

float lse_strided(const float* p, int64_t n, int64_t st) {
  if (st == 1 && n > 0) return rows::lse(p, n);  // contiguous: vectorised exp (AVX-512/AVX2 when the CPU has it)
  float m = NEG_INF;
  for (int64_t j = 0; j < n; ++j) m = max_keep_nan(m, p[j * st]);
  if (!std::isfinite(m)) return m;  // NaN in, NaN out; +Inf: +Inf; all -Inf: -Inf
  float s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(p[j * st] - m);
  return m + std::log(s);
}

void f_log_softmax(const CView* x, int, const View& y, const Attrs& a) {
  int64_t rows = x[0].s.d[0], cols = x[0].s.total() / rows;
  if (a.none(attr::log_softmax::restrict)) {
    for (int64_t c = 0; c < cols; ++c) {
      const float* xp = x[0].p + c * rows;
      float z = lse_strided(xp, rows, 1);
      for (int64_t r = 0; r < rows; ++r) y.p[c * rows + r] = xp[r] - z;
    }
    return;
  }
  std::vector<int64_t> r = index_list(a, attr::log_softmax::restrict, x[0].s.d[0], "log_softmax");
  std::fill(y.p, y.p + y.s.total(), NEG_INF);
  for (int64_t c = 0; c < cols; ++c) {  // each column alone (an autobatched group joins several)
    const float* xp = x[0].p + c * rows;
    float m = NEG_INF;
    for (int64_t k : r) m = max_keep_nan(m, xp[k]);
    float s = 0;
    for (int64_t k : r) s += std::exp(xp[k] - m);
    float z = m + std::log(s);
    for (int64_t k : r) y.p[c * rows + k] = xp[k] - z;
  }
}
void b_log_softmax(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  int64_t rows = y.s.d[0], cols = y.s.total() / rows;
  if (a.none(attr::log_softmax::restrict)) {
    for (int64_t c = 0; c < cols; ++c) {
      const float* g = dy.p + c * rows;
      const float* yp = y.p + c * rows;
      float s = CArr(g, rows).sum();
      Arr(dx.p + c * rows, rows) += CArr(g, rows) - CArr(yp, rows).exp() * s;
    }
    return;
  }
  std::vector<int64_t> r = index_list(a, attr::log_softmax::restrict, y.s.d[0], "log_softmax");
  std::vector<char> seen(static_cast<size_t>(rows), 0);
  for (int64_t c = 0; c < cols; ++c) {
    const float *g = dy.p + c * rows, *yp = y.p + c * rows;
    float s = 0;
    for (int64_t k : r) s += g[k];
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t k : r) {
      if (seen[size_t(k)]) continue;  // the reference assigns, so a repeated index counts once
      seen[size_t(k)] = 1;
      dx.p[c * rows + k] += g[k] - std::exp(yp[k]) * s;
    }
  }
}
DY_REGISTER(log_softmax, f_log_softmax, b_log_softmax);

void f_logsumexp(const CView* x, int n, const View& y, const Attrs&) {
  Str sy = cstr(y.s);
  std::vector<Str> sx;
  for (int j = 0; j < n; ++j) sx.push_back(bstr(x[j].s, y.s));
  std::vector<float> tmp(static_cast<size_t>(n));
  Ext e = ext(y.s);
  for (int64_t i4 = 0; i4 < e.n[BATCH]; ++i4)
    for (int64_t q = 0; q < y.s.size(); ++q) {
      // q enumerates the data index; the data dims of all operands are equal.
      float m = NEG_INF;
      for (int j = 0; j < n; ++j) m = max_keep_nan(m, tmp[size_t(j)] = x[j].p[i4 * sx[size_t(j)].s[BATCH] + q]);
      if (!std::isfinite(m)) {
        y.p[i4 * sy.s[BATCH] + q] = m;
        continue;
      }
      float s = 0;
      for (int j = 0; j < n; ++j) s += std::exp(tmp[size_t(j)] - m);
      y.p[i4 * sy.s[BATCH] + q] = m + std::log(s);
    }
}
void b_logsumexp(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t m = y.s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float* xb = bat(x[i], b);
    float* d = bat(dx, b);
    for (int64_t q = 0; q < m; ++q) d[q] += std::exp(xb[q] - y.p[b * m + q]) * dy.p[b * m + q];
  }
}
DY_REGISTER(logsumexp, f_logsumexp, b_logsumexp);

void f_lse_dim(const CView* x, int, const View& y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::logsumexp_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in)
      y.p[in + ax.inner * o] = lse_strided(x[0].p + in + ax.inner * ax.len * o, ax.len, ax.inner);
}
void b_lse_dim(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::logsumexp_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      float yv = y.p[in + ax.inner * o], g = dy.p[in + ax.inner * o];
      int64_t base = in + ax.inner * ax.len * o;
      for (int64_t j = 0; j < ax.len; ++j) dx.p[base + j * ax.inner] += std::exp(x[0].p[base + j * ax.inner] - yv) * g;
    }
}
DY_REGISTER(logsumexp_dim, f_lse_dim, b_lse_dim);


namespace {

// ------------------------------------------------------------------ sparsemax family

// sparsemax, its loss and constrained softmax are NaN throughout when any input is NaN or
// infinite (the threshold or normaliser is undefined), as in the reference.
bool nan_unless_finite(const CView* x, int n, const View& y) {
  for (int i = 0; i < n; ++i)
    if (!CArr(x[i].p, x[i].s.total()).isFinite().all()) {
      std::fill(y.p, y.p + y.s.total(), std::numeric_limits<float>::quiet_NaN());
      return true;
    }
  return false;
}

double sparsemax_tau(const float* z, int64_t n) {
  std::vector<double> zs(z, z + n);
  std::sort(zs.begin(), zs.end(), std::greater<double>());
  double cs = 0, csk = 0;
  int64_t k = 0;
  for (int64_t j = 0; j < n; ++j) {
    cs += zs[size_t(j)];
    if (1 + double(j + 1) * zs[size_t(j)] > cs) k = j + 1, csk = cs;
  }
  return (csk - 1) / double(k);
}

void f_sparsemax(const CView* x, int, const View& y, const Attrs&) {
  if (nan_unless_finite(x, 1, y)) return;
  int64_t n = x[0].s.total();
  double tau = sparsemax_tau(x[0].p, n);
  for (int64_t j = 0; j < n; ++j) y.p[j] = float(std::max(double(x[0].p[j]) - tau, 0.0));
}
void b_sparsemax(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  int64_t n = y.s.total(), cnt = 0;
  double s = 0;
  for (int64_t j = 0; j < n; ++j)
    if (y.p[j] > 0) s += dy.p[j], ++cnt;
  double mean = cnt ? s / double(cnt) : 0.0;
  for (int64_t j = 0; j < n; ++j)
    if (y.p[j] > 0) dx.p[j] += float(dy.p[j] - mean);
}
DY_REGISTER(sparsemax, f_sparsemax, b_sparsemax);

void f_sparsemax_loss(const CView* x, int, const View& y, const Attrs& a) {
  std::vector<int64_t> q = index_list(a, attr::sparsemax_loss::target, x[0].s.total(), "sparsemax_loss");
  if (q.empty()) fail("sparsemax_loss: empty target support");
  if (nan_unless_finite(x, 1, y)) return;
  int64_t n = x[0].s.total();
  const float* z = x[0].p;
  double tau = sparsemax_tau(z, n), s = 0, zq = 0;
  for (int64_t j = 0; j < n; ++j)
    if (z[j] - tau > 0) s += double(z[j]) * z[j] - tau * tau;
  for (int64_t k : q) zq += z[k];
  double loss = (s + 1.0 / double(q.size())) / 2 - zq / double(q.size());
  y.p[0] = float(std::max(loss, 0.0));
}
void b_sparsemax_loss(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  std::vector<int64_t> q = index_list(a, attr::sparsemax_loss::target, x[0].s.total(), "sparsemax_loss");
  if (q.empty()) fail("sparsemax_loss: empty target support");
  int64_t n = x[0].s.total();
  double tau = sparsemax_tau(x[0].p, n);
  float g = dy.p[0];
  for (int64_t j = 0; j < n; ++j) dx.p[j] += g * float(std::max(double(x[0].p[j]) - tau, 0.0));
  for (int64_t k : q) dx.p[k] -= g / float(q.size());
}
DY_REGISTER(sparsemax_loss, f_sparsemax_loss, b_sparsemax_loss);

// Softmax of z capped by u (DyNet's active-set loop).
void csoftmax(const float* z, const float* u, int64_t n, std::vector<double>& p, std::vector<char>& active,
              double& mass) {
  double m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, double(z[j]));
  std::vector<double> q(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) q[size_t(j)] = std::exp(double(z[j]) - m);
  p.assign(size_t(n), 0.0);
  active.assign(size_t(n), 1);
  mass = 0;
  for (;;) {
    double qs = 0;
    bool any = false;
    for (int64_t j = 0; j < n; ++j)
      if (active[size_t(j)]) qs += q[size_t(j)], any = true;
    if (!any) break;
    for (int64_t j = 0; j < n; ++j)
      if (active[size_t(j)]) p[size_t(j)] = q[size_t(j)] * (1 - mass) / qs;
    bool over = false;
    for (int64_t j = 0; j < n; ++j)
      if (active[size_t(j)] && p[size_t(j)] > u[j]) {
        over = true;
        p[size_t(j)] = u[j];
        mass += u[j];
        active[size_t(j)] = 0;
      }
    if (!over) break;
  }
}
void f_csoftmax(const CView* x, int, const View& y, const Attrs&) {
  if (nan_unless_finite(x, 2, y)) return;
  std::vector<double> p;
  std::vector<char> act;
  double mass;
  csoftmax(x[0].p, x[1].p, x[0].s.total(), p, act, mass);
  for (size_t j = 0; j < p.size(); ++j) y.p[j] = float(p[j]);
}
void b_csoftmax(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  std::vector<double> p;
  std::vector<char> act;
  double mass, dhat = 0;
  int64_t n = x[0].s.total();
  csoftmax(x[0].p, x[1].p, n, p, act, mass);
  bool any = false;
  for (int64_t j = 0; j < n; ++j)
    if (act[size_t(j)]) dhat += p[size_t(j)] * dy.p[j], any = true;
  dhat = any ? dhat / (1 - mass) : 0.0;
  for (int64_t j = 0; j < n; ++j) {
    if (i == 0 && act[size_t(j)]) dx.p[j] += float(p[size_t(j)] * (dy.p[j] - dhat));
    if (i == 1 && !act[size_t(j)]) dx.p[j] += float(dy.p[j] - dhat);
  }
}
DY_REGISTER(constrained_softmax, f_csoftmax, b_csoftmax);

}  // namespace

// ------------------------------------------------------------------ reductions

// Strides of the reduced result seen from x's index space (reduced axes: 0); N: count.  The
// reductions (sum_dim, moment_dim, std_dim) share their first two attributes: dims and b.
static_assert(attr::moment_dim::dims.k == attr::sum_dim::dims.k && attr::std_dim::dims.k == attr::sum_dim::dims.k &&
                  attr::moment_dim::b.k == attr::sum_dim::b.k && attr::std_dim::b.k == attr::sum_dim::b.k,
              "the reductions' dims and b attributes");
Str reduced_str(const Shape& x, const Attrs& a, double& count) {
  std::vector<int64_t> axes = int_list(a, attr::sum_dim::dims);
  bool b = a.flag(attr::sum_dim::b);
  bool red[MAXD] = {};
  count = 1;
  for (int64_t k : axes) {
    if (k < 0 || k >= MAXD) fail("sum_dim: dimension out of range");
    red[k] = true;
    count *= double(x.d[k]);
  }
  if (b) count *= double(x.bd);
  Str r;
  int64_t s = 1;
  for (int k = 0; k < MAXD; ++k) {
    r.s[k] = red[k] ? 0 : s;
    if (!red[k]) s *= x.d[k];
  }
  r.s[BATCH] = b ? 0 : s;
  return r;
}
void f_sum_dim(const CView* x, int, const View& y, const Attrs& a) {
  double cnt;
  Str sy = reduced_str(x[0].s, a, cnt);
  Arr(y.p, y.s.total()).setZero();
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) { y.p[iy] += x[0].p[ix]; });
}
void b_sum_dim(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  double cnt;
  Str sy = reduced_str(x[0].s, a, cnt);
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) { dx.p[ix] += dy.p[iy]; });
}
DY_REGISTER(sum_dim, f_sum_dim, b_sum_dim);
void moment_params(const CView& x, const Attrs& a, double& r, double& N, Str& sy) {
  double cnt;
  sy = reduced_str(x.s, a, cnt);
  r = double(a.integer(attr::moment_dim::r));
  int64_t nn = a.integer(attr::moment_dim::n);
  N = nn > 0 ? double(nn) : cnt;
}
void f_moment(const CView* x, int, const View& y, const Attrs& a) {
  double r, N;
  Str sy;
  moment_params(x[0], a, r, N, sy);
  Arr(y.p, y.s.total()).setZero();
  float rf = float(r);
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) { y.p[iy] += std::pow(x[0].p[ix], rf); });
  Arr(y.p, y.s.total()) /= float(N);
}
void b_moment(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  double r, N;
  Str sy;
  moment_params(x[0], a, r, N, sy);
  float c = float(r / N), rm1 = float(r - 1);
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) {
    dx.p[ix] += dy.p[iy] * c * (r != 1 ? std::pow(x[0].p[ix], rm1) : 1.0f);
  });
}
DY_REGISTER(moment_dim, f_moment, b_moment);


namespace {

template <bool MAX>
int64_t extreme_at(const float* p, int64_t n, int64_t st) {
  int64_t best = 0;
  for (int64_t j = 1; j < n; ++j) {
    float v = p[j * st], b = p[best * st];
    if (std::isnan(b)) break;
    if (std::isnan(v) || (MAX ? v > b : v < b)) best = j;
  }
  return best;
}
static_assert(attr::max_dim::d.k == attr::min_dim::d.k, "max_dim and min_dim share their kernels");
template <bool MAX>
void f_extreme(const CView* x, int, const View& y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::max_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      const float* p = x[0].p + in + ax.inner * ax.len * o;
      y.p[in + ax.inner * o] = p[extreme_at<MAX>(p, ax.len, ax.inner) * ax.inner];
    }
}
template <bool MAX>
void b_extreme(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::max_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      dx.p[base + extreme_at<MAX>(x[0].p + base, ax.len, ax.inner) * ax.inner] += dy.p[in + ax.inner * o];
    }
}
DY_REGISTER(max_dim, f_extreme<true>, b_extreme<true>);
DY_REGISTER(min_dim, f_extreme<false>, b_extreme<false>);

void f_cumsum(const CView* x, int, const View& y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::cumsum::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      float s = 0;
      for (int64_t j = 0; j < ax.len; ++j) y.p[base + j * ax.inner] = (s += x[0].p[base + j * ax.inner]);
    }
}
void b_cumsum(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  Axis ax = axis_of(y.s, int(a.integer(attr::cumsum::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      float s = 0;
      for (int64_t j = ax.len - 1; j >= 0; --j) dx.p[base + j * ax.inner] += (s += dy.p[base + j * ax.inner]);
    }
}
DY_REGISTER(cumsum, f_cumsum, b_cumsum);

// Positions of the k largest entries of a line, in their original order (ties: earliest first).
std::vector<int64_t> kmax_positions(const float* p, int64_t n, int64_t st, int64_t k) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return p[a * st] > p[b * st]; });
  idx.resize(size_t(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}
template <bool FWD>
void kmax_visit(const CView& x, const Attrs& a, float* yp, const float* gy, float* dxp) {
  int64_t k = a.integer(attr::kmax_pooling::k);
  Axis ax = axis_of(x.s, int(a.integer(attr::kmax_pooling::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t xb = in + ax.inner * ax.len * o, yb = in + ax.inner * k * o;
      std::vector<int64_t> pos = kmax_positions(x.p + xb, ax.len, ax.inner, k);
      for (int64_t j = 0; j < k; ++j) {
        if (FWD)
          yp[yb + j * ax.inner] = x.p[xb + pos[size_t(j)] * ax.inner];
        else
          dxp[xb + pos[size_t(j)] * ax.inner] += gy[yb + j * ax.inner];
      }
    }
}
void f_kmax(const CView* x, int, const View& y, const Attrs& a) { kmax_visit<true>(x[0], a, y.p, nullptr, nullptr); }
void b_kmax(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  kmax_visit<false>(x[0], a, nullptr, dy.p, dx.p);
}
DY_REGISTER(kmax_pooling, f_kmax, b_kmax);

// ------------------------------------------------------------------ std_dim: attrs (dims, b, n)

struct StdParts {
  Str sy;
  double n;
  std::vector<double> mean, dsum;  // per output element: mean and sum of deviations
};
StdParts std_parts(const CView& x, const Attrs& a, int64_t ny) {
  std::vector<int64_t> axes = int_list(a, attr::std_dim::dims);
  bool b = a.flag(attr::std_dim::b);
  int64_t nn = a.integer(attr::std_dim::n);
  bool red[MAXD] = {};
  double cnt = 1;
  for (int64_t k : axes) {
    if (k < 0 || k >= MAXD) fail("std_dim: dimension out of range");
    red[k] = true, cnt *= double(x.s.d[k]);
  }
  if (b) cnt *= double(x.s.bd);
  StdParts p;
  int64_t s = 1;
  for (int k = 0; k < MAXD; ++k) {
    p.sy.s[k] = red[k] ? 0 : s;
    if (!red[k]) s *= x.s.d[k];
  }
  p.sy.s[BATCH] = b ? 0 : s;
  p.n = nn > 0 ? double(nn) : cnt;
  p.mean.assign(size_t(ny), 0.0);
  p.dsum.assign(size_t(ny), 0.0);
  iter2(ext(x.s), cstr(x.s), p.sy, [&](int64_t ix, int64_t iy) { p.mean[size_t(iy)] += x.p[ix]; });
  for (double& m : p.mean) m /= p.n;
  iter2(ext(x.s), cstr(x.s), p.sy,
        [&](int64_t ix, int64_t iy) { p.dsum[size_t(iy)] += x.p[ix] - p.mean[size_t(iy)]; });
  return p;
}
void f_std(const CView* x, int, const View& y, const Attrs& a) {
  StdParts p = std_parts(x[0], a, y.s.total());
  std::vector<double> ss(static_cast<size_t>(y.s.total()), 0.0);
  iter2(ext(x[0].s), cstr(x[0].s), p.sy, [&](int64_t ix, int64_t iy) {
    double d = x[0].p[ix] - p.mean[size_t(iy)];
    ss[size_t(iy)] += d * d;
  });
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = float(std::sqrt(ss[size_t(k)] / p.n));
}
void b_std(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {
  StdParts p = std_parts(x[0], a, y.s.total());
  iter2(ext(x[0].s), cstr(x[0].s), p.sy, [&](int64_t ix, int64_t iy) {
    double yv = y.p[iy];
    if (yv > 0) {
      double centred = x[0].p[ix] - p.mean[size_t(iy)] - p.dsum[size_t(iy)] / p.n;
      dx.p[ix] += float(centred * dy.p[iy] / (p.n * yv));
    }
  });
}
DY_REGISTER(std_dim, f_std, b_std);

}  // namespace


}  // namespace ku
}  // namespace dy
