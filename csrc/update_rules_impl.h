// The elementwise rules of update_rules.h, written so the compiler vectorises their loops for
// whatever instruction set this translation unit is built with (branch-free bodies, restrict
// pointers, -fno-math-errno so sqrt becomes one vector instruction).
//
// A rule is its body, registered by DY_RULE(name): it steps one element, w, with the gradient g
// (as read, before the clipping scale h.gscale) and the rule's state elements s0, s1, s2 (only
// the first kRuleStates[rule] are real), the hyper values in h (update_rules_table.h).
#pragma once

#include <cmath>

#include "flush_denormals.h"
#include "update_rules.h"

namespace dy {
namespace upd {
namespace {

template <int R, class Body, bool CLEAR>
void step_t(float* __restrict w, float* __restrict g0, float* const* s, int64_t n, const Hyper& hp) {
  const Hyper h = hp;  // a local copy: the stores through w cannot change it, so its fields stay in registers
  constexpr int ns = kRuleStates[R];
  static_assert(ns <= 3, "DY_RULE bodies have at most 3 state tensors");
  float* __restrict s0 = ns > 0 ? s[0] : nullptr;
  float* __restrict s1 = ns > 1 ? s[1] : nullptr;
  float* __restrict s2 = ns > 2 ? s[2] : nullptr;
  for (int64_t k = 0; k < n; ++k) {
    float g = g0[k];
    if (CLEAR) g0[k] = 0.f;
    float u0 = 0.f, u1 = 0.f, u2 = 0.f;  // the states a rule does not have
    Body::step(h, g, w[k], ns > 0 ? s0[k] : u0, ns > 1 ? s1[k] : u1, ns > 2 ? s2[k] : u2);
  }
}

template <int R, class Body>
void step_r(float* w, float* g, float* const* s, int64_t n, const Hyper& h, bool clear) {
  FlushDenormals ftz;
  if (clear)
    step_t<R, Body, true>(w, g, s, n, h);
  else
    step_t<R, Body, false>(w, g, s, n, h);
}

StepFn steps_here[kRules];  // this build's kernels by rule code, filled by the DY_RULE registrations

struct Registration {
  Registration(int rule, StepFn f) { steps_here[rule] = f; }
};

// DY_RULE(adam) { body }: the kernel of rule adam (a name of update_rules_table.h's Rule).
#define DY_RULE(NAME)                                                                                          \
  struct rule_body_##NAME {                                                                                    \
    static inline void step(const Hyper& h, float g, float& w, [[maybe_unused]] float& s0,                     \
                            [[maybe_unused]] float& s1, [[maybe_unused]] float& s2);                           \
  };                                                                                                           \
  const Registration registered_##NAME(NAME, &step_r<NAME, rule_body_##NAME>);                                 \
  inline void rule_body_##NAME::step([[maybe_unused]] const Hyper& h, float g, float& w,                       \
                                     [[maybe_unused]] float& s0, [[maybe_unused]] float& s1,                   \
                                     [[maybe_unused]] float& s2)

// g / sqrt(x).  The fast builds (DY_UPD_RECIP) take it as g times the estimate of 1 / sqrt(x),
// refined once (within 2 ulp); written as a quotient, they estimated the root and then its
// reciprocal, each refined: twice the work of the pass's arithmetic.
inline float over_sqrt(float g, float x) {
#if defined(DY_UPD_RECIP) && DY_UPD_RECIP
  return g * (1.0f / std::sqrt(x));
#else
  return g / std::sqrt(x);
#endif
}

// ---------------------------------------------------------------- the rules (formulas: dynet_api/trainers.py)

DY_RULE(sgd) { w -= h.lr_gs * g; }

DY_RULE(momentum) {
  s0 = s0 * h.mom - h.lr_gs * g;
  w += s0 * h.wscale;
}

DY_RULE(adagrad) {
  g *= h.gscale;
  s0 = s0 + g * g;
  w -= over_sqrt(h.lr * g, s0 + h.eps);
}

DY_RULE(adadelta) {
  const float r = h.rho;
  g *= h.gscale;
  s0 = s0 * r + g * g * (1 - r);  // squared first, as DyNet: g^2 overflows to inf there
  float d = over_sqrt(-g * std::sqrt(s1 + h.eps), s0 + h.eps);
  s1 = s1 * r + d * d * (1 - r);
  w += d * h.wscale;
}

DY_RULE(rmsprop) {
  const float r = h.rho;
  g *= h.gscale;
  s0 = s0 * r + g * g * (1 - r);
  w -= over_sqrt(h.lr * g, s0 + h.eps);
}

// Adam's moments: m (first) and v (second) of the scaled gradient g.
inline void adam_moments(const Hyper& h, float g, float& m, float& v) {
  m = m * h.beta_1 + (1 - h.beta_1) * g;
  v = v * h.beta_2 + g * g * (1 - h.beta_2);
}

DY_RULE(adam) {
  g *= h.gscale;
  adam_moments(h, g, s0, s1);
  w -= h.lr * s0 / (std::sqrt(s1) + h.eps);
}

DY_RULE(amsgrad) {
  g *= h.gscale;
  adam_moments(h, g, s0, s1);
  s2 = s2 > s1 ? s2 : s1;  // the running maximum of v; not std::max: no out-of-line copy shared across the builds
  w -= h.lr * s0 / (std::sqrt(s2) + h.eps);
}

// Blocks of 1024 squares summed in 64 float lanes (a lane's sum has 16 terms: float keeps about
// 7 digits of each block), each lane's block sums added in double, the 64 lanes added once at the
// end by halves.  64 lanes are enough independent accumulators for the vector units to stream the
// data (one chain of double adds ran at a sixth of the memory's speed), and no per-block step is a
// chain of scalar adds (summing the 64 lanes per block cost more than reading the block).  The
// squares of gradients below ~1e-19 are denormal floats: flushed to zero, as in the rules (they
// cost ~100x each otherwise; a weight that training drives to zero has such gradients on every
// step).
double sq_norm_vec(const float* __restrict p, int64_t n) {
  constexpr int L = 64;
  if (n < L) {  // a row of a lookup table: in double, no lanes to set up and add
    double s = 0;
    for (int64_t k = 0; k < n; ++k) s += double(p[k]) * double(p[k]);
    return s;
  }
  FlushDenormals ftz;
  constexpr int64_t B = 1024;
  double tot[L] = {};
  int64_t k = 0;
  while (k + L <= n) {
    const int64_t end = n - k >= B ? k + B : k + (n - k) / L * L;
    float acc[L] = {};
    for (; k < end; k += L)
      for (int j = 0; j < L; ++j) acc[j] += p[k + j] * p[k + j];
    for (int j = 0; j < L; ++j) tot[j] += double(acc[j]);
  }
  for (; k < n; ++k) tot[0] += double(p[k]) * double(p[k]);
  for (int w = L / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) tot[j] += tot[j + w];
  return tot[0];
}

const Kernels kernels_here = {steps_here, &sq_norm_vec};

}  // namespace
}  // namespace upd
}  // namespace dy
