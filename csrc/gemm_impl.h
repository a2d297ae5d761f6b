// C (m x n) += op(A) * op(B) on column-major float buffers: A is m x k (k x m when ta),
// B is k x n (n x k when tb).  Included by kernels_arith.cpp (baseline instruction set) and by
// gemm_avx2.cpp (compiled for AVX2+FMA into its own module, chosen at run time).
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace dy {

inline void gemm_acc_impl(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B,
                          float* C) {
  using CM = Eigen::Map<const Eigen::MatrixXf>;
  using CV = Eigen::Map<const Eigen::VectorXf>;
  Eigen::Map<Eigen::MatrixXf> c(C, m, n);
  if (n == 1) {  // matrix-vector: op(B) is k contiguous values either way
    Eigen::Map<Eigen::VectorXf> cv(C, m);
    if (ta)
      cv.noalias() += CM(A, k, m).transpose() * CV(B, k);
    else
      cv.noalias() += CM(A, m, k) * CV(B, k);
    return;
  }
  if (k == 1) {  // outer product: op(A) is m contiguous values, op(B) n contiguous values
    c.noalias() += CV(A, m) * CV(B, n).transpose();
    return;
  }
  if (!ta && !tb)
    c.noalias() += CM(A, m, k) * CM(B, k, n);
  else if (ta && !tb)
    c.noalias() += CM(A, k, m).transpose() * CM(B, k, n);
  else if (!ta && tb)
    c.noalias() += CM(A, m, k) * CM(B, n, k).transpose();
  else
    c.noalias() += CM(A, k, m).transpose() * CM(B, n, k).transpose();
}

}  // namespace dy
