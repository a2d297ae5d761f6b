// Products with one short side (see gemm_thin_impl.h), on the widest vector instruction set
// this CPU has among those compiled in: AVX-512, then AVX2+FMA.
#pragma once

#include <cstdint>
#include <string>

namespace dy {
namespace thin {

// C (m x n, column-major) += op(A) op(B) when the shape is one these kernels take and a
// vector build is in use; returns false (and does nothing) otherwise.
bool gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C);
// C += A op(B) whose weight (A, or C for a weight's gradient A B^T) the L2 cache holds: these
// kernels then take the product at any number of columns (up to kMaxLong) and beat a BLAS, which
// packs the weight on every call (a batched tree level, 128 x 256 times 32-640 columns: 1.05-1.35x
// OpenBLAS's GFLOP/s on an AVX-512 core, forward and weight gradient alike).  Not A^T B (the
// input's gradient): the dot-product kernel falls behind the BLAS from ~48 columns on.
inline bool weight_in_cache(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kCachedWeight = int64_t(1) << 16;  // floats (256 KB)
  return !ta && (tb ? m * n : m * k) <= kCachedWeight;
}
// y (m) += op(A) x with A m x k (k x m when ta): gemm_acc's one-column case, called directly by
// the product kernels for a single example (a graph's step), which skip the general product's
// layers of dispatch; false (nothing done) where gemm_acc would decline it too.
bool gemv_acc(bool ta, int64_t m, int64_t k, const float* A, const float* x, float* y);
// C (m x n) = bias + A B, the bias a column of m added to every column (null: none): gemm_acc's
// weight-times-columns case writing C instead of adding to it, for the shapes it takes (false,
// nothing done, otherwise).  A batched affine transform's output then needs no fill beforehand.
bool gemm_bias(int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C, const float* bias);

// The build in use: "avx512", "avx2" or "off".  select() picks one by name ("best" = the widest
// this CPU runs, "off" = none) and returns the one it got; DYNET_CPU_EIGEN_ISA=baseline
// makes the default "off", =avx2 caps it at AVX2.
std::string isa();
bool active();  // a vector build is in use
std::string select(const std::string& name);

// The per-instruction-set builds (gemm_thin_isa.cpp); absent ones are null.
using Fn = bool (*)(bool, bool, int64_t, int64_t, int64_t, const float*, const float*, float*);
extern const Fn kAvx512;
extern const Fn kAvx2;
using GemvFn = bool (*)(bool, int64_t, int64_t, const float*, const float*, float*);
extern const GemvFn kAvx512Gemv;
extern const GemvFn kAvx2Gemv;
using BiasFn = bool (*)(int64_t, int64_t, int64_t, const float*, const float*, float*, const float*);
extern const BiasFn kAvx512Bias;
extern const BiasFn kAvx2Bias;

}  // namespace thin
}  // namespace dy
