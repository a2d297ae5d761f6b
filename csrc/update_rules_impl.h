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

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>  // the squared norm's lanes and V16
#endif
// The fast AVX-512 build steps 16 elements at a time through V16, whose 1 / sqrt is one estimate
// refined once: GCC 12 has no 512-bit reciprocal square root for 1.0f / sqrtf(x) and estimated
// the root and then its reciprocal, each refined (Adagrad's step of a 64x64 parameter took
// 1.15 us in cache, against 0.62 this way).
#if defined(__AVX512F__) && defined(DY_UPD_RECIP) && DY_UPD_RECIP
#define DY_UPD_V16 1
#else
#define DY_UPD_V16 0
#endif

namespace dy {
namespace upd {
namespace {

// The operations of the rule bodies on one float (every build) and, in the fast AVX-512 build, on
// 16 (V16): root(x) = sqrt(x), larger(a, b) = max(a, b), over_sqrt(g, x) = g / sqrt(x).
inline float root(float x) { return std::sqrt(x); }
inline float larger(float a, float b) { return a > b ? a : b; }  // not std::max: no out-of-line copy shared across the builds

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

#if DY_UPD_V16
struct V16 {
  __m512 v;
  V16() = default;
  V16(float x) : v(_mm512_set1_ps(x)) {}  // NOLINT(google-explicit-constructor): h.lr * g reads as in the scalar body
  explicit V16(__m512 x) : v(x) {}
  static V16 load(const float* p) { return V16(_mm512_loadu_ps(p)); }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  friend V16 operator+(V16 a, V16 b) { return V16(_mm512_add_ps(a.v, b.v)); }
  friend V16 operator-(V16 a, V16 b) { return V16(_mm512_sub_ps(a.v, b.v)); }
  friend V16 operator*(V16 a, V16 b) { return V16(_mm512_mul_ps(a.v, b.v)); }
  friend V16 operator-(V16 a) { return V16(_mm512_sub_ps(_mm512_setzero_ps(), a.v)); }
  // a / b as a times the estimate of 1 / b refined once: r (2 - b r)
  friend V16 operator/(V16 a, V16 b) {
    const __m512 r = _mm512_rcp14_ps(b.v);
    return V16(_mm512_mul_ps(a.v, _mm512_mul_ps(r, _mm512_fnmadd_ps(b.v, r, _mm512_set1_ps(2.0f)))));
  }
  V16& operator+=(V16 b) { return *this = *this + b; }
  V16& operator-=(V16 b) { return *this = *this - b; }
  V16& operator*=(V16 b) { return *this = *this * b; }
};
// 1 / sqrt(x), the estimate refined once: r (3 - x r^2) / 2 (x = 0 gives NaN, as the scalar
// build's estimate does; exact arithmetic gives inf or NaN there).
inline __m512 rsqrt_nr(__m512 x) {
  const __m512 r = _mm512_rsqrt14_ps(x);
  const __m512 t = _mm512_fnmadd_ps(_mm512_mul_ps(x, r), r, _mm512_set1_ps(3.0f));
  return _mm512_mul_ps(_mm512_mul_ps(r, _mm512_set1_ps(0.5f)), t);
}
inline V16 over_sqrt(V16 g, V16 x) { return V16(_mm512_mul_ps(g.v, rsqrt_nr(x.v))); }
// sqrt(x) = x / sqrt(x), with sqrt(0) = 0 (its estimate is masked there)
inline V16 root(V16 x) {
  const __mmask16 nz = _mm512_cmp_ps_mask(x.v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
  return V16(_mm512_maskz_mul_ps(nz, x.v, rsqrt_nr(x.v)));
}
inline V16 larger(V16 a, V16 b) { return V16(_mm512_max_ps(a.v, b.v)); }  // a > b ? a : b, as the scalar one
#endif

template <int R, class Body, bool CLEAR>
void step_t(float* __restrict w, float* __restrict g0, float* const* s, int64_t n, const Hyper& hp) {
  const Hyper h = hp;  // a local copy: the stores through w cannot change it, so its fields stay in registers
  constexpr int ns = kRuleStates[R];
  static_assert(ns <= 3, "DY_RULE bodies have at most 3 state tensors");
  float* __restrict s0 = ns > 0 ? s[0] : nullptr;
  float* __restrict s1 = ns > 1 ? s[1] : nullptr;
  float* __restrict s2 = ns > 2 ? s[2] : nullptr;
  int64_t k = 0;
#if DY_UPD_V16
  for (; k + 16 <= n; k += 16) {
    V16 g = V16::load(g0 + k), wk = V16::load(w + k), u0, u1, u2;
    if (CLEAR) V16(0.f).store(g0 + k);
    if (ns > 0) u0 = V16::load(s0 + k);
    if (ns > 1) u1 = V16::load(s1 + k);
    if (ns > 2) u2 = V16::load(s2 + k);
    Body::step(h, g, wk, u0, u1, u2);
    wk.store(w + k);
    if (ns > 0) u0.store(s0 + k);
    if (ns > 1) u1.store(s1 + k);
    if (ns > 2) u2.store(s2 + k);
  }
#endif
  for (; k < n; ++k) {
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

// DY_RULE(adam) { body }: the kernel of rule adam (a name of update_rules_table.h's Rule).  The
// body is written once for T = float and V16 (the fast AVX-512 build's 16 lanes): T for its
// locals, root / larger / over_sqrt for sqrt, max and g / sqrt(x).
#define DY_RULE(NAME)                                                                                          \
  struct rule_body_##NAME {                                                                                    \
    template <class T>                                                                                         \
    static inline void step(const Hyper& h, T g, T& w, [[maybe_unused]] T& s0, [[maybe_unused]] T& s1,         \
                            [[maybe_unused]] T& s2);                                                           \
  };                                                                                                           \
  const Registration registered_##NAME(NAME, &step_r<NAME, rule_body_##NAME>);                                 \
  template <class T>                                                                                           \
  inline void rule_body_##NAME::step([[maybe_unused]] const Hyper& h, T g, T& w, [[maybe_unused]] T& s0,       \
                                     [[maybe_unused]] T& s1, [[maybe_unused]] T& s2)

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
  T d = over_sqrt(-g * root(s1 + h.eps), s0 + h.eps);
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
template <class T>
inline void adam_moments(const Hyper& h, T g, T& m, T& v) {
  m = m * h.beta_1 + (1 - h.beta_1) * g;
  v = v * h.beta_2 + g * g * (1 - h.beta_2);
}

DY_RULE(adam) {
  g *= h.gscale;
  adam_moments(h, g, s0, s1);
  w -= h.lr * s0 / (root(s1) + h.eps);
}

DY_RULE(amsgrad) {
  g *= h.gscale;
  adam_moments(h, g, s0, s1);
  s2 = larger(s2, s1);  // the running maximum of v
  w -= h.lr * s0 / (root(s2) + h.eps);
}

// The squared norm of fewer than 64 floats (a row of a lookup table, a small bias) in double: in
// vector lanes where the build has them, for a scalar sum is one chain of dependent adds (a
// 16-float row took ~64 cycles, four rows a fifth of a lookup update).
double short_sq_norm(const float* __restrict p, int64_t n) {
  int64_t k = 0;
  double s = 0;
#if defined(__AVX512F__)
  __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
  for (; k + 16 <= n; k += 16) {
    const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(p + k)), y = _mm512_cvtps_pd(_mm256_loadu_ps(p + k + 8));
    a = _mm512_fmadd_pd(x, x, a);
    b = _mm512_fmadd_pd(y, y, b);
  }
  if (k + 8 <= n) {
    const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(p + k));
    a = _mm512_fmadd_pd(x, x, a);
    k += 8;
  }
  s = _mm512_reduce_add_pd(_mm512_add_pd(a, b));
#elif defined(__AVX2__) && defined(__FMA__)
  __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
  for (; k + 8 <= n; k += 8) {
    const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(p + k)), y = _mm256_cvtps_pd(_mm_loadu_ps(p + k + 4));
    a = _mm256_fmadd_pd(x, x, a);
    b = _mm256_fmadd_pd(y, y, b);
  }
  a = _mm256_add_pd(a, b);
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  s = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
#endif
  for (; k < n; ++k) s += double(p[k]) * double(p[k]);
  return s;
}

#if defined(__AVX512F__)
// lo += the low 8 lanes of a, hi += the high 8, in double
inline void add_halves(__m512 a, __m512d& lo, __m512d& hi) {
  lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
  hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))));
}
#endif

// Blocks of 16 squares a lane summed in float lanes (64 of them; 128 in the AVX-512 builds), each
// lane's block sums added in double, the lanes added once at the end by halves.  Enough
// independent accumulators for the vector units to stream the data (one chain of double adds ran
// at a sixth of the memory's speed; a 64x64 gradient's norm took 0.13 us in four 512-bit
// registers, which GCC kept in memory between blocks, and 0.095 in eight), and no per-block step
// is a chain of scalar adds (summing the lanes per block cost more than reading the block).  The
// squares of gradients below ~1e-19 are denormal floats: flushed to zero, as in the rules (they
// cost ~100x each otherwise; a weight that training drives to zero has such gradients on every
// step).
double sq_norm_vec(const float* __restrict p, int64_t n) {
#if defined(__AVX512F__)
  constexpr int L = 128, V = L / 16;
#else
  constexpr int L = 64;
#endif
  if (n < 64) return short_sq_norm(p, n);
  FlushDenormals ftz;
  constexpr int64_t B = 16 * L;
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512d tot[2 * V];  // lane j's block sums: the low half of acc[j] in tot[2j], the high in tot[2j + 1]
  for (__m512d& t : tot) t = _mm512_setzero_pd();
  while (k + L <= n) {
    const int64_t end = n - k >= B ? k + B : k + (n - k) / L * L;
    __m512 acc[V];
    for (__m512& a : acc) a = _mm512_setzero_ps();
    for (; k < end; k += L)
      for (int j = 0; j < V; ++j) {
        const __m512 x = _mm512_loadu_ps(p + k + 16 * j);
        acc[j] = _mm512_fmadd_ps(x, x, acc[j]);
      }
    for (int j = 0; j < V; ++j) add_halves(acc[j], tot[2 * j], tot[2 * j + 1]);
  }
  if (k + 16 <= n) {  // fewer than L left: their whole vectors in one more accumulator
    __m512 acc = _mm512_setzero_ps();
    for (; k + 16 <= n; k += 16) {
      const __m512 x = _mm512_loadu_ps(p + k);
      acc = _mm512_fmadd_ps(x, x, acc);
    }
    add_halves(acc, tot[0], tot[1]);
  }
  for (int w = V; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) tot[j] = _mm512_add_pd(tot[j], tot[j + w]);
  double s = _mm512_reduce_add_pd(tot[0]);
  for (; k < n; ++k) s += double(p[k]) * double(p[k]);
  return s;
#else
  double tot[L] = {};
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
#endif
}

const Kernels kernels_here = {steps_here, &sq_norm_vec};

}  // namespace
}  // namespace upd
}  // namespace dy
