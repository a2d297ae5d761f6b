// Matrix products with one short side (a weight times a few columns, and the transposed
// product of the backward pass), written for AVX-512 or AVX2+FMA without packing either
// operand.  Dynamic graphs produce these by the thousand (a recurrent step over a
// minibatch, a tree level): Eigen and BLAS copy the whole weight into a packed panel on
// every call, which costs about as much as the product itself at these sizes.  Here the
// weight is read in place: column-major A gives contiguous rows for C += A * op(B), and
// contiguous columns (dot products) for C += A^T * B.  Compiled once per instruction set
// (gemm_thin_isa.cpp); gemm_thin.h is the entry point.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <cstdint>

#include "gemm_thin.h"

namespace dy {
namespace thin {
// One namespace per instruction set, so builds for two sets never share a symbol.
#if defined(__AVX512F__)
inline namespace avx512 {
#else
inline namespace avx2 {
#endif

#if defined(__AVX512F__)
struct Vec {
  using T = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T loadm(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static void storem(float* p, T v, M m) { _mm512_mask_storeu_ps(p, m, v); }
  static T bcast(const float* p) { return _mm512_set1_ps(*p); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static M mask(int64_t n) { return n >= W ? M(0xFFFF) : M((1u << n) - 1u); }
  static __m256 half_sum(T v) {  // the two 256-bit halves added
    return _mm256_add_ps(_mm512_castps512_ps256(v),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
};
#elif defined(__AVX2__) && defined(__FMA__)
struct Vec {
  using T = __m256;
  using M = __m256i;
  static constexpr int W = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T loadm(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void storem(float* p, T v, M m) { _mm256_maskstore_ps(p, m, v); }
  static T bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static M mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n < W ? n : W)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static __m256 half_sum(T v) { return v; }
};
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define DY_THIN_GEMM 1

constexpr int kW = Vec::W;

// The register tiles' loops must unroll completely, or the accumulators are kept in memory.
#define DY_UNROLL _Pragma("GCC unroll 32")

// Eight 8-lane vectors -> one vector of their eight sums (lane j = sum of v[j]).
inline __m256 sum8(const __m256* v) {
  __m256 a = _mm256_hadd_ps(v[0], v[1]), b = _mm256_hadd_ps(v[2], v[3]);
  __m256 c = _mm256_hadd_ps(v[4], v[5]), d = _mm256_hadd_ps(v[6], v[7]);
  __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
  // ab = [s0 s1 s2 s3 | s0' s1' s2' s3'] (low/high 128-bit halves), likewise cd for s4..s7
  __m256 lo = _mm256_permute2f128_ps(ab, cd, 0x20), hi = _mm256_permute2f128_ps(ab, cd, 0x31);
  return _mm256_add_ps(lo, hi);
}

// How a tile's sums reach C: added to it, or written over it as the sums plus a bias column (or
// the sums alone where the bias is null), so that a product whose output starts as its bias (an
// affine transform) need not fill the output block first and read it back.
enum class Store { Add, Set };

// --- C (m x n) += A (m x k, leading dim lda) * op(B), b(kk, j) = B[kk * sk + j * sj] ----------
// A tile of NV vectors of rows by NR columns, accumulated in registers over kk in [0, k).
template <int NV, int NR, Store S = Store::Add>
inline void axpy_tile(int64_t rows, int64_t k, const float* A, int64_t lda, const float* B, int64_t sk,
                      int64_t sj, float* C, int64_t ldc, const float* bias = nullptr) {
  using T = Vec::T;
  T acc[NV][NR];
  DY_UNROLL
  for (int v = 0; v < NV; ++v)
    DY_UNROLL
    for (int j = 0; j < NR; ++j) acc[v][j] = Vec::zero();
  const bool full = rows == int64_t(NV) * kW;
  const Vec::M tail = Vec::mask(rows - int64_t(NV - 1) * kW);
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* a = A + kk * lda;
    T av[NV];
    DY_UNROLL
    for (int v = 0; v < NV - 1; ++v) av[v] = Vec::load(a + v * kW);
    av[NV - 1] = full ? Vec::load(a + (NV - 1) * kW) : Vec::loadm(a + (NV - 1) * kW, tail);
    const float* b = B + kk * sk;
    DY_UNROLL
    for (int j = 0; j < NR; ++j) {
      const T bj = Vec::bcast(b + j * sj);
      DY_UNROLL
      for (int v = 0; v < NV; ++v) acc[v][j] = Vec::fma(av[v], bj, acc[v][j]);
    }
  }
  if constexpr (S == Store::Set) {  // C = bias + sums (bias broadcast over the columns)
    T bv[NV];
    DY_UNROLL
    for (int v = 0; v < NV - 1; ++v) bv[v] = bias ? Vec::load(bias + v * kW) : Vec::zero();
    bv[NV - 1] = !bias ? Vec::zero() : full ? Vec::load(bias + (NV - 1) * kW) : Vec::loadm(bias + (NV - 1) * kW, tail);
    DY_UNROLL
    for (int j = 0; j < NR; ++j) {
      float* c = C + j * ldc;
      DY_UNROLL
      for (int v = 0; v < NV - 1; ++v) Vec::store(c + v * kW, Vec::add(bv[v], acc[v][j]));
      float* cl = c + (NV - 1) * kW;
      if (full)
        Vec::store(cl, Vec::add(bv[NV - 1], acc[NV - 1][j]));
      else
        Vec::storem(cl, Vec::add(bv[NV - 1], acc[NV - 1][j]), tail);
    }
    return;
  }
  DY_UNROLL
  for (int j = 0; j < NR; ++j) {
    float* c = C + j * ldc;
    DY_UNROLL
    for (int v = 0; v < NV - 1; ++v) Vec::store(c + v * kW, Vec::add(Vec::load(c + v * kW), acc[v][j]));
    float* cl = c + (NV - 1) * kW;
    if (full)
      Vec::store(cl, Vec::add(Vec::load(cl), acc[NV - 1][j]));
    else
      Vec::storem(cl, Vec::add(Vec::loadm(cl, tail), acc[NV - 1][j]), tail);
  }
}

template <int NV, int NR, Store S = Store::Add>
inline void axpy_cols(int64_t rows, int64_t ncols, int64_t k, const float* A, int64_t lda, const float* B, int64_t sk,
                      int64_t sj, float* C, int64_t ldc, const float* bias = nullptr) {
  int64_t j = 0;
  for (; j + NR <= ncols; j += NR) axpy_tile<NV, NR, S>(rows, k, A, lda, B + j * sj, sk, sj, C + j * ldc, ldc, bias);
  switch (ncols - j) {  // the last few columns
#define DY_THIN_CASE(r) \
  case r:               \
    if constexpr (r < NR) axpy_tile<NV, r, S>(rows, k, A, lda, B + j * sj, sk, sj, C + j * ldc, ldc, bias); \
    break;
    DY_THIN_CASE(1) DY_THIN_CASE(2) DY_THIN_CASE(3) DY_THIN_CASE(4) DY_THIN_CASE(5) DY_THIN_CASE(6)
    DY_THIN_CASE(7)
#undef DY_THIN_CASE
    default:
      break;
  }
}

// Rows in panels of NV vectors (NR <= 8); k in blocks so that a panel's block stays in L1 while every
// column tile reuses it; the columns in blocks of NC, so that a block of B (KC x NC, 64 KB) stays in
// the L2 cache while every row panel reads it (a wide product, thousands of columns, would
// otherwise stream all of B from memory once per row panel).
// set: C = bias + A op(B) (bias a column of m, or null for none) instead of C += A op(B); the
// first k block writes C, the others add to it.
template <int NV, int NR>
inline void axpy_gemm(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t sk,
                      int64_t sj, float* C, bool set = false, const float* bias = nullptr) {
  constexpr int64_t KC = 128, NC = 128;
  constexpr int64_t MR = int64_t(NV) * kW;
  constexpr int NV2 = NV > 2 ? 2 : NV;
  for (int64_t k0 = 0; k0 < k || (set && k0 == 0); k0 += KC) {
    const int64_t kc = k - k0 < KC ? k - k0 : KC;
    const bool first = set && k0 == 0;
    for (int64_t j0 = 0; j0 < n; j0 += NC) {
      const int64_t nc = n - j0 < NC ? n - j0 : NC;
      for (int64_t i = 0; i < m; i += MR) {
        const int64_t rows = m - i < MR ? m - i : MR;
        const float* a = A + i + k0 * lda;
        const float* b = B + k0 * sk + j0 * sj;
        float* c = C + i + j0 * m;
        const float* bi = bias ? bias + i : nullptr;
        const int64_t nv = (rows + kW - 1) / kW;  // a last panel may need fewer vectors
        if (nv == NV)
          first ? axpy_cols<NV, NR, Store::Set>(rows, nc, kc, a, lda, b, sk, sj, c, m, bi)
                : axpy_cols<NV, NR>(rows, nc, kc, a, lda, b, sk, sj, c, m);
        else if (NV > 2 && nv == 2)
          first ? axpy_cols<NV2, NR, Store::Set>(rows, nc, kc, a, lda, b, sk, sj, c, m, bi)
                : axpy_cols<NV2, NR>(rows, nc, kc, a, lda, b, sk, sj, c, m);
        else
          first ? axpy_cols<1, NR, Store::Set>(rows, nc, kc, a, lda, b, sk, sj, c, m, bi)
                : axpy_cols<1, NR>(rows, nc, kc, a, lda, b, sk, sj, c, m);
      }
    }
  }
}

// --- C (m x n) += A^T * B, A k x m and B k x n (columns contiguous): dot products ------------
template <int MI, int NJ>
inline void dot_tile(int64_t k, const float* A, const float* B, float* C, int64_t m) {
  using T = Vec::T;
  T acc[MI][NJ];
  DY_UNROLL
  for (int i = 0; i < MI; ++i)
    DY_UNROLL
    for (int j = 0; j < NJ; ++j) acc[i][j] = Vec::zero();
  int64_t kk = 0;
  for (; kk + kW <= k; kk += kW) {
    T b[NJ];
    DY_UNROLL
    for (int j = 0; j < NJ; ++j) b[j] = Vec::load(B + j * k + kk);
    DY_UNROLL
    for (int i = 0; i < MI; ++i) {
      const T a = Vec::load(A + i * k + kk);
      DY_UNROLL
      for (int j = 0; j < NJ; ++j) acc[i][j] = Vec::fma(a, b[j], acc[i][j]);
    }
  }
  if (kk < k) {
    const Vec::M t = Vec::mask(k - kk);
    T b[NJ];
    DY_UNROLL
    for (int j = 0; j < NJ; ++j) b[j] = Vec::loadm(B + j * k + kk, t);
    DY_UNROLL
    for (int i = 0; i < MI; ++i) {
      const T a = Vec::loadm(A + i * k + kk, t);
      DY_UNROLL
      for (int j = 0; j < NJ; ++j) acc[i][j] = Vec::fma(a, b[j], acc[i][j]);
    }
  }
  // Reduce: eight accumulators at a time into one 8-lane vector of sums.
  __m256 h[MI * NJ];
  DY_UNROLL
  for (int i = 0; i < MI; ++i)
    DY_UNROLL
    for (int j = 0; j < NJ; ++j) h[j * MI + i] = Vec::half_sum(acc[i][j]);
  alignas(32) float s[MI * NJ + 8];
  int q = 0;
  for (; q + 8 <= MI * NJ; q += 8) _mm256_store_ps(s + q, sum8(h + q));
  for (; q < MI * NJ; ++q) {
    alignas(32) float t[8];
    _mm256_store_ps(t, h[q]);
    s[q] = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  }
  for (int j = 0; j < NJ; ++j)
    for (int i = 0; i < MI; ++i) C[j * m + i] += s[j * MI + i];
}

template <int MI, int NJ>
inline void dot_rows(int64_t m, int64_t k, const float* A, const float* B, float* C) {
  int64_t i = 0;
  for (; i + MI <= m; i += MI) dot_tile<MI, NJ>(k, A + i * k, B, C + i, m);
  for (; i < m; ++i) dot_tile<1, NJ>(k, A + i * k, B, C + i, m);
}

inline void dot_gemm(int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) dot_rows<4, 4>(m, k, A, B + j * k, C + j * m);
  for (; j + 2 <= n; j += 2) dot_rows<4, 2>(m, k, A, B + j * k, C + j * m);
  for (; j < n; ++j) dot_rows<8, 1>(m, k, A, B + j * k, C + j * m);
}

// --- y (m) += A (m x k, column-major) x: one column (a graph's step on a single example) -----
// A panel of NV row vectors, with U accumulators per vector over alternating kk, so that even a
// 16 x 16 product (one AVX-512 vector of rows) keeps several FMA chains in flight instead of one.
template <int NV, int U>
inline void gemv_tile(int64_t rows, int64_t k, const float* A, int64_t lda, const float* x, float* y) {
  using T = Vec::T;
  T acc[U][NV];
  DY_UNROLL
  for (int u = 0; u < U; ++u)
    DY_UNROLL
    for (int v = 0; v < NV; ++v) acc[u][v] = Vec::zero();
  const bool full = rows == int64_t(NV) * kW;
  const Vec::M tail = Vec::mask(rows - int64_t(NV - 1) * kW);
  auto step = [&](int u, int64_t kk) {
    const float* a = A + kk * lda;
    const T xb = Vec::bcast(x + kk);
    DY_UNROLL
    for (int v = 0; v < NV - 1; ++v) acc[u][v] = Vec::fma(Vec::load(a + v * kW), xb, acc[u][v]);
    const T last = full ? Vec::load(a + (NV - 1) * kW) : Vec::loadm(a + (NV - 1) * kW, tail);
    acc[u][NV - 1] = Vec::fma(last, xb, acc[u][NV - 1]);
  };
  int64_t kk = 0;
  for (; kk + U <= k; kk += U) {
    DY_UNROLL
    for (int u = 0; u < U; ++u) step(u, kk + u);
  }
  for (; kk < k; ++kk) step(0, kk);
  DY_UNROLL
  for (int u = 1; u < U; ++u)
    DY_UNROLL
    for (int v = 0; v < NV; ++v) acc[0][v] = Vec::add(acc[0][v], acc[u][v]);
  DY_UNROLL
  for (int v = 0; v < NV - 1; ++v) Vec::store(y + v * kW, Vec::add(Vec::load(y + v * kW), acc[0][v]));
  float* yl = y + (NV - 1) * kW;
  if (full)
    Vec::store(yl, Vec::add(Vec::load(yl), acc[0][NV - 1]));
  else
    Vec::storem(yl, Vec::add(Vec::loadm(yl, tail), acc[0][NV - 1]), tail);
}

inline void gemv(int64_t m, int64_t k, const float* A, const float* x, float* y) {
  int64_t i = 0;
  for (; i + 4 * kW <= m; i += 4 * kW) gemv_tile<4, 1>(4 * kW, k, A + i, m, x, y + i);
  switch ((m - i + kW - 1) / kW) {  // the last rows: fewer vectors, more accumulators each
    case 3:
      gemv_tile<3, 1>(m - i, k, A + i, m, x, y + i);
      break;
    case 2:
      gemv_tile<2, 2>(m - i, k, A + i, m, x, y + i);
      break;
    case 1:
      gemv_tile<1, 4>(m - i, k, A + i, m, x, y + i);
      break;
    default:
      break;
  }
}

// The shapes taken: one side short enough that packing would not pay off, the others
// short enough that the unblocked loops stay in cache.
constexpr int64_t kMaxThin = 64;     // the short side (columns of B, or k of dW)
constexpr int64_t kMaxLong = 4096;   // the other sides
constexpr int64_t kMaxGemv = 1 << 16;  // a GEMV's weight (larger ones are memory-bound: Eigen's)

// y (m) += op(A) x, A m x k (k x m when ta): one column, either way round.
inline bool gemv_acc_vec(bool ta, int64_t m, int64_t k, const float* A, const float* x, float* y) {
  if (m * k > kMaxGemv || m > kMaxLong || k > kMaxLong) return false;
  if (!ta) {
    gemv(m, k, A, x, y);
    return true;
  }
  if (k < kW / 2) return false;
  dot_rows<8, 1>(m, k, A, x, y);
  return true;
}

// Register tiles: 3 vectors of rows by 8 columns with AVX-512 (24 of its 32 registers),
// 2 by 6 with AVX2 (12 of 16).
constexpr int kNV = kW == 16 ? 3 : 2, kNR = kW == 16 ? 8 : 6;

// Whether the weight-times-columns kernels take C (m x n) = A (m x k) B: a few columns, or a weight
// the L2 cache holds at any number (the loops read it in place while BLAS packs it on every call).
inline bool columns_taken(int64_t m, int64_t n, int64_t k) {
  return n >= 2 && (n <= kMaxThin || weight_in_cache(false, false, m, n, k));
}

// C (m x n) = bias (a column of m, broadcast; null: zero) + A B, A m x k: the weight-times-columns
// case of gemm_acc_vec writing its output instead of adding to it (the same shapes).
inline bool gemm_bias_vec(int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C,
                          const float* bias) {
  if (m > kMaxLong || n > kMaxLong || k > kMaxLong || !columns_taken(m, n, k)) return false;
  axpy_gemm<kNV, kNR>(m, n, k, A, m, B, 1, k, C, true, bias);
  return true;
}

inline bool gemm_acc_vec(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  if (m > kMaxLong || n > kMaxLong || k > kMaxLong) return false;
  if (n == 1 && m * k <= kMaxGemv) return gemv_acc_vec(ta, m, k, A, B, C);  // op(B) is k contiguous values
  const bool cached = weight_in_cache(ta, tb, m, n, k);
  if (!ta && !tb) {  // weight * columns: C += A B (a large GEMV is Eigen's, as fast)
    if (!columns_taken(m, n, k)) return false;
    axpy_gemm<kNV, kNR>(m, n, k, A, m, B, 1, k, C);
    return true;
  }
  if (ta && !tb) {  // transposed weight * columns: C += A^T B (dot products along k)
    if ((n > kMaxThin && !cached) || n < 2 || k < 2 * kW) return false;
    dot_gemm(m, n, k, A, B, C);
    return true;
  }
  if (!ta && tb) {  // a weight's gradient from a few columns (or a cached one's from any): C += A B^T
    if (k > kMaxThin && !cached) return false;
    axpy_gemm<kNV, kNR>(m, n, k, A, m, B, n, 1, C);
    return true;
  }
  return false;
}

#endif  // vector instruction set

}  // namespace avx512 / avx2
}  // namespace thin
}  // namespace dy
