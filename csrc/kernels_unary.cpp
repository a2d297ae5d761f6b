// The op table's elementwise unary ops (the trigonometric and rounding ones included) and
// gradient control (nobackprop, scale_gradient, argmax).
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
#include "simd_act.h"

namespace dy {
namespace ku {

// ------------------------------------------------------------------ elementwise unary

template <class F>
void map1(const CView& x, const View& y, F f) {
  int64_t n = y.s.total();
  for (int64_t k = 0; k < n; ++k) y.p[k] = f(x.p[k]);
}
// dx += h(x, y, dy)
template <class H>
void map_b(const CView& x, const CView& y, const CView& dy, const View& dx, H h) {
  int64_t n = dx.s.total();
  for (int64_t k = 0; k < n; ++k) dx.p[k] += h(x.p[k], y.p[k], dy.p[k]);
}

// An elementwise op: y = EXPR_F(v) and dx += EXPR_B(v, w, g) for x = v, y = w, dy = g; INIT
// (a statement) reads the op's attributes by name before the loop.
#define UNARY_WITH(NAME, INIT, EXPR_F, EXPR_B)                                                      \
  void f_##NAME(const CView* x, int, const View& y, const Attrs& a) {                                       \
    (void)a;                                                                                          \
    INIT;                                                                                             \
    map1(x[0], y, [&](float v) -> float { return EXPR_F; });                                          \
  }                                                                                                   \
  void b_##NAME(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs& a) {               \
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

// logistic and tanh, whose derivatives are functions of y alone: AVX2+FMA where the CPU has it
// (Eigen's approximations, simd_act.h, as the fused LSTM gates use them; ~4x the scalar exp
// loop), else Eigen's portable code.  One template each for the whole-block kernels, the
// single-node ones and the runs (an autobatched group's scattered operands, read in place).
template <bool Tanh>
void act_block(const float* x, float* y, int64_t n) {
#ifdef DY_ACT_X86
  if (act::avx2_fma()) return act::map_256<Tanh ? act::kTanh : act::kLogistic>(x, y, n);
#endif
  if constexpr (Tanh)
    Arr(y, n) = CArr(x, n).tanh();
  else
    Arr(y, n) = CArr(x, n).logistic();
}
// dx = dy f'(y) (set) or dx += dy f'(y): tanh' = 1 - y^2, logistic' = y (1 - y)
template <bool Tanh>
void act_grad(const float* y, const float* dy, float* dx, int64_t n, bool set) {
  auto Y = CArr(y, n);
  if constexpr (Tanh) {
    if (set)
      Arr(dx, n) = CArr(dy, n) * (1.0f - Y.square());
    else
      Arr(dx, n) += CArr(dy, n) * (1.0f - Y.square());
  } else {
    if (set)
      Arr(dx, n) = CArr(dy, n) * Y * (1.0f - Y);
    else
      Arr(dx, n) += CArr(dy, n) * Y * (1.0f - Y);
  }
}
template <bool Tanh>
void f_act(const CView* x, int, const View& y, const Attrs&) {
  act_block<Tanh>(x[0].p, y.p, y.s.total());
}
template <bool Tanh>
void b_act(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  act_grad<Tanh>(y.p, dy.p, dx.p, dx.s.total(), false);
}
template <bool Tanh>
void b_act_set(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  act_grad<Tanh>(y.p, dy.p, dx.p, dx.s.total(), true);
}
template <bool Tanh>
void f_act_runs(const float* const* x, const int64_t* n, int runs, int, float* y) {
  for (int r = 0; r < runs; y += n[r], ++r) act_block<Tanh>(x[r], y, n[r]);
}
template <bool Tanh>
void b_act_runs(const float* const*, const int64_t* n, int runs, int, const float* y, const float* dy, int, float* dx,
                bool set) {  // (y and dy lie in one block: one pass)
  int64_t m = 0;
  for (int r = 0; r < runs; ++r) m += n[r];
  act_grad<Tanh>(y, dy, dx, m, set);
}
DY_REGISTER(tanh, f_act<true>, b_act<true>, b_act_set<true>, f_act_runs<true>, b_act_runs<true>);
DY_REGISTER(logistic, f_act<false>, b_act<false>, b_act_set<false>, f_act_runs<false>, b_act_runs<false>);
void f_exp(const CView* x, int, const View& y, const Attrs&) { Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()).exp(); }
void b_exp(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  int64_t n = dx.s.total();
  Arr(dx.p, n) += CArr(dy.p, n) * CArr(y.p, n);
}
DY_REGISTER(exp, f_exp, b_exp);
void f_log(const CView* x, int, const View& y, const Attrs&) { Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()).log(); }

float sig(float v) { return 0.5f + 0.5f * std::tanh(0.5f * v); }
float round_away(float v) { return v > 0 ? std::floor(v + 0.5f) : (v < 0 ? -std::floor(-v + 0.5f) : v); }
UNARY(log_b, v, g / v)
DY_REGISTER(log, f_log, b_log_b);

// The elementwise ops written as one scalar formula each: X(name, INIT, y = f(v), dx += g(v, w, g))
// with x = v, y = w, dy = g, and INIT a statement reading the op's attributes by name (or (void)0).
// This line is the op's one place in this backend: it makes the kernels and registers them.
// clang-format off
#define DY_ELEMENTWISE(X) \
  X(rectify, (void)0, v > 0 ? v : (v == v ? 0.0f : v), w > 0 ? g : 0.0f) \
  X(elu, const float alpha = float(a.num(attr::elu::alpha)), \
    v > 0 ? v : alpha * std::expm1(std::min(v, 0.0f)), \
    g*(v > 0 ? 1.0f : alpha * std::exp(std::min(v, 0.0f)))) \
  X(selu, (void)0, \
    float(SELU_LAMBDA * (v > 0 ? double(v) : SELU_ALPHA * std::expm1(double(std::min(v, 0.0f))))), \
    g* float(SELU_LAMBDA * (v > 0 ? 1.0 : SELU_ALPHA * std::exp(double(std::min(v, 0.0f)))))) \
  X(softsign, (void)0, v / (1.0f + std::fabs(v)), g*(1.0f - std::fabs(w)) * (1.0f - std::fabs(w))) \
  X(sqrt, (void)0, std::sqrt(v), g / (2.0f * w)) \
  X(square, (void)0, v* v, g * 2.0f * v) \
  X(cube, (void)0, v* v* v, g * 3.0f * v * v) \
  X(abs, (void)0, std::fabs(v), g*(v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f))) \
  X(log_sigmoid, (void)0, std::min(v, 0.0f) - std::log1p(std::exp(-std::fabs(v))), g*(1.0f - std::exp(w))) \
  X(erf, (void)0, float(std::erf(double(v))), g* TWO_OVER_SQRT_PI * std::exp(-v * v)) \
  X(lgamma, (void)0, float(std::lgamma(double(v))), g* float(digamma(double(v)))) \
  X(nobackprop, (void)0, v, 0.0f) \
  X(scale_gradient, const float lambd = float(a.num(attr::scale_gradient::lambd)), v, g* lambd) \
  X(sin, (void)0, std::sin(v), g* std::cos(v)) \
  X(cos, (void)0, std::cos(v), -g * std::sin(v)) \
  X(tan, (void)0, std::tan(v), g*(1.0f + w * w)) \
  X(asin, (void)0, std::asin(v), g / std::sqrt(1.0f - v * v)) \
  X(acos, (void)0, std::acos(v), -g / std::sqrt(1.0f - v * v)) \
  X(atan, (void)0, std::atan(v), g / (1.0f + v * v)) \
  X(sinh, (void)0, std::sinh(v), g* std::cosh(v)) \
  X(cosh, (void)0, std::cosh(v), g* std::sinh(v)) \
  X(asinh, (void)0, std::asinh(v), g / std::sqrt(v * v + 1.0f)) \
  X(acosh, (void)0, std::acosh(v), g / std::sqrt(v * v - 1.0f)) \
  X(atanh, (void)0, std::atanh(v), g / (1.0f - v * v)) \
  X(silu, const float beta = float(a.num(attr::silu::beta)), \
    v* sig(beta * v), \
    g*(sig(beta * v) + beta * v * sig(beta * v) * (1.0f - sig(beta * v)))) \
  X(round, const bool st = a.flag(attr::round::straight_through), round_away(v), st ? g : 0.0f) \
  X(ceil, const bool st = a.flag(attr::ceil::straight_through), std::ceil(v), st ? g : 0.0f) \
  X(floor, const bool st = a.flag(attr::floor::straight_through), std::floor(v), st ? g : 0.0f)
// clang-format on
#define DY_ELEMENTWISE_OP(NAME, ...) \
  UNARY_WITH(NAME, __VA_ARGS__)      \
  DY_REGISTER(NAME, f_##NAME, b_##NAME);
DY_ELEMENTWISE(DY_ELEMENTWISE_OP)
#undef DY_ELEMENTWISE_OP

// ------------------------------------------------------------------ gradient control

void f_argmax(const CView* x, int, const View& y, const Attrs&) {
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
void b_argmax(const CView*, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  if (a.flag(attr::argmax::straight_through)) Arr(dx.p, dx.s.total()) += CArr(dy.p, dx.s.total());
}
DY_REGISTER(argmax, f_argmax, b_argmax);


}  // namespace ku
}  // namespace dy
