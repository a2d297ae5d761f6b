// An optional BLAS for the large matrix products: OpenBLAS from the scipy-openblas32
// wheel (AVX-512 kernels chosen by its own CPU dispatch), opened at run time with
// dlopen so the module builds and runs without it.  Products below a size threshold stay
// on Eigen, where a BLAS call's fixed cost would dominate.
#pragma once

#include <cstdint>
#include <string>

namespace dy {
namespace blas {

// Open the shared library at path and resolve its cblas_sgemm under the symbol prefix
// (scipy-openblas32 uses "scipy_").  Returns an empty string on success, else why not.
std::string load(const std::string& path, const std::string& prefix);
void unload();  // products go back to Eigen (the library stays mapped)
bool loaded();
std::string describe();  // the library's own configuration line, "" when not loaded

// Smallest m*n*k routed to the BLAS (tunable for measurements).
int64_t min_work();
void set_min_work(int64_t w);
// A product with a side (m, n or k) shorter than this needs 8 * min_work() to go to the BLAS.
int64_t min_side();
void set_min_side(int64_t s);

// C (m x n, column-major) += op(A) op(B) through the BLAS when it is loaded and the product
// is large enough; returns false (and does nothing) otherwise.
bool gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C);
// Whether gemm_acc would take an m x n x k product (a BLAS is loaded and the product is large enough).
bool would_take(int64_t m, int64_t n, int64_t k);

}  // namespace blas
}  // namespace dy
