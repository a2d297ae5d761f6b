// Forward and backward kernels of every op, on column-major float32 buffers.
// Semantics follow backends/reference_numpy/kernels.py (the specification):
// size-1 data dims and batch 1 broadcast, backward sums over broadcast dims.
// Backward kernels accumulate into dx, so the executor needs no temporaries.
#include <Eigen/Dense>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "common.h"
#include "gemm_impl.h"
#include "gemm_blas.h"
#include "gemm_thin.h"
#include "rowops.h"
#include "kernel_util.h"

namespace dy {
namespace ku {

// ------------------------------------------------------------------ leaves

void f_constant(const CView*, int, View y, const Attrs& a) { Arr(y.p, y.s.total()).setConstant(float(a.num(attr::constant::value))); }

void f_rnormal(const CView*, int, View y, const Attrs& a) {
  std::normal_distribution<double> d(a.num(attr::random_normal::mean), a.num(attr::random_normal::stddev));
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = float(d(rng()));
}
void f_rbern(const CView*, int, View y, const Attrs& a) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  float sc = float(a.num(attr::random_bernoulli::scale));
  double p = a.num(attr::random_bernoulli::p);
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = u(rng()) < p ? sc : 0.0f;
}
void f_runif(const CView*, int, View y, const Attrs& a) {
  std::uniform_real_distribution<double> u(a.num(attr::random_uniform::left), a.num(attr::random_uniform::right));
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = float(u(rng()));
}
void f_rgumbel(const CView*, int, View y, const Attrs& a) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double mu = a.num(attr::random_gumbel::mu), beta = a.num(attr::random_gumbel::beta);
  for (int64_t k = 0; k < y.s.total(); ++k) {
    double v = std::min(std::max(u(rng()), 1e-12), 1 - 1e-12);
    y.p[k] = float(mu - beta * std::log(-std::log(v)));
  }
}

void f_add(const CView* x, int, View y, const Attrs&) {
  if (same(x[0].s, y.s) && same(x[1].s, y.s)) {
    Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()) + CArr(x[1].p, y.s.total());
    return;
  }
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p + q; });
}
void b_add(const CView*, int, CView y, CView dy, int, View dx, const Attrs&) { acc_unbroadcast(dx, y.s, dy.p); }

void f_cmult(const CView* x, int, View y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p * q; });
}
void b_cmult(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float, float q, float g) { return g * q; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float, float g) { return g * p; });
}
void f_cdiv(const CView* x, int, View y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p / q; });
}
void b_cdiv(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float, float q, float g) { return g / q; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return -g * p / (q * q); });
}
void f_bmin(const CView* x, int, View y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p != p ? p : (q != q ? q : (p <= q ? p : q)); });
}
void b_bmin(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p <= q ? g : 0.0f; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p <= q ? 0.0f : g; });
}
void f_bmax(const CView* x, int, View y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p != p ? p : (q != q ? q : (p >= q ? p : q)); });
}
void b_bmax(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p >= q ? g : 0.0f; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p >= q ? 0.0f : g; });
}

// ------------------------------------------------------------------ scalar-attribute ops

void f_negate(const CView* x, int, View y, const Attrs&) { Arr(y.p, y.s.total()) = -CArr(x[0].p, y.s.total()); }
void b_negate(const CView*, int, CView, CView dy, int, View dx, const Attrs&) {
  Arr(dx.p, dx.s.total()) -= CArr(dy.p, dx.s.total());
}
void f_plus_const(const CView* x, int, View y, const Attrs& a) {
  Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()) + float(a.num(attr::plus_const::c));
}
void b_identity(const CView*, int, CView, CView dy, int, View dx, const Attrs&) {
  Arr(dx.p, dx.s.total()) += CArr(dy.p, dx.s.total());
}
void f_const_minus(const CView* x, int, View y, const Attrs& a) {
  Arr(y.p, y.s.total()) = float(a.num(attr::const_minus::c)) - CArr(x[0].p, y.s.total());
}
void f_scalar_mult(const CView* x, int, View y, const Attrs& a) {
  Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()) * float(a.num(attr::scalar_mult::c));
}
void b_scalar_mult(const CView*, int, CView, CView dy, int, View dx, const Attrs& a) {
  Arr(dx.p, dx.s.total()) += CArr(dy.p, dx.s.total()) * float(a.num(attr::scalar_mult::c));
}

// ------------------------------------------------------------------ matrix products

// Y (r x k per batch, n batches) += A (r x c, batch ba) * B (c x k, batch bb).
// C += op(A) op(B): large products through the BLAS when one is loaded, products with a short
// side through the thin-product kernels, others through Eigen's AVX2+FMA build when it is
// loaded and the product is big enough to gain from it, else through this (baseline) build.
void gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  if (blas::gemm_acc(ta, tb, m, n, k, A, B, C)) return;  // large products, when a BLAS is loaded
  // A short side: AVX-512/AVX2 without packing, on one thread (so not for big products when
  // --dynet-threads asks for more and Eigen can split them).
  if ((threads() == 1 || m * n * k < (int64_t(1) << 22)) && thin::gemm_acc(ta, tb, m, n, k, A, B, C)) return;
  GemmFn fast = fast_gemm();
  if (fast && m * n * k >= 4096)
    fast(ta, tb, m, n, k, A, B, C);
  else
    gemm_acc_impl(ta, tb, m, n, k, A, B, C);
}

void mm_acc(const float* A, int64_t r, int64_t c, int64_t ba, const float* B, int64_t k, int64_t bb, float* Y,
            int64_t n) {
  if (ba == 1 && (bb == n || n == 1)) {
    gemm_acc(false, false, r, k * n, c, A, B, Y);
    return;
  }
  if (ba == 1 && bb == 1) {  // one product, added to every batch element
    Eigen::MatrixXf t = Eigen::MatrixXf::Zero(r, k);
    gemm_acc(false, false, r, k, c, A, B, t.data());
    for (int64_t b = 0; b < n; ++b) Mat(Y + b * r * k, r, k) += t;
    return;
  }
  for (int64_t b = 0; b < n; ++b)
    gemm_acc(false, false, r, k, c, A + (ba == 1 ? 0 : b) * r * c, B + (bb == 1 ? 0 : b) * c * k, Y + b * r * k);
}
// Sum of the n batch elements of G (r x k each).
Eigen::MatrixXf batch_sum(const float* G, int64_t r, int64_t k, int64_t n) {
  Eigen::MatrixXf s = CMat(G, r, k);
  for (int64_t b = 1; b < n; ++b) s += CMat(G + b * r * k, r, k);
  return s;
}
// dA += G * B^T (summed over batch where A has batch 1).
void mm_grad_a(const float* G, int64_t r, int64_t k, int64_t n, const float* B, int64_t c, int64_t bb, float* dA,
               int64_t ba) {
  if (ba == 1 && (bb == n || n == 1)) {
    gemm_acc(false, true, r, c, k * n, G, B, dA);
    return;
  }
  if (ba == 1) {  // bb == 1, n > 1
    Eigen::MatrixXf gs = batch_sum(G, r, k, n);
    gemm_acc(false, true, r, c, k, gs.data(), B, dA);
    return;
  }
  for (int64_t b = 0; b < n; ++b)
    gemm_acc(false, true, r, c, k, G + b * r * k, B + (bb == 1 ? 0 : b) * c * k, dA + b * r * c);
}
// dB += A^T * G (summed over batch where B has batch 1).
void mm_grad_b(const float* G, int64_t r, int64_t k, int64_t n, const float* A, int64_t c, int64_t ba, float* dB,
               int64_t bb) {
  if (ba == 1 && (bb == n || n == 1)) {
    gemm_acc(true, false, c, k * n, r, A, G, dB);
    return;
  }
  if (ba == 1) {  // bb == 1, n > 1
    Eigen::MatrixXf gs = batch_sum(G, r, k, n);
    gemm_acc(true, false, c, k, r, A, gs.data(), dB);
    return;
  }
  for (int64_t b = 0; b < n; ++b)
    gemm_acc(true, false, c, k, r, A + b * r * c, G + b * r * k, dB + (bb == 1 ? 0 : b) * c * k);
}

void f_matmul(const CView* x, int, View y, const Attrs&) {
  Arr(y.p, y.s.total()).setZero();
  mm_acc(x[0].p, x[0].s.d[0], x[0].s.d[1], x[0].s.bd, x[1].p, x[1].s.d[1], x[1].s.bd, y.p, y.s.bd);
}
void b_matmul(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t r = x[0].s.d[0], c = x[0].s.d[1], k = x[1].s.d[1];
  if (i == 0)
    mm_grad_a(dy.p, r, k, y.s.bd, x[1].p, c, x[1].s.bd, dx.p, x[0].s.bd);
  else
    mm_grad_b(dy.p, r, k, y.s.bd, x[0].p, c, x[0].s.bd, dx.p, x[1].s.bd);
}

void f_affine(const CView* x, int n, View y, const Attrs&) {
  copy_broadcast(x[0], y);
  for (int j = 1; j + 1 < n; j += 2)
    mm_acc(x[j].p, x[j].s.d[0], x[j].s.d[1], x[j].s.bd, x[j + 1].p, x[j + 1].s.d[1], x[j + 1].s.bd, y.p, y.s.bd);
}
void b_affine(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs& a) {
  if (i == 0) {
    acc_unbroadcast(dx, y.s, dy.p);
    return;
  }
  int j = (i % 2 == 1) ? i : i - 1;
  CView A[2] = {x[j], x[j + 1]};
  CView yy = y;
  b_matmul(A, 2, yy, dy, i == j ? 0 : 1, dx, a);
}

void f_sum(const CView* x, int n, View y, const Attrs&) {
  copy_broadcast(x[0], y);
  for (int j = 1; j < n; ++j) add_broadcast(x[j], y);
}
void f_average(const CView* x, int n, View y, const Attrs& a) {
  f_sum(x, n, y, a);
  Arr(y.p, y.s.total()) /= float(n);
}
void b_average(const CView*, int n, CView y, CView dy, int, View dx, const Attrs&) {
  acc_unbroadcast(dx, y.s, dy.p, 1.0f / float(n));
}

// x ** e for a scalar e per batch element.
void f_pow(const CView* x, int, View y, const Attrs&) {
  int64_t m = y.s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float* xb = bat(x[0], b);
    float e = *bat(x[1], b);
    for (int64_t k = 0; k < m; ++k) y.p[b * m + k] = std::pow(xb[k], e);
  }
}
void b_pow(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t m = y.s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float* xb = bat(x[0], b);
    float e = *bat(x[1], b);
    const float* g = dy.p + b * m;
    if (i == 0) {
      float* d = bat(dx, b);
      for (int64_t k = 0; k < m; ++k) d[k] += g[k] * e * std::pow(xb[k], e - 1.0f);
    } else {
      const float* yb = y.p + b * m;
      double s = 0;
      for (int64_t k = 0; k < m; ++k) s += double(g[k] * yb[k] * std::log(xb[k]));
      *bat(dx, b) += float(s);
    }
  }
}

// Per-batch reductions to a scalar.
void f_dot(const CView* x, int, View y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = CArr(bat(x[0], b), m).matrix().dot(CArr(bat(x[1], b), m).matrix());
}
void b_dot(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t m = x[0].s.size();
  const CView& o = x[1 - i];
  for (int64_t b = 0; b < y.s.bd; ++b) Arr(bat(dx, b), m) += dy.p[b] * CArr(bat(o, b), m);
}
void f_sqnorm(const CView* x, int, View y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = CArr(x[0].p + b * m, m).matrix().squaredNorm();
}
void b_sqnorm(const CView* x, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) Arr(dx.p + b * m, m) += (2.0f * dy.p[b]) * CArr(x[0].p + b * m, m);
}
void f_l2(const CView* x, int, View y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = std::sqrt(CArr(x[0].p + b * m, m).matrix().squaredNorm());
}
void b_l2(const CView* x, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) Arr(dx.p + b * m, m) += (dy.p[b] / y.p[b]) * CArr(x[0].p + b * m, m);
}

// ------------------------------------------------------------------ elementwise unary

template <class F>
void map1(const CView& x, View y, F f) {
  int64_t n = y.s.total();
  for (int64_t k = 0; k < n; ++k) y.p[k] = f(x.p[k]);
}
// dx += h(x, y, dy)
template <class H>
void map_b(const CView& x, const CView& y, const CView& dy, View dx, H h) {
  int64_t n = dx.s.total();
  for (int64_t k = 0; k < n; ++k) dx.p[k] += h(x.p[k], y.p[k], dy.p[k]);
}

// An elementwise op: y = EXPR_F(v) and dx += EXPR_B(v, w, g) for x = v, y = w, dy = g; INIT
// (a statement) reads the op's attributes by name before the loop.
#define UNARY_WITH(NAME, INIT, EXPR_F, EXPR_B)                                                      \
  void f_##NAME(const CView* x, int, View y, const Attrs& a) {                                       \
    (void)a;                                                                                          \
    INIT;                                                                                             \
    map1(x[0], y, [&](float v) -> float { return EXPR_F; });                                          \
  }                                                                                                   \
  void b_##NAME(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {               \
    (void)a;                                                                                          \
    INIT;                                                                                             \
    map_b(x[0], y, dy, dx, [&](float v, float w, float g) -> float { (void)v, (void)w; return EXPR_B; }); \
  }
#define UNARY(NAME, EXPR_F, EXPR_B) UNARY_WITH(NAME, (void)0, EXPR_F, EXPR_B)

float sigmoid(float v) {
  float e = std::exp(-std::fabs(v));
  return v >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
double digamma(double x) {
  if (!(x > -1e6)) return std::numeric_limits<double>::quiet_NaN();
  double acc = 0;
  while (x < 6) acc -= 1 / x, x += 1;
  double inv = 1 / x, inv2 = inv * inv;
  return acc + std::log(x) - 0.5 * inv -
         inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132))));
}
const float TWO_OVER_SQRT_PI = float(2.0 / std::sqrt(M_PI));

void f_tanh(const CView* x, int, View y, const Attrs&) { Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()).tanh(); }
void b_tanh(const CView*, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t n = dx.s.total();
  Arr(dx.p, n) += CArr(dy.p, n) * (1.0f - CArr(y.p, n).square());
}
void f_exp(const CView* x, int, View y, const Attrs&) { Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()).exp(); }
void b_exp(const CView*, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t n = dx.s.total();
  Arr(dx.p, n) += CArr(dy.p, n) * CArr(y.p, n);
}
void f_log(const CView* x, int, View y, const Attrs&) { Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()).log(); }

// Eigen's vectorised logistic (as the fused LSTM gates use): ~4x the scalar exp loop.
void f_logistic(const CView* x, int, View y, const Attrs&) {
  Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()).logistic();
}
void b_logistic(const CView*, int, CView y, CView dy, int, View dx, const Attrs&) {
  int64_t n = dx.s.total();
  Arr(dx.p, n) += CArr(dy.p, n) * CArr(y.p, n) * (1.0f - CArr(y.p, n));
}
UNARY(rectify, v > 0 ? v : (v == v ? 0.0f : v), w > 0 ? g : 0.0f)
UNARY_WITH(elu, const float alpha = float(a.num(attr::elu::alpha)), v > 0 ? v : alpha * std::expm1(std::min(v, 0.0f)),
           g*(v > 0 ? 1.0f : alpha * std::exp(std::min(v, 0.0f))))
UNARY(selu, float(SELU_LAMBDA * (v > 0 ? double(v) : SELU_ALPHA * std::expm1(double(std::min(v, 0.0f))))),
      g* float(SELU_LAMBDA * (v > 0 ? 1.0 : SELU_ALPHA * std::exp(double(std::min(v, 0.0f))))))
UNARY(softsign, v / (1.0f + std::fabs(v)), g*(1.0f - std::fabs(w)) * (1.0f - std::fabs(w)))
UNARY(log_b, v, g / v)
UNARY(sqrt, std::sqrt(v), g / (2.0f * w))
UNARY(square, v* v, g * 2.0f * v)
UNARY(cube, v* v* v, g * 3.0f * v * v)
UNARY(abs, std::fabs(v), g*(v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f)))
UNARY(log_sigmoid, std::min(v, 0.0f) - std::log1p(std::exp(-std::fabs(v))), g*(1.0f - std::exp(w)))
UNARY(erf, float(std::erf(double(v))), g* TWO_OVER_SQRT_PI * std::exp(-v * v))
UNARY(lgamma, float(std::lgamma(double(v))), g* float(digamma(double(v))))
UNARY(nobackprop, v, 0.0f)
UNARY_WITH(scale_gradient, const float lambd = float(a.num(attr::scale_gradient::lambd)), v, g* lambd)

// Trigonometric, hyperbolic, silu, rounding (issue 6 ops).
float sig(float v) { return 0.5f + 0.5f * std::tanh(0.5f * v); }
float round_away(float v) { return v > 0 ? std::floor(v + 0.5f) : (v < 0 ? -std::floor(-v + 0.5f) : v); }
UNARY(sin, std::sin(v), g* std::cos(v))
UNARY(cos, std::cos(v), -g * std::sin(v))
UNARY(tan, std::tan(v), g*(1.0f + w * w))
UNARY(asin, std::asin(v), g / std::sqrt(1.0f - v * v))
UNARY(acos, std::acos(v), -g / std::sqrt(1.0f - v * v))
UNARY(atan, std::atan(v), g / (1.0f + v * v))
UNARY(sinh, std::sinh(v), g* std::cosh(v))
UNARY(cosh, std::cosh(v), g* std::sinh(v))
UNARY(asinh, std::asinh(v), g / std::sqrt(v * v + 1.0f))
UNARY(acosh, std::acosh(v), g / std::sqrt(v * v - 1.0f))
UNARY(atanh, std::atanh(v), g / (1.0f - v * v))
UNARY_WITH(silu, const float beta = float(a.num(attr::silu::beta)), v* sig(beta * v),
           g*(sig(beta * v) + beta * v * sig(beta * v) * (1.0f - sig(beta * v))))
UNARY_WITH(round, const bool st = a.flag(attr::round::straight_through), round_away(v), st ? g : 0.0f)
UNARY_WITH(ceil, const bool st = a.flag(attr::ceil::straight_through), std::ceil(v), st ? g : 0.0f)
UNARY_WITH(floor, const bool st = a.flag(attr::floor::straight_through), std::floor(v), st ? g : 0.0f)

// ------------------------------------------------------------------ softmax family

void f_softmax(const CView* x, int, View y, const Attrs& a) {
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
void b_softmax(const CView*, int, CView y, CView dy, int, View dx, const Attrs& a) {
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

float lse_strided(const float* p, int64_t n, int64_t st) {
  if (st == 1 && n > 0) return rows::lse(p, n);  // contiguous: vectorised exp (AVX-512/AVX2 when the CPU has it)
  float m = NEG_INF;
  for (int64_t j = 0; j < n; ++j) m = max_keep_nan(m, p[j * st]);
  if (!std::isfinite(m)) return m;  // NaN in, NaN out; +Inf: +Inf; all -Inf: -Inf
  float s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(p[j * st] - m);
  return m + std::log(s);
}

void f_log_softmax(const CView* x, int, View y, const Attrs& a) {
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
  float m = NEG_INF;
  for (int64_t k : r) m = max_keep_nan(m, x[0].p[k]);
  float s = 0;
  for (int64_t k : r) s += std::exp(x[0].p[k] - m);
  float z = m + std::log(s);
  for (int64_t k : r) y.p[k] = x[0].p[k] - z;
}
void b_log_softmax(const CView*, int, CView y, CView dy, int, View dx, const Attrs& a) {
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
  float s = 0;
  for (int64_t k : r) s += dy.p[k];
  std::vector<char> seen(static_cast<size_t>(rows), 0);
  for (int64_t k : r) {
    if (seen[size_t(k)]) continue;  // the reference assigns, so a repeated index counts once
    seen[size_t(k)] = 1;
    dx.p[k] += dy.p[k] - std::exp(y.p[k]) * s;
  }
}

void f_logsumexp(const CView* x, int n, View y, const Attrs&) {
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
void b_logsumexp(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t m = y.s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float* xb = bat(x[i], b);
    float* d = bat(dx, b);
    for (int64_t q = 0; q < m; ++q) d[q] += std::exp(xb[q] - y.p[b * m + q]) * dy.p[b * m + q];
  }
}

void f_lse_dim(const CView* x, int, View y, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::logsumexp_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in)
      y.p[in + ax.inner * o] = lse_strided(x[0].p + in + ax.inner * ax.len * o, ax.len, ax.inner);
}
void b_lse_dim(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  Axis ax = axis_of(x[0].s, int(a.integer(attr::logsumexp_dim::d)));
  for (int64_t o = 0; o < ax.outer; ++o)
    for (int64_t in = 0; in < ax.inner; ++in) {
      float yv = y.p[in + ax.inner * o], g = dy.p[in + ax.inner * o];
      int64_t base = in + ax.inner * ax.len * o;
      for (int64_t j = 0; j < ax.len; ++j) dx.p[base + j * ax.inner] += std::exp(x[0].p[base + j * ax.inner] - yv) * g;
    }
}

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
void f_transpose(const CView* x, int, View y, const Attrs& a) {
  iter2(ext(y.s), cstr(y.s), perm_str(x[0].s, a), [&](int64_t iy, int64_t ix) { y.p[iy] = x[0].p[ix]; });
}
void b_transpose(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  iter2(ext(y.s), cstr(y.s), perm_str(x[0].s, a), [&](int64_t iy, int64_t ix) { dx.p[ix] += dy.p[iy]; });
}

void f_copy(const CView* x, int, View y, const Attrs&) { std::copy(x[0].p, x[0].p + y.s.total(), y.p); }

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
void f_concat(const CView* x, int n, View y, const Attrs& a) {
  int d = int(a.integer(attr::concatenate::d));
  for (int j = 0; j < n; ++j) {
    Ext e;
    Str sy, sx;
    int64_t off;
    concat_region(x, j, y.s, d, e, sy, sx, off);
    iter2(e, sy, sx, [&](int64_t iy, int64_t ix) { y.p[off + iy] = x[j].p[ix]; });
  }
}
void b_concat(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs& a) {
  Ext e;
  Str sy, sx;
  int64_t off;
  concat_region(x, i, y.s, int(a.integer(attr::concatenate::d)), e, sy, sx, off);
  iter2(e, sy, sx, [&](int64_t iy, int64_t ix) { dx.p[ix] += dy.p[off + iy]; });
}
void f_concat_batch(const CView* x, int n, View y, const Attrs&) {
  float* p = y.p;
  for (int j = 0; j < n; ++j) p = std::copy(x[j].p, x[j].p + x[j].s.total(), p);
}
void b_concat_batch(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  int64_t start = 0;
  for (int k = 0; k < i; ++k) start += x[k].s.total();
  Arr(dx.p, dx.s.total()) += CArr(dy.p + start, dx.s.total());
}

void f_select_rows(const CView* x, int, View y, const Attrs& a) {
  std::vector<int64_t> r = index_list(a, attr::select_rows::rows, x[0].s.d[0], "select_rows");
  int64_t R = x[0].s.d[0], n = int64_t(r.size()), cols = x[0].s.total() / R;
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t k = 0; k < n; ++k) y.p[c * n + k] = x[0].p[c * R + r[size_t(k)]];
}
void b_select_rows(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  std::vector<int64_t> r = index_list(a, attr::select_rows::rows, x[0].s.d[0], "select_rows");
  int64_t R = x[0].s.d[0], n = int64_t(r.size()), cols = x[0].s.total() / R;
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t k = 0; k < n; ++k) dx.p[c * R + r[size_t(k)]] += dy.p[c * n + k];
}
void f_select_cols(const CView* x, int, View y, const Attrs& a) {
  std::vector<int64_t> cs = index_list(a, attr::select_cols::cols, x[0].s.d[1], "select_cols");
  int64_t R = x[0].s.d[0], C = x[0].s.d[1], n = int64_t(cs.size());
  for (int64_t b = 0; b < x[0].s.bd; ++b)
    for (int64_t k = 0; k < n; ++k)
      std::copy(x[0].p + (b * C + cs[size_t(k)]) * R, x[0].p + (b * C + cs[size_t(k)] + 1) * R, y.p + (b * n + k) * R);
}
void b_select_cols(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  std::vector<int64_t> cs = index_list(a, attr::select_cols::cols, x[0].s.d[1], "select_cols");
  int64_t R = x[0].s.d[0], C = x[0].s.d[1], n = int64_t(cs.size());
  for (int64_t b = 0; b < x[0].s.bd; ++b)
    for (int64_t k = 0; k < n; ++k) Arr(dx.p + (b * C + cs[size_t(k)]) * R, R) += CArr(dy.p + (b * n + k) * R, R);
}

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
void f_pick(const CView* x, int, View y, const Attrs& a) { pick_visit<true>(x[0], y.s, a, y.p, nullptr, nullptr); }
void b_pick(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  pick_visit<false>(x[0], y.s, a, nullptr, dy.p, dx.p);
}
void f_pick_batch(const CView* x, int, View y, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pick_batch_elems::indices, x[0].s.bd, "pick_batch_elems");
  check_count(idx.size(), y.s.bd, "pick_batch_elems");
  int64_t m = x[0].s.size();
  for (size_t j = 0; j < idx.size(); ++j) std::copy(x[0].p + idx[j] * m, x[0].p + (idx[j] + 1) * m, y.p + int64_t(j) * m);
}
void b_pick_batch(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pick_batch_elems::indices, x[0].s.bd, "pick_batch_elems");
  check_count(idx.size(), y.s.bd, "pick_batch_elems");
  int64_t m = x[0].s.size();
  for (size_t j = 0; j < idx.size(); ++j) Arr(dx.p + idx[j] * m, m) += CArr(dy.p + int64_t(j) * m, m);
}
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
void f_pickrange(const CView* x, int, View y, const Attrs& a) { pickrange_visit<true>(x[0], a, y.p, nullptr, nullptr); }
void b_pickrange(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  pickrange_visit<false>(x[0], a, nullptr, dy.p, dx.p);
}

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
void f_sum_dim(const CView* x, int, View y, const Attrs& a) {
  double cnt;
  Str sy = reduced_str(x[0].s, a, cnt);
  Arr(y.p, y.s.total()).setZero();
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) { y.p[iy] += x[0].p[ix]; });
}
void b_sum_dim(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  double cnt;
  Str sy = reduced_str(x[0].s, a, cnt);
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) { dx.p[ix] += dy.p[iy]; });
}
void moment_params(const CView& x, const Attrs& a, double& r, double& N, Str& sy) {
  double cnt;
  sy = reduced_str(x.s, a, cnt);
  r = double(a.integer(attr::moment_dim::r));
  int64_t nn = a.integer(attr::moment_dim::n);
  N = nn > 0 ? double(nn) : cnt;
}
void f_moment(const CView* x, int, View y, const Attrs& a) {
  double r, N;
  Str sy;
  moment_params(x[0], a, r, N, sy);
  Arr(y.p, y.s.total()).setZero();
  float rf = float(r);
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) { y.p[iy] += std::pow(x[0].p[ix], rf); });
  Arr(y.p, y.s.total()) /= float(N);
}
void b_moment(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  double r, N;
  Str sy;
  moment_params(x[0], a, r, N, sy);
  float c = float(r / N), rm1 = float(r - 1);
  iter2(ext(x[0].s), cstr(x[0].s), sy, [&](int64_t ix, int64_t iy) {
    dx.p[ix] += dy.p[iy] * c * (r != 1 ? std::pow(x[0].p[ix], rm1) : 1.0f);
  });
}

// ------------------------------------------------------------------ losses

void f_pnls(const CView* x, int, View y, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pickneglogsoftmax::indices, x[0].s.d[0], "pickneglogsoftmax");
  check_count(idx.size(), x[0].s.bd, "pickneglogsoftmax");
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    y.p[b] = lse_strided(xp, n, 1) - xp[idx[size_t(b)]];
  }
}
// Acc: dx += the gradient; else dx = the gradient, every element written and none read.
template <bool Acc>
void pnls_grad(const CView* x, CView y, CView dy, View dx, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::pickneglogsoftmax::indices, x[0].s.d[0], "pickneglogsoftmax");
  check_count(idx.size(), x[0].s.bd, "pickneglogsoftmax");
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    float xi = xp[idx[size_t(b)]], g = dy.p[b];
    // The forward value is lse - x_i: the log-sum-exp comes back without a second pass.
    float z = y.p ? y.p[b] + xi : NEG_INF;
    if (!std::isfinite(z)) z = lse_strided(xp, n, 1);
    if (Acc)
      rows::add_exp_scaled(xp, n, z, g, dx.p + b * n);
    else
      rows::set_exp_scaled(xp, n, z, g, dx.p + b * n);
    dx.p[b * n + idx[size_t(b)]] -= g;
  }
}
void b_pnls(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) { pnls_grad<true>(x, y, dy, dx, a); }
void b_pnls_set(const CView* x, int, CView y, CView dy, int, View dx, const Attrs& a) {
  pnls_grad<false>(x, y, dy, dx, a);
}
void f_hinge(const CView* x, int, View y, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::hinge::indices, x[0].s.d[0], "hinge");
  check_count(idx.size(), x[0].s.bd, "hinge");
  float m = float(a.num(attr::hinge::m));
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    int64_t gi = idx[size_t(b)];
    float s = 0;
    for (int64_t k = 0; k < n; ++k)
      if (k != gi) s += relu_keep_nan(xp[k] - xp[gi] + m);
    y.p[b] = s;
  }
}
void b_hinge(const CView* x, int, CView, CView dy, int, View dx, const Attrs& a) {
  std::vector<int64_t> idx = index_list(a, attr::hinge::indices, x[0].s.d[0], "hinge");
  check_count(idx.size(), x[0].s.bd, "hinge");
  float m = float(a.num(attr::hinge::m));
  int64_t n = x[0].s.d[0];
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    int64_t gi = idx[size_t(b)];
    float g = dy.p[b], cnt = 0;
    for (int64_t k = 0; k < n; ++k)
      if (k != gi && xp[k] - xp[gi] + m > 0) dx.p[b * n + k] += g, cnt += 1;
    // Only active terms receive dy, as in DyNet (an element without loss gets nothing, even an Inf dy).
    if (cnt > 0) dx.p[b * n + gi] -= cnt * g;
  }
}
// DyNet's FBinaryLogLoss: a prediction of exactly 0 or 1 on the wrong side costs -log(FLT_MIN).
float bll_term(float x, float t) {
  const float cap = -std::log(FLT_MIN);
  if (t == 1.0f) return x == 0.0f ? cap : -std::log(x);
  if (t == 0.0f) return x == 1.0f ? cap : -std::log1p(-x);
  if (x == 0.0f || x == 1.0f) return cap;
  return -(t * std::log(x) + (1 - t) * std::log1p(-x));
}
void f_bll(const CView* x, int, View y, const Attrs&) {
  double s = 0;
  for (int64_t k = 0; k < x[0].s.total(); ++k) s += double(bll_term(x[0].p[k], x[1].p[k]));
  y.p[0] = float(s);
}
// DyNet's backward moves a prediction of exactly 0 to FLT_MIN and of exactly 1 to 0.9999999f.
void b_bll(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  float g = dy.p[0];
  for (int64_t k = 0; k < x[0].s.total(); ++k) {
    float x0 = x[0].p[k], t = x[1].p[k];
    float v = x0 == 0.0f ? FLT_MIN : (x0 == 1.0f ? 0.9999999f : x0);
    if (i == 1) {
      dx.p[k] += g * (std::log1p(-v) - std::log(v));
    } else if (x0 != t) {  // DyNet: no gradient where the prediction equals the target
      float d = t == 1.0f ? -t / v : (t == 0.0f ? (1 - t) / (1 - v) : (1 - t) / (1 - v) - t / v);
      dx.p[k] += g * d;
    }
  }
}
void f_sqdist(const CView* x, int, View y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = (CArr(bat(x[0], b), m) - CArr(bat(x[1], b), m)).square().sum();
}
void b_sqdist(const CView* x, int, CView y, CView dy, int i, View dx, const Attrs&) {
  int64_t m = x[0].s.size();
  float sign = i == 0 ? 2.0f : -2.0f;
  for (int64_t b = 0; b < y.s.bd; ++b)
    Arr(bat(dx, b), m) += (sign * dy.p[b]) * (CArr(bat(x[0], b), m) - CArr(bat(x[1], b), m));
}
void f_l1(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.total();
  y.p[0] = (CArr(x[0].p, n) - CArr(x[1].p, n)).abs().sum();
}
void b_l1(const CView* x, int, CView, CView dy, int i, View dx, const Attrs&) {
  for (int64_t k = 0; k < dx.s.total(); ++k) {
    float d = x[i].p[k] - x[1 - i].p[k];
    dx.p[k] += (d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f)) * dy.p[0];
  }
}
void f_huber(const CView* x, int, View y, const Attrs& a) {
  float c = float(a.num(attr::huber_distance::c));
  double s = 0;
  for (int64_t k = 0; k < x[0].s.total(); ++k) {
    float d = std::fabs(x[0].p[k] - x[1].p[k]);
    s += double(d < c ? d * d : c * (2 * d - c));
  }
  y.p[0] = float(0.5 * s);  // DyNet's HuberDistance halves the sum
}
void b_huber(const CView* x, int, CView, CView dy, int i, View dx, const Attrs& a) {
  float c = float(a.num(attr::huber_distance::c));
  for (int64_t k = 0; k < dx.s.total(); ++k) {
    float d = x[i].p[k] - x[1 - i].p[k];
    float sg = d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
    dx.p[k] += dy.p[0] * (std::fabs(d) < c ? d : c * sg);
  }
}

void f_argmax(const CView* x, int, View y, const Attrs&) {
  int64_t n = x[0].s.d[0];
  std::fill(y.p, y.p + y.s.total(), 0.0f);
  for (int64_t b = 0; b < x[0].s.bd; ++b) {
    const float* xp = x[0].p + b * n;
    int64_t best = 0;
    for (int64_t k = 1; k < n; ++k)
      if (xp[k] > xp[best] || (std::isnan(xp[k]) && !std::isnan(xp[best]))) best = k;
    y.p[b * n + best] = 1.0f;
  }
}
void b_argmax(const CView*, int, CView, CView dy, int, View dx, const Attrs& a) {
  if (a.flag(attr::argmax::straight_through)) Arr(dx.p, dx.s.total()) += CArr(dy.p, dx.s.total());
}

std::vector<KernelDef> build_table() {
  std::vector<KernelDef> t = {
      {"input", nullptr, nullptr},
      {"constant", f_constant, nullptr},
      {"random_normal", f_rnormal, nullptr},
      {"random_bernoulli", f_rbern, nullptr},
      {"random_uniform", f_runif, nullptr},
      {"random_gumbel", f_rgumbel, nullptr},
      {"parameter", nullptr, nullptr},
      {"lookup", nullptr, nullptr},
      {"add", f_add, b_add},
      {"negate", f_negate, b_negate},
      {"plus_const", f_plus_const, b_identity},
      {"const_minus", f_const_minus, b_negate},
      {"scalar_mult", f_scalar_mult, b_scalar_mult},
      {"cmult", f_cmult, b_cmult},
      {"cdiv", f_cdiv, b_cdiv},
      {"matmul", f_matmul, b_matmul},
      {"affine_transform", f_affine, b_affine},
      {"colwise_add", f_add, b_add},
      {"sum", f_sum, b_add},
      {"average", f_average, b_average},
      {"bmin", f_bmin, b_bmin},
      {"bmax", f_bmax, b_bmax},
      {"pow", f_pow, b_pow},
      {"dot_product", f_dot, b_dot},
      {"squared_norm", f_sqnorm, b_sqnorm},
      {"l2_norm", f_l2, b_l2},
      {"tanh", f_tanh, b_tanh},
      {"logistic", f_logistic, b_logistic},
      {"rectify", f_rectify, b_rectify},
      {"elu", f_elu, b_elu},
      {"selu", f_selu, b_selu},
      {"softsign", f_softsign, b_softsign},
      {"exp", f_exp, b_exp},
      {"log", f_log, b_log_b},
      {"sqrt", f_sqrt, b_sqrt},
      {"square", f_square, b_square},
      {"cube", f_cube, b_cube},
      {"abs", f_abs, b_abs},
      {"log_sigmoid", f_log_sigmoid, b_log_sigmoid},
      {"erf", f_erf, b_erf},
      {"lgamma", f_lgamma, b_lgamma},
      {"softmax", f_softmax, b_softmax},
      {"log_softmax", f_log_softmax, b_log_softmax},
      {"logsumexp", f_logsumexp, b_logsumexp},
      {"logsumexp_dim", f_lse_dim, b_lse_dim},
      {"transpose", f_transpose, b_transpose},
      {"reshape", f_copy, b_identity},
      {"concatenate", f_concat, b_concat},
      {"concatenate_to_batch", f_concat_batch, b_concat_batch},
      {"select_rows", f_select_rows, b_select_rows},
      {"select_cols", f_select_cols, b_select_cols},
      {"pick", f_pick, b_pick},
      {"pick_batch_elems", f_pick_batch, b_pick_batch},
      {"pickrange", f_pickrange, b_pickrange},
      {"sum_dim", f_sum_dim, b_sum_dim},
      {"moment_dim", f_moment, b_moment},
      {"pickneglogsoftmax", f_pnls, b_pnls, b_pnls_set},
      {"hinge", f_hinge, b_hinge},
      {"binary_log_loss", f_bll, b_bll},
      {"squared_distance", f_sqdist, b_sqdist},
      {"l1_distance", f_l1, b_l1},
      {"huber_distance", f_huber, b_huber},
      {"nobackprop", f_nobackprop, b_nobackprop},
      {"scale_gradient", f_scale_gradient, b_scale_gradient},
      {"argmax", f_argmax, b_argmax},
      {"sin", f_sin, b_sin},
      {"cos", f_cos, b_cos},
      {"tan", f_tan, b_tan},
      {"asin", f_asin, b_asin},
      {"acos", f_acos, b_acos},
      {"atan", f_atan, b_atan},
      {"sinh", f_sinh, b_sinh},
      {"cosh", f_cosh, b_cosh},
      {"asinh", f_asinh, b_asinh},
      {"acosh", f_acosh, b_acosh},
      {"atanh", f_atanh, b_atanh},
      {"silu", f_silu, b_silu},
      {"round", f_round, b_round},
      {"ceil", f_ceil, b_ceil},
      {"floor", f_floor, b_floor},
      {"to_device", f_copy, b_identity},
  };
  for (const KernelDef& k : more_kernels()) t.push_back(k);
  return t;
}

}  // namespace ku

const std::vector<KernelDef>& kernel_table() {
  static const std::vector<KernelDef> t = ku::build_table();
  return t;
}

int kernel_code(const std::string& name) {
  static const std::unordered_map<std::string, int> m = [] {
    std::unordered_map<std::string, int> r;
    const auto& t = kernel_table();
    for (size_t k = 0; k < t.size(); ++k) r[t[k].name] = int(k);
    return r;
  }();
  auto it = m.find(name);
  return it == m.end() ? -1 : it->second;
}

}  // namespace dy
