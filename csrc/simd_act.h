// Eigen's float logistic and tanh as AVX2+FMA vectors (compiled with a target attribute, so
// the module still runs on any x86-64; callers check avx2_fma() first): the fused LSTM kernels
// and the plain logistic/tanh kernels share them.  DYNET_CPU_EIGEN_ISA=baseline keeps Eigen.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define DY_ACT_X86 1
#define DY_ACT_T256 __attribute__((target("avx2,fma")))
#endif

namespace dy {
namespace act {

// Whether the CPU has AVX2 and FMA (and DYNET_CPU_EIGEN_ISA does not ask for the baseline).
inline bool avx2_fma() {
#ifdef DY_ACT_X86
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

#ifdef DY_ACT_X86
// Eigen's scalar_logistic_op<float> (FMA cut-off); below -9 it is exp(x), done per lane.
// min_ps/max_ps return their second operand when either is NaN: x0 goes second so a NaN stays NaN.
DY_ACT_T256 inline __m256 logistic_256(__m256 x0) {
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
DY_ACT_T256 inline __m256 tanh_256(__m256 x0) {
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

DY_ACT_T256 inline __m256i tail_mask(int64_t left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

enum Fn { kLogistic, kTanh };

// y (n) = F(x (n)), eight lanes at a time and a masked tail: the plain logistic and tanh kernels.
template <Fn F>
DY_ACT_T256 inline __m256 apply_256(__m256 v) {
  if constexpr (F == kLogistic) return logistic_256(v);
  else return tanh_256(v);
}

template <Fn F>
DY_ACT_T256 void map_256(const float* x, float* y, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, apply_256<F>(_mm256_loadu_ps(x + j)));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(y + j, k, apply_256<F>(_mm256_maskload_ps(x + j, k)));
  }
}

#endif

}  // namespace act
}  // namespace dy
