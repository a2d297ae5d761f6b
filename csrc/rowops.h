// Vectorised kernels over one contiguous line of floats for the softmax family: log-sum-exp
// and the softmax gradient.  AVX-512 and AVX2+FMA versions are compiled with per-function
// target attributes and picked at run time from the CPU (the module itself stays built for
// the baseline instruction set); DYNET_CPU_EIGEN_ISA=baseline keeps the portable Eigen code.
#pragma once

#include <cstdint>

namespace dy {
namespace rows {

// log(sum_j exp(p[j])) for n >= 1 contiguous values; -inf/+inf when the maximum is infinite.
float lse(const float* p, int64_t n);
// dx[j] += g * exp(x[j] - z) for n contiguous values (z: the line's log-sum-exp).
void add_exp_scaled(const float* x, int64_t n, float z, float g, float* dx);
// dx[j] = g * exp(x[j] - z): the same values written over dx, which is not read (a gradient's
// first write, so the executor need not zero-fill it first).
void set_exp_scaled(const float* x, int64_t n, float z, float g, float* dx);
// The instruction set in use: "avx512", "avx2" or "baseline".
const char* isa();

}  // namespace rows
}  // namespace dy
