// See rowops.h.  exp is Cephes' single-precision scheme (as Eigen's): x = n ln2 + r with
// |r| <= ln2/2, exp(r) by a degree-7 polynomial (relative error ~1e-7), scaled by 2^n.
#include "rowops.h"

#include <Eigen/Core>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define DY_ROWOPS_X86 1
#endif

namespace dy {
namespace rows {

namespace {

using CArr = Eigen::Map<const Eigen::ArrayXf>;
using Arr = Eigen::Map<Eigen::ArrayXf>;

float lse_base(const float* p, int64_t n) {
  float m = CArr(p, n).maxCoeff();
  if (std::isinf(m)) return m;
  return m + std::log((CArr(p, n) - m).exp().sum());
}
void add_exp_scaled_base(const float* x, int64_t n, float z, float g, float* dx) {
  Arr(dx, n) += (CArr(x, n) - z).exp() * g;
}
void set_exp_scaled_base(const float* x, int64_t n, float z, float g, float* dx) {
  Arr(dx, n) = (CArr(x, n) - z).exp() * g;
}

#ifdef DY_ROWOPS_X86
constexpr float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
constexpr float P0 = 1.9875691500E-4f, P1 = 1.3981999507E-3f, P2 = 8.3334519073E-3f, P3 = 4.1665795894E-2f,
                P4 = 1.6666665459E-1f, P5 = 5.0000001201E-1f;

#define DY_T512 __attribute__((target("avx512f")))
#define DY_T256 __attribute__((target("avx2,fma")))

DY_T512 inline __m512 exp512(__m512 x) {
  // Below -104 exp is 0 in float; the clamp keeps r finite for -inf.  scalef handles 2^n
  // down to the denormals (flushed while a graph runs) and zero.
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7228f)), _mm512_set1_ps(-104.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
  __m512 y = _mm512_set1_ps(P0);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P1));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P2));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P3));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P4));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(P5));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

DY_T512 float lse_512(const float* p, int64_t n) {
  int64_t j = 0;
  __m512 m0 = _mm512_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0;
  for (; j + 32 <= n; j += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(p + j));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(p + j + 16));
  }
  float m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  for (; j < n; ++j) m = std::max(m, p[j]);
  if (std::isinf(m)) return m;
  __m512 vm = _mm512_set1_ps(m), s0 = _mm512_setzero_ps(), s1 = s0;
  j = 0;
  for (; j + 32 <= n; j += 32) {
    s0 = _mm512_add_ps(s0, exp512(_mm512_sub_ps(_mm512_loadu_ps(p + j), vm)));
    s1 = _mm512_add_ps(s1, exp512(_mm512_sub_ps(_mm512_loadu_ps(p + j + 16), vm)));
  }
  if (j + 16 <= n) {
    s0 = _mm512_add_ps(s0, exp512(_mm512_sub_ps(_mm512_loadu_ps(p + j), vm)));
    j += 16;
  }
  if (j < n) {
    __mmask16 k = __mmask16((1u << (n - j)) - 1);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + j), vm));
    s1 = _mm512_add_ps(s1, _mm512_maskz_mov_ps(k, e));
  }
  return m + std::log(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
}

// Acc: dx += g e (else dx = g e, dx not read; fma with 0 rounds as the product alone).
template <bool Acc>
DY_T512 void exp_scaled_512(const float* x, int64_t n, float z, float g, float* dx) {
  __m512 vz = _mm512_set1_ps(z), vg = _mm512_set1_ps(g);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + j), vz));
    _mm512_storeu_ps(dx + j, Acc ? _mm512_fmadd_ps(e, vg, _mm512_loadu_ps(dx + j)) : _mm512_mul_ps(e, vg));
  }
  if (j < n) {
    __mmask16 k = __mmask16((1u << (n - j)) - 1);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vz));
    _mm512_mask_storeu_ps(dx + j, k, Acc ? _mm512_fmadd_ps(e, vg, _mm512_maskz_loadu_ps(k, dx + j)) : _mm512_mul_ps(e, vg));
  }
}
DY_T512 void add_exp_scaled_512(const float* x, int64_t n, float z, float g, float* dx) {
  exp_scaled_512<true>(x, n, z, g, dx);
}
DY_T512 void set_exp_scaled_512(const float* x, int64_t n, float z, float g, float* dx) {
  exp_scaled_512<false>(x, n, z, g, dx);
}

DY_T256 inline __m256 exp256(__m256 x) {
  // 2^n is built in the exponent field, valid for n >= -126: below x = -87.3 the result is set to 0.
  __m256 small = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.7228f)), _mm256_set1_ps(-87.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
  __m256 y = _mm256_set1_ps(P0);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P1));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P2));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P3));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P4));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(P5));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n in [-126, 128]: 2^n as two factors so that n = 128 (x near 88.72) does not overflow the field.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i half = _mm256_srai_epi32(ni, 1);
  __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, f1), f2);
  return _mm256_andnot_ps(small, y);
}

DY_T256 float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
DY_T256 float hmax256(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

DY_T256 float lse_256(const float* p, int64_t n) {
  int64_t j = 0;
  __m256 m0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(p + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(p + j + 8));
  }
  float m = hmax256(_mm256_max_ps(m0, m1));
  for (; j < n; ++j) m = std::max(m, p[j]);
  if (std::isinf(m)) return m;
  __m256 vm = _mm256_set1_ps(m), s0 = _mm256_setzero_ps(), s1 = s0;
  j = 0;
  for (; j + 16 <= n; j += 16) {
    s0 = _mm256_add_ps(s0, exp256(_mm256_sub_ps(_mm256_loadu_ps(p + j), vm)));
    s1 = _mm256_add_ps(s1, exp256(_mm256_sub_ps(_mm256_loadu_ps(p + j + 8), vm)));
  }
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; j < n; ++j) s += std::exp(p[j] - m);
  return m + std::log(s);
}

template <bool Acc>
DY_T256 void exp_scaled_256(const float* x, int64_t n, float z, float g, float* dx) {
  __m256 vz = _mm256_set1_ps(z), vg = _mm256_set1_ps(g);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), vz));
    _mm256_storeu_ps(dx + j, Acc ? _mm256_fmadd_ps(e, vg, _mm256_loadu_ps(dx + j)) : _mm256_mul_ps(e, vg));
  }
  for (; j < n; ++j) dx[j] = (Acc ? dx[j] : 0.0f) + g * std::exp(x[j] - z);
}
DY_T256 void add_exp_scaled_256(const float* x, int64_t n, float z, float g, float* dx) {
  exp_scaled_256<true>(x, n, z, g, dx);
}
DY_T256 void set_exp_scaled_256(const float* x, int64_t n, float z, float g, float* dx) {
  exp_scaled_256<false>(x, n, z, g, dx);
}
#endif

struct Impl {
  float (*lse)(const float*, int64_t);
  void (*add_exp_scaled)(const float*, int64_t, float, float, float*);
  void (*set_exp_scaled)(const float*, int64_t, float, float, float*);
  const char* isa;
};

Impl choose() {
  const char* env = std::getenv("DYNET_CPU_EIGEN_ISA");
  bool base = env && std::strcmp(env, "baseline") == 0;
  bool cap2 = env && std::strcmp(env, "avx2") == 0;  // DYNET_CPU_EIGEN_ISA=avx2: no AVX-512
#ifdef DY_ROWOPS_X86
  if (!base) {
    __builtin_cpu_init();
    if (!cap2 && __builtin_cpu_supports("avx512f")) return {lse_512, add_exp_scaled_512, set_exp_scaled_512, "avx512"};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {lse_256, add_exp_scaled_256, set_exp_scaled_256, "avx2"};
  }
#endif
  (void)base, (void)cap2;
  return {lse_base, add_exp_scaled_base, set_exp_scaled_base, "baseline"};
}

const Impl& impl() {
  static const Impl i = choose();
  return i;
}

}  // namespace

// The vectorised exp clamps its argument, which would turn a NaN into a number: NaN in, NaN out.
float lse(const float* p, int64_t n) {
  if (CArr(p, n).isNaN().any()) return std::numeric_limits<float>::quiet_NaN();
  return impl().lse(p, n);
}
void add_exp_scaled(const float* x, int64_t n, float z, float g, float* dx) { impl().add_exp_scaled(x, n, z, g, dx); }
void set_exp_scaled(const float* x, int64_t n, float z, float g, float* dx) { impl().set_exp_scaled(x, n, z, g, dx); }
const char* isa() { return impl().isa; }

}  // namespace rows
}  // namespace dy
