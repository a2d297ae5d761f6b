// Lets the backend's CUDA C sources compile as plain C++ and run on the CPU.
//
// Used only by the CPU-side tests (tests/test_cuda.py through
// dynet_backends.cuda.hostemu): each kernel launch runs its blocks one after
// the other with a single thread per block (blockDim.x == 1), which every
// kernel of the backend supports, so the tests check the kernels' arithmetic
// and indexing against the NumPy reference on a machine without a GPU.
#ifndef DN_HOST_EMULATION_H
#define DN_HOST_EMULATION_H

#include <math.h>
#include <string.h>

#define DN_HOST_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__

struct dn_uint3 {
  unsigned int x, y, z;
};
static dn_uint3 threadIdx = {0, 0, 0};
static dn_uint3 blockIdx = {0, 0, 0};
static dn_uint3 blockDim = {1, 1, 1};
static dn_uint3 gridDim = {1, 1, 1};

static inline float atomicAdd(float* p, float v) {
  float old = *p;
  *p = old + v;
  return old;
}
static inline float __shfl_xor_sync(unsigned int, float v, int, int = 32) { return v; }
static inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, sizeof f);
  return f;
}
static inline void __syncthreads() {}

#endif  // DN_HOST_EMULATION_H
