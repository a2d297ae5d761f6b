// Kernels of the rest of DyNet's op set (issue 6): sparsemax family, selections
// along a dimension, reductions, losses, linear algebra, convolution/pooling,
// n-gram filters, weight norm and the fused LSTM pieces.  The reference is
// backends/reference_numpy/kernels_more.py; backward kernels accumulate.
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "kernel_util.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define DY_LSTM_X86 1
#endif

namespace dy {
namespace {

using namespace ku;
using Eigen::MatrixXd;

// ------------------------------------------------------------------ sparsemax family

// sparsemax, its loss and constrained softmax are NaN throughout when any input is NaN or
// infinite (the threshold or normaliser is undefined), as in the reference.
bool nan_unless_finite(const CView* x, int n, View y) {
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

void f_sparsemax(const CView* x, int, View y, const Attrs&) {
  if (nan_unless_finite(x, 1, y)) return;
  int64_t n = x[0].s.total();
  double tau = sparsemax_tau(x[0].p, n);
  for (int64_t j = 0; j < n; ++j) y.p[j] = float(std::max(double(x[0].p[j]) - tau, 0.0));
}
void b_sparsemax(const CView*, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t n = y.s.total(), cnt = 0;
  double s = 0;
  for (int64_t j = 0; j < n; ++j)
    if (y.p[j] > 0) s += dy.p[j], ++cnt;
  double mean = cnt ? s / double(cnt) : 0.0;
  for (int64_t j = 0; j < n; ++j)
    if (y.p[j] > 0) dx.p[j] += float(dy.p[j] - mean);
}

void f_sparsemax_loss(const CView* x, int, View y, const Attrs& a) {
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
void b_sparsemax_loss(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  std::vector<int64_t> q = index_list(a, attr::sparsemax_loss::target, x[0].s.total(), "sparsemax_loss");
  if (q.empty()) fail("sparsemax_loss: empty target support");
  int64_t n = x[0].s.total();
  double tau = sparsemax_tau(x[0].p, n);
  float g = dy.p[0];
  for (int64_t j = 0; j < n; ++j) dx.p[j] += g * float(std::max(double(x[0].p[j]) - tau, 0.0));
  for (int64_t k : q) dx.p[k] -= g / float(q.size());
}

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
void f_csoftmax(const CView* x, int, View y, const Attrs&) {
  if (nan_unless_finite(x, 2, y)) return;
  std::vector<double> p;
  std::vector<char> act;
  double mass;
  csoftmax(x[0].p, x[1].p, x[0].s.total(), p, act, mass);
  for (size_t j = 0; j < p.size(); ++j) y.p[j] = float(p[j]);
}
void b_csoftmax(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
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

// ------------------------------------------------------------------ selection along a dimension

// strided_select: entry nd of strides and from (the one after the data dims) is the batch.
void strided_geometry(const Shape& x, const Attrs& a, int64_t& base, Str& st) {
  std::vector<int64_t> strides = int_list(a, attr::strided_select::strides);
  std::vector<int64_t> lo = int_list(a, attr::strided_select::from);
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
void f_strided(const CView* x, int, View y, const Attrs& a) {
  int64_t base;
  Str st;
  strided_geometry(x[0].s, a, base, st);
  iter2(ext(y.s), cstr(y.s), st, [&](int64_t iy, int64_t ix) { y.p[iy] = x[0].p[base + ix]; });
}
void b_strided(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  int64_t base;
  Str st;
  strided_geometry(x[0].s, a, base, st);
  iter2(ext(y.s), cstr(y.s), st, [&](int64_t iy, int64_t ix) { dx.p[base + ix] += dy.p[iy]; });
}

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
void f_extreme(const CView* x, int, View y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::max_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      const float* p = x[0].p + in + ax.inner * ax.len * o;
      y.p[in + ax.inner * o] = p[extreme_at<MAX>(p, ax.len, ax.inner) * ax.inner];
    }
}
template <bool MAX>
void b_extreme(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::max_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      dx.p[base + extreme_at<MAX>(x[0].p + base, ax.len, ax.inner) * ax.inner] += dy.p[in + ax.inner * o];
    }
}

void f_cumsum(const CView* x, int, View y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::cumsum::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      float s = 0;
      for (int64_t j = 0; j < ax.len; ++j) y.p[base + j * ax.inner] = (s += x[0].p[base + j * ax.inner]);
    }
}
void b_cumsum(const CView*, int, CView y, CView dy, int, View dx, const Attrs& a) {
  Axis ax = axis_of(y.s, int(a.integer(attr::cumsum::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      int64_t base = in + ax.inner * ax.len * o;
      float s = 0;
      for (int64_t j = ax.len - 1; j >= 0; --j) dx.p[base + j * ax.inner] += (s += dy.p[base + j * ax.inner]);
    }
}

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
void f_kmax(const CView* x, int, View y, const Attrs& a) { kmax_visit<true>(x[0], a, y.p, nullptr, nullptr); }
void b_kmax(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  kmax_visit<false>(x[0], a, nullptr, dy.p, dx.p);
}

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
void f_std(const CView* x, int, View y, const Attrs& a) {
  StdParts p = std_parts(x[0], a, y.s.total());
  std::vector<double> ss(static_cast<size_t>(y.s.total()), 0.0);
  iter2(ext(x[0].s), cstr(x[0].s), p.sy, [&](int64_t ix, int64_t iy) {
    double d = x[0].p[ix] - p.mean[size_t(iy)];
    ss[size_t(iy)] += d * d;
  });
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = float(std::sqrt(ss[size_t(k)] / p.n));
}
void b_std(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  StdParts p = std_parts(x[0], a, y.s.total());
  iter2(ext(x[0].s), cstr(x[0].s), p.sy, [&](int64_t ix, int64_t iy) {
    double yv = y.p[iy];
    if (yv > 0) {
      double centred = x[0].p[ix] - p.mean[size_t(iy)] - p.dsum[size_t(iy)] / p.n;
      dx.p[ix] += float(centred * dy.p[iy] / (p.n * yv));
    }
  });
}

// ------------------------------------------------------------------ losses

// hinge_dim attrs: (index lists, d, m); lists flattened as count, then each list's length and items.
struct HingeDim {
  std::vector<std::vector<int64_t>> idx;
  int d;
  float m;
};
HingeDim hinge_dim_attrs(const Attrs& a) {
  HingeDim h;
  h.idx = a.int_lists(attr::hinge_dim::indices);
  h.d = int(a.integer(attr::hinge_dim::d));
  h.m = float(a.num(attr::hinge_dim::m));
  return h;
}
template <bool FWD>
void hinge_dim_visit(const CView& x, const Attrs& a, float* yp, const float* gy, float* dxp) {
  HingeDim h = hinge_dim_attrs(a);
  int64_t R = x.s.d[0], C = x.s.d[1];
  int64_t lines = h.d == 0 ? C : R, len = h.d == 0 ? R : C;
  int64_t st = h.d == 0 ? 1 : R, lst = h.d == 0 ? R : 1;  // stride along the scored dim, between lines
  if (h.d < 0 || h.d > 1 || h.idx.empty() || (h.idx.size() > 1 && int64_t(h.idx.size()) != x.s.bd))
    fail("hinge_dim: bad dimension or index lists");
  for (const auto& v : h.idx) {
    check_count(v.size(), lines, "hinge_dim");
    for (int64_t k : v)
      if (k < 0 || k >= len) fail("hinge_dim: index out of range");
  }
  for (int64_t b = 0; b < x.s.bd; ++b) {
    const std::vector<int64_t>& gi = h.idx[h.idx.size() > 1 ? size_t(b) : 0];
    for (int64_t l = 0; l < lines; ++l) {
      int64_t base = b * R * C + l * lst, gold = gi[size_t(l)];
      float gv = x.p[base + gold * st], s = 0, cnt = 0;
      float g = FWD ? 0.0f : gy[b * lines + l];
      for (int64_t j = 0; j < len; ++j) {
        if (j == gold) continue;
        float e = x.p[base + j * st] - gv + h.m;
        if (e > 0 || e != e) {  // a NaN score makes a NaN loss, as in the reference
          s += e, cnt += 1;
          if (!FWD) dxp[base + j * st] += g;
        }
      }
      if (FWD)
        yp[b * lines + l] = s;
      else if (cnt > 0)  // only active terms receive dy, as in DyNet
        dxp[base + gold * st] -= cnt * g;
    }
  }
}
void f_hinge_dim(const CView* x, int, View y, const Attrs& a) { hinge_dim_visit<true>(x[0], a, y.p, nullptr, nullptr); }
void b_hinge_dim(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  hinge_dim_visit<false>(x[0], a, nullptr, dy.p, dx.p);
}

void f_prl(const CView* x, int, View y, const Attrs& a) {
  float m = float(a.num(attr::pairwise_rank_loss::m));
  bin_fwd(x[0], x[1], y, [m](float p, float q) { return relu_keep_nan(m - p + q); });
}
void b_prl(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs& a) {
  float m = float(a.num(attr::pairwise_rank_loss::m)), sg = i == 0 ? -1.0f : 1.0f;
  bin_bwd(x[0], x[1], y.s, dy.p, dx, [m, sg](float p, float q, float g) { return m - p + q > 0 ? sg * g : 0.0f; });
}

void f_poisson(const CView* x, int, View y, const Attrs& a) {
  double k = a.num(attr::poisson_loss::y);
  y.p[0] = float(std::exp(double(x[0].p[0])) + std::lgamma(k + 1) - double(x[0].p[0]) * k);
}
void b_poisson(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  dx.p[0] += dy.p[0] * float(std::exp(double(x[0].p[0])) - a.num(attr::poisson_loss::y));
}

// ------------------------------------------------------------------ linear algebra (double inside)

MatrixXd to_d(const float* p, int64_t n) { return CMat(p, n, n).cast<double>(); }

void f_inverse(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.d[0];
  Mat(y.p, n, n) = to_d(x[0].p, n).inverse().cast<float>();
}
void b_inverse(const CView*, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t n = y.s.d[0];
  Mat(dx.p, n, n) -= CMat(y.p, n, n).transpose() * CMat(dy.p, n, n) * CMat(y.p, n, n).transpose();
}
void f_logdet(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.d[0];
  Eigen::PartialPivLU<MatrixXd> lu(to_d(x[0].p, n));
  double sign = lu.permutationP().determinant(), logabs = 0;
  const MatrixXd& m = lu.matrixLU();
  for (int64_t k = 0; k < n; ++k) {
    double v = m(k, k);
    if (v < 0) sign = -sign;
    logabs += std::log(std::fabs(v));
  }
  y.p[0] = sign > 0 ? float(logabs) : std::numeric_limits<float>::quiet_NaN();
}
void b_logdet(const CView* x, int, CView, CView dy, int, View dx, const Attrs&) {
  int64_t n = x[0].s.d[0];
  Mat(dx.p, n, n) += (double(dy.p[0]) * to_d(x[0].p, n).inverse().transpose()).cast<float>();
}
void f_trace_prod(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.total();
  y.p[0] = (CArr(x[0].p, n) * CArr(x[1].p, n)).sum();
}
void b_trace_prod(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  int64_t n = dx.s.total();
  Arr(dx.p, n) += dy.p[0] * CArr(x[1 - i].p, n);
}

// contract3d_1d: Y_ij = sum_k A_ijk b_k, i.e. the (ij x k) matrix times b, batched.
void f_c3d1(const CView* x, int, View y, const Attrs&) {
  int64_t ij = x[0].s.d[0] * x[0].s.d[1], k = x[0].s.d[2];
  Arr(y.p, y.s.total()).setZero();
  mm_acc(x[0].p, ij, k, x[0].s.bd, x[1].p, 1, x[1].s.bd, y.p, y.s.bd);
}
void b_c3d1(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t ij = x[0].s.d[0] * x[0].s.d[1], k = x[0].s.d[2];
  if (i == 0)
    mm_grad_a(dy.p, ij, 1, y.s.bd, x[1].p, k, x[1].s.bd, dx.p, x[0].s.bd);
  else
    mm_grad_b(dy.p, ij, 1, y.s.bd, x[0].p, k, x[0].s.bd, dx.p, x[1].s.bd);
}
// contract3d_1d_1d: y_i = sum_jk A_ijk b_k c_j (unbatched).
void f_c3d11(const CView* x, int, View y, const Attrs&) {
  int64_t I = x[0].s.d[0], J = x[0].s.d[1], K = x[0].s.d[2];
  Eigen::VectorXf t = CMat(x[0].p, I * J, K) * CVec(x[1].p, K);
  Vec(y.p, I) = Eigen::Map<Eigen::MatrixXf>(t.data(), I, J) * CVec(x[2].p, J);
}
void b_c3d11(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  int64_t I = x[0].s.d[0], J = x[0].s.d[1], K = x[0].s.d[2];
  const float *A = x[0].p, *b = x[1].p, *c = x[2].p, *g = dy.p;
  for (int64_t kk = 0; kk < K; ++kk)
    for (int64_t j = 0; j < J; ++j)
      for (int64_t ii = 0; ii < I; ++ii) {
        int64_t q = ii + I * (j + J * kk);
        if (i == 0)
          dx.p[q] += g[ii] * c[j] * b[kk];
        else if (i == 1)
          dx.p[kk] += A[q] * c[j] * g[ii];
        else
          dx.p[j] += A[q] * b[kk] * g[ii];
      }
}

int64_t mod(int64_t a, int64_t n) { return ((a % n) + n) % n; }
void f_circ_conv(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.total();
  for (int64_t k = 0; k < n; ++k) {
    float s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[1].p[mod(k - j, n)] * x[0].p[j];
    y.p[k] = s;
  }
}
void b_circ_conv(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  int64_t n = dx.s.total();
  const float* o = x[1 - i].p;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < n; ++k) dx.p[j] += o[mod(k - j, n)] * dy.p[k];
}
void f_circ_corr(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.total();
  for (int64_t k = 0; k < n; ++k) {
    float s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[1].p[mod(k + j, n)] * x[0].p[j];
    y.p[k] = s;
  }
}
void b_circ_corr(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  int64_t n = dx.s.total();
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < n; ++k)
      dx.p[j] += (i == 0 ? x[1].p[mod(k + j, n)] : x[0].p[mod(j - k, n)]) * dy.p[k];
}

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
void f_conv2d(const CView* x, int, View y, const Attrs& a) { conv_visit<0>(x, y.s, a, y.p, nullptr); }
void b_conv2d(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs& a) {
  if (i == 0)
    conv_visit<1>(x, y.s, a, dx.p, dy.p);
  else
    conv_visit<2>(x, y.s, a, dx.p, dy.p);
}

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
void f_maxpool(const CView* x, int, View y, const Attrs& a) { pool_visit<true>(x[0], y.s, a, y.p, nullptr, nullptr); }
void b_maxpool(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  pool_visit<false>(x[0], y.s, a, nullptr, dy.p, dx.p);
}

// filter1d_narrow: x {d,s}, filters {d,m[,n]}, y {n, s-m+1}.
void f1d_dims(const CView* x, int64_t& d, int64_t& s, int64_t& m, int64_t& nf) {
  d = x[0].s.d[0], s = x[0].s.d[1], m = x[1].s.d[1], nf = x[1].s.d[2];
}
void f_f1d(const CView* x, int, View y, const Attrs&) {
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
void b_f1d(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
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

void f_fold_rows(const CView* x, int, View y, const Attrs& a) {
  int64_t n = a.integer(attr::fold_rows::nrows), R = x[0].s.d[0], C = x[0].s.total() / R, r2 = R / n;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < r2; ++i) {
      float s = 0;
      for (int64_t t = 0; t < n; ++t) s += x[0].p[c * R + i * n + t];
      y.p[c * r2 + i] = s;
    }
}
void b_fold_rows(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  int64_t n = a.integer(attr::fold_rows::nrows), R = x[0].s.d[0], C = x[0].s.total() / R, r2 = R / n;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < r2; ++i)
      for (int64_t t = 0; t < n; ++t) dx.p[c * R + i * n + t] += dy.p[c * r2 + i];
}
void f_kmh(const CView* x, int, View y, const Attrs& a) {
  int64_t n = a.integer(attr::kmh_ngram::n), R = x[0].s.d[0], oc = y.s.d[1];
  for (int64_t j = 0; j < oc; ++j)
    for (int64_t r = 0; r < R; ++r) {
      float s = 0;
      for (int64_t t = 0; t < n; ++t) s += x[0].p[r + R * (j + t)];
      y.p[r + R * j] = s;
    }
}
void b_kmh(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  int64_t n = a.integer(attr::kmh_ngram::n), R = x[0].s.d[0], oc = y.s.d[1];
  for (int64_t j = 0; j < oc; ++j)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t t = 0; t < n; ++t) dx.p[r + R * (j + t)] += dy.p[r + R * j];
}

// ------------------------------------------------------------------ weight norm

void f_wnorm(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.total();
  float sq = CArr(x[0].p, n).square().sum();
  Arr(y.p, n) = CArr(x[0].p, n) * (x[1].p[0] / std::sqrt(sq));
}
void b_wnorm(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t n = x[0].s.total();
  float sq = CArr(x[0].p, n).square().sum(), proj = (CArr(dy.p, n) * CArr(x[0].p, n)).sum();
  if (i == 0)
    Arr(dx.p, n) += CArr(dy.p, n) * (x[1].p[0] / std::sqrt(sq)) - CArr(y.p, n) * (proj / sq);
  else
    dx.p[0] += proj / std::sqrt(sq);
}

// ------------------------------------------------------------------ fused LSTM pieces (gates i, f, o, g)
// Sized for the builders' steps (one vector or a small batch per call): products through
// gemm_acc (the AVX2+FMA build when loaded), Eigen's vectorised logistic/tanh, scratch
// held per thread so a call allocates nothing once the sizes have been seen.

constexpr float FORGET_GATE_BIAS = 1.0f;

// AVX2+FMA versions of the per-step work (compiled with a target attribute, picked at run time
// like rowops; DYNET_CPU_EIGEN_ISA=baseline keeps Eigen): the 4h x h product with the previous
// state as one register-blocked GEMV, and logistic/tanh with Eigen's own rational approximations
// (its FMA cut-offs), so the values are Eigen's up to the rounding of the fused multiply-adds.
#ifdef DY_LSTM_X86
#define DY_LSTM_T256 __attribute__((target("avx2,fma")))

// y (m) += A (m x k, column-major) x.
DY_LSTM_T256 void gemv_acc_256(const float* A, int64_t m, int64_t k, const float* x, float* y) {
  int64_t r = 0;
  for (; r + 64 <= m; r += 64) {
    __m256 a0 = _mm256_loadu_ps(y + r), a1 = _mm256_loadu_ps(y + r + 8), a2 = _mm256_loadu_ps(y + r + 16),
           a3 = _mm256_loadu_ps(y + r + 24), a4 = _mm256_loadu_ps(y + r + 32), a5 = _mm256_loadu_ps(y + r + 40),
           a6 = _mm256_loadu_ps(y + r + 48), a7 = _mm256_loadu_ps(y + r + 56);
    const float* c = A + r;
    for (int64_t j = 0; j < k; ++j, c += m) {
      __m256 v = _mm256_broadcast_ss(x + j);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), v, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 8), v, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 16), v, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 24), v, a3);
      a4 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 32), v, a4);
      a5 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 40), v, a5);
      a6 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 48), v, a6);
      a7 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 56), v, a7);
    }
    _mm256_storeu_ps(y + r, a0), _mm256_storeu_ps(y + r + 8, a1), _mm256_storeu_ps(y + r + 16, a2);
    _mm256_storeu_ps(y + r + 24, a3), _mm256_storeu_ps(y + r + 32, a4), _mm256_storeu_ps(y + r + 40, a5);
    _mm256_storeu_ps(y + r + 48, a6), _mm256_storeu_ps(y + r + 56, a7);
  }
  for (; r + 16 <= m; r += 16) {
    __m256 a0 = _mm256_loadu_ps(y + r), a1 = _mm256_loadu_ps(y + r + 8);
    const float* c = A + r;
    for (int64_t j = 0; j < k; ++j, c += m) {
      __m256 v = _mm256_broadcast_ss(x + j);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), v, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 8), v, a1);
    }
    _mm256_storeu_ps(y + r, a0), _mm256_storeu_ps(y + r + 8, a1);
  }
  for (; r + 8 <= m; r += 8) {
    __m256 a0 = _mm256_loadu_ps(y + r);
    const float* c = A + r;
    for (int64_t j = 0; j < k; ++j, c += m) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), _mm256_broadcast_ss(x + j), a0);
    _mm256_storeu_ps(y + r, a0);
  }
  for (; r < m; ++r) {
    float a = y[r];
    for (int64_t j = 0; j < k; ++j) a = std::fma(A[r + j * m], x[j], a);
    y[r] = a;
  }
}

// Eigen's scalar_logistic_op<float> (FMA cut-off); below -9 it is exp(x), done per lane.
// min_ps/max_ps return their second operand when either is NaN: x0 goes second so a NaN stays NaN.
DY_LSTM_T256 inline __m256 logistic_256(__m256 x0) {
  __m256 x = _mm256_min_ps(_mm256_set1_ps(15.7243833541870117f), x0);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(4.37031012579801e-11f), _mm256_set1_ps(1.15627324459942e-07f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(6.08574864600143e-05f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(8.51377133304701e-03f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(2.48287947061529e-01f));
  p = _mm256_mul_ps(x, p);
  __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(6.10247389755681e-13f), _mm256_set1_ps(5.76102136993427e-09f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(6.29106785017040e-06f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(1.70198817374094e-03f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(1.16817656904453e-01f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(9.93151921023180e-01f));
  __m256 y = _mm256_add_ps(_mm256_div_ps(p, q), _mm256_set1_ps(0.5f));
  __m256 small = _mm256_cmp_ps(x0, _mm256_set1_ps(-9.0f), _CMP_LT_OQ);
  if (__builtin_expect(_mm256_movemask_ps(small) != 0, 0)) {
    alignas(32) float v[8], e[8];
    _mm256_store_ps(v, x0);
    for (int j = 0; j < 8; ++j) e[j] = std::exp(v[j]);
    y = _mm256_blendv_ps(y, _mm256_load_ps(e), small);
  }
  return y;
}

// Eigen's generic_fast_tanh_float (FMA clamp).
DY_LSTM_T256 inline __m256 tanh_256(__m256 x0) {
  const __m256 c = _mm256_set1_ps(7.99881172180175781f);
  __m256 x = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), c), _mm256_min_ps(c, x0));  // NaN stays NaN
  __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x0), _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.76076847742355e-16f), _mm256_set1_ps(2.00018790482477e-13f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-8.60467152213735e-11f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(5.12229709037114e-08f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(1.48572235717979e-05f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(6.37261928875436e-04f));
  p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(4.89352455891786e-03f));
  p = _mm256_mul_ps(x, p);
  __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(1.19825839466702e-06f), _mm256_set1_ps(1.18534705686654e-04f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(2.26843463243900e-03f));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(4.89352518554385e-03f));
  return _mm256_blendv_ps(_mm256_div_ps(p, q), x, tiny);
}

DY_LSTM_T256 inline __m256i tail_mask(int64_t left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// One column of gates: the forget bias, logistic on i, f, o (3h values) and tanh on g (h values).
DY_LSTM_T256 void gate_act_256(float* g, int64_t H) {
  const int64_t L = 3 * H;
  const __m256 one = _mm256_set1_ps(FORGET_GATE_BIAS);
  int64_t j = 0;
  for (; j + 8 <= L; j += 8) {
    __m256 v = _mm256_loadu_ps(g + j);
    // lanes of the forget gate (H <= index < 2H) get the bias
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int(j)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i in_f = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(H)), idx),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(int(2 * H)), idx));
    v = _mm256_add_ps(v, _mm256_and_ps(_mm256_castsi256_ps(in_f), one));
    _mm256_storeu_ps(g + j, logistic_256(v));
  }
  if (j < L) {  // L - j < 8 values, all of the o gate (H >= 8) or handled the same way
    __m256i k = tail_mask(L - j);
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int(j)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i in_f = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(H)), idx),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(int(2 * H)), idx));
    __m256 v = _mm256_add_ps(_mm256_maskload_ps(g + j, k), _mm256_and_ps(_mm256_castsi256_ps(in_f), one));
    _mm256_maskstore_ps(g + j, k, logistic_256(v));
  }
  float* t = g + L;
  j = 0;
  for (; j + 8 <= H; j += 8) _mm256_storeu_ps(t + j, tanh_256(_mm256_loadu_ps(t + j)));
  if (j < H) {
    __m256i k = tail_mask(H - j);
    _mm256_maskstore_ps(t + j, k, tanh_256(_mm256_maskload_ps(t + j, k)));
  }
}

// y (n) = o (n) * tanh(c (n)).
DY_LSTM_T256 void out_tanh_256(const float* o, const float* c, int64_t n, float* y) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(o + j), tanh_256(_mm256_loadu_ps(c + j))));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(_mm256_maskload_ps(o + j, k), tanh_256(_mm256_maskload_ps(c + j, k))));
  }
}
#endif

bool lstm_avx2() {
#ifdef DY_LSTM_X86
  static const bool on = [] {
    const char* env = std::getenv("DYNET_CPU_EIGEN_ISA");
    if (env && std::strcmp(env, "baseline") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return on;
#else
  return false;
#endif
}

// Per-thread scratch buffers that only grow.
float* lstm_scratch(int slot, int64_t n) {
  static thread_local std::vector<float> bufs[5];
  std::vector<float>& v = bufs[slot];
  if (int64_t(v.size()) < n) v.resize(size_t(n));
  return v.data();
}

// An LSTM input (x or h) as `cols` columns of len values: the tensor itself, or its product with
// the dropout mask written to scratch.  cols is 1 when neither has a batch, else the batch n.
struct LstmIn {
  const float* p;
  int64_t cols;
};
LstmIn lstm_in(const CView& v, const CView* mask, int64_t n, int slot) {
  int64_t len = v.s.d[0];
  if (!mask) return {v.p, v.s.bd == 1 ? 1 : n};
  int64_t cols = (v.s.bd == 1 && mask->s.bd == 1) ? 1 : n;
  float* out = lstm_scratch(slot, len * cols);
  for (int64_t b = 0; b < cols; ++b) Arr(out + b * len, len) = CArr(bat(v, b), len) * CArr(bat(*mask, b), len);
  return {out, cols};
}

// Y (G x n) += W (G x len) * in, an input of one column adding to every batch column.
void lstm_acc_product(const float* W, int64_t G, int64_t len, LstmIn in, float* Y, int64_t n) {
  if (len == 1) {  // W is one column (the builders' precomputed input products): Y_b += in_b W
    for (int64_t b = 0; b < n; ++b) Arr(Y + b * G, G) += in.p[in.cols == 1 ? 0 : b] * CArr(W, G);
    return;
  }
  if (in.cols == n) {
    gemm_acc(false, false, G, n, len, W, in.p, Y);
    return;
  }
  float* t = lstm_scratch(2, G);
  std::fill_n(t, G, 0.0f);
  gemm_acc(false, false, G, 1, len, W, in.p, t);
  for (int64_t b = 0; b < n; ++b) Arr(Y + b * G, G) += CArr(t, G);
}

// pre: W_x x already computed for every batch column (the executor batches it over the steps),
// else null.
void lstm_gates_impl(const CView* x, int nargs, View y, const float* pre) {
  bool drop = nargs == 7;
  int64_t n = y.s.bd, G = y.s.d[0], H = G / 4, X = x[0].s.d[0];
  if (pre) {
    for (int64_t b = 0; b < n; ++b) Arr(y.p + b * G, G) = CArr(x[4].p, G) + CArr(pre + b * G, G);
  } else {
    for (int64_t b = 0; b < n; ++b) std::copy(x[4].p, x[4].p + G, y.p + b * G);
    lstm_acc_product(x[2].p, G, X, lstm_in(x[0], drop ? &x[5] : nullptr, n, 0), y.p, n);
  }
  LstmIn hin = lstm_in(x[1], drop ? &x[6] : nullptr, n, 1);
#ifdef DY_LSTM_X86
  if (lstm_avx2()) {
    if (n == 1 && H > 1)
      gemv_acc_256(x[3].p, G, H, hin.p, y.p);
    else
      lstm_acc_product(x[3].p, G, H, hin, y.p, n);
    for (int64_t b = 0; b < n; ++b) gate_act_256(y.p + b * G, H);
    return;
  }
#endif
  lstm_acc_product(x[3].p, G, H, hin, y.p, n);
  for (int64_t b = 0; b < n; ++b) {
    float* g = y.p + b * G;
    Arr(g + H, H) += FORGET_GATE_BIAS;
    Arr(g, 3 * H) = Arr(g, 3 * H).logistic();
    Arr(g + 3 * H, H) = Arr(g + 3 * H, H).tanh();
  }
}
void f_lstm_gates(const CView* x, int nargs, View y, const Attrs&) { lstm_gates_impl(x, nargs, y, nullptr); }

// d(pre-activations) from d(gates): sigmoid' = y (1 - y) on i, f, o; tanh' = 1 - y^2 on g.
void lstm_dgates_into(CView y, CView dy, float* r) {
  int64_t n = y.s.bd, G = y.s.d[0], H = G / 4;
  for (int64_t b = 0; b < n; ++b) {
    const float *yb = y.p + b * G, *gb = dy.p + b * G;
    float* rb = r + b * G;
    CArr ys(yb, 3 * H), yt(yb + 3 * H, H);
    Arr(rb, 3 * H) = CArr(gb, 3 * H) * ys * (1.0f - ys);
    Arr(rb + 3 * H, H) = CArr(gb + 3 * H, H) * (1.0f - yt.square());
  }
}
// Sum over the batch of r (G x n), in scratch (not next to r: the executor keeps the r of
// successive steps side by side, for one weight-gradient GEMM that reads them in place).
const float* lstm_rowsum(const float* r, int64_t n, int64_t G) {
  if (n == 1) return r;
  float* s = lstm_scratch(4, G);
  Arr(s, G) = CArr(r, G);
  for (int64_t b = 1; b < n; ++b) Arr(s, G) += CArr(r + b * G, G);
  return s;
}

void b_lstm_gates(const CView* x, int nargs, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t n = y.s.bd, G = y.s.d[0];
  float* r = lstm_scratch(3, G * n);
  lstm_dgates_into(y, dy, r);
  ku::lstm_gates_grad(x, nargs, y.s, r, i, dx);
}

}  // namespace

void ku::lstm_gates_pre(const CView* x, int nargs, View y, const float* pre) { lstm_gates_impl(x, nargs, y, pre); }

// Input i's gradient of the fused gates from r = d(pre-activations) (G x n).
void ku::lstm_gates_grad(const CView* x, int nargs, const Shape& ys, float* r, int i, View dx) {
  bool drop = nargs == 7;
  int64_t n = ys.bd, G = ys.d[0], H = G / 4, X = x[0].s.d[0];
  if (i == 4) {  // db: the batch sum of r
    Arr(dx.p, G) += CArr(lstm_rowsum(r, n, G), G);
    return;
  }
  if (i == 2 || i == 3) {  // dW += r in^T, summed over the batch
    bool isx = i == 2;
    int64_t len = isx ? X : H;
    LstmIn in = lstm_in(x[isx ? 0 : 1], drop ? &x[isx ? 5 : 6] : nullptr, n, isx ? 0 : 1);
    if (len == 1) {  // one column: dW += sum_b in_b r_b
      for (int64_t b = 0; b < n; ++b) Arr(dx.p, G) += in.p[in.cols == 1 ? 0 : b] * CArr(r + b * G, G);
      return;
    }
    if (in.cols == n)
      gemm_acc(false, true, G, len, n, r, in.p, dx.p);
    else
      gemm_acc(false, true, G, len, 1, lstm_rowsum(r, n, G), in.p, dx.p);
    return;
  }
  // The inputs and the masks: back = W^T r, then times the mask (for x, h) or the input (for the masks).
  bool isx = i == 0 || i == 5, of_mask = i == 5 || i == 6;
  int64_t len = isx ? X : H;
  const float* W = isx ? x[2].p : x[3].p;
  const CView* other = drop ? &x[of_mask ? (isx ? 0 : 1) : (isx ? 5 : 6)] : nullptr;
  if (!other) {  // plain x or h: accumulate W^T r straight into dx
    if (dx.s.bd == n)
      gemm_acc(true, false, len, n, G, W, r, dx.p);
    else
      gemm_acc(true, false, len, 1, G, W, lstm_rowsum(r, n, G), dx.p);
    return;
  }
  bool sum_first = dx.s.bd == 1 && other->s.bd == 1;  // mask (W^T r_b) summed over b = mask (W^T sum_b r_b)
  int64_t cols = sum_first ? 1 : n;
  float* back = lstm_scratch(2, len * cols);
  std::fill_n(back, len * cols, 0.0f);
  gemm_acc(true, false, len, cols, G, W, sum_first ? lstm_rowsum(r, n, G) : r, back);
  for (int64_t b = 0; b < cols; ++b) Arr(bat(dx, b), len) += CArr(back + b * len, len) * CArr(bat(*other, b), len);
}

void ku::lstm_gates_dpre(CView y, CView dy, float* r) { lstm_dgates_into(y, dy, r); }

namespace {

void f_lstm_c(const CView* x, int, View y, const Attrs&) {
  int64_t H = y.s.d[0];
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
    Arr(y.p + b * H, H) = CArr(g, H) * CArr(g + 3 * H, H) + CArr(g + H, H) * CArr(c, H);
  }
}
void b_lstm_c(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t H = y.s.d[0];
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
    CArr d(dy.p + b * H, H);
    float* o = bat(dx, b);
    if (i == 0) {
      Arr(o, H) += d * CArr(g + H, H);
    } else {
      Arr(o, H) += d * CArr(g + 3 * H, H);
      Arr(o + H, H) += d * CArr(c, H);
      Arr(o + 3 * H, H) += d * CArr(g, H);
    }
  }
}
void f_lstm_h(const CView* x, int, View y, const Attrs&) {
  int64_t H = y.s.d[0];
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
#ifdef DY_LSTM_X86
    if (lstm_avx2()) {
      out_tanh_256(g + 2 * H, c, H, y.p + b * H);
      continue;
    }
#endif
    Arr(y.p + b * H, H) = CArr(g + 2 * H, H) * CArr(c, H).tanh();
  }
}
void b_lstm_h(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t H = y.s.d[0];
  float* t = lstm_scratch(2, H);
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
    CArr d(dy.p + b * H, H);
    float* o = bat(dx, b);
    Arr(t, H) = CArr(c, H).tanh();
    if (i == 0)
      Arr(o, H) += d * CArr(g + 2 * H, H) * (1.0f - Arr(t, H).square());
    else
      Arr(o + 2 * H, H) += d * Arr(t, H);
  }
}

}  // namespace

std::vector<KernelDef> ku::more_kernels() {
  return {
      {"sparsemax", f_sparsemax, b_sparsemax},
      {"sparsemax_loss", f_sparsemax_loss, b_sparsemax_loss},
      {"constrained_softmax", f_csoftmax, b_csoftmax},
      {"strided_select", f_strided, b_strided},
      {"max_dim", f_extreme<true>, b_extreme<true>},
      {"min_dim", f_extreme<false>, b_extreme<false>},
      {"cumsum", f_cumsum, b_cumsum},
      {"kmax_pooling", f_kmax, b_kmax},
      {"std_dim", f_std, b_std},
      {"hinge_dim", f_hinge_dim, b_hinge_dim},
      {"pairwise_rank_loss", f_prl, b_prl},
      {"poisson_loss", f_poisson, b_poisson},
      {"inverse", f_inverse, b_inverse},
      {"logdet", f_logdet, b_logdet},
      {"trace_of_product", f_trace_prod, b_trace_prod},
      {"contract3d_1d", f_c3d1, b_c3d1},
      {"contract3d_1d_1d", f_c3d11, b_c3d11},
      {"circ_conv", f_circ_conv, b_circ_conv},
      {"circ_corr", f_circ_corr, b_circ_corr},
      {"conv2d", f_conv2d, b_conv2d},
      {"maxpooling2d", f_maxpool, b_maxpool},
      {"filter1d_narrow", f_f1d, b_f1d},
      {"fold_rows", f_fold_rows, b_fold_rows},
      {"kmh_ngram", f_kmh, b_kmh},
      {"weight_norm", f_wnorm, b_wnorm},
      {"vanilla_lstm_gates", f_lstm_gates, b_lstm_gates},
      {"vanilla_lstm_gates_dropout", f_lstm_gates, b_lstm_gates},
      {"vanilla_lstm_c", f_lstm_c, b_lstm_c},
      {"vanilla_lstm_h", f_lstm_h, b_lstm_h},
  };
}

}  // namespace dy
