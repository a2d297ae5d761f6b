// Gathers and scatters along one axis that CuPy has no single operation for.
//
// Tensors are C-contiguous float32 arrays in the backend's layout (data dims,
// then the batch).  Index arrays are int32 and were checked on the host
// against the tensor's size (by the op's shape rule, or the lookup's row
// check); the kernels still never read or write outside the arrays.  Every
// kernel is a grid-stride loop, correct for any grid and block size.
#include "device_math.cuh"

// dst viewed as (outer, n_dst, inner) and src as (outer, n_idx, inner):
// dst[o, idx[j], k] += src[o, j, k].  Repeated indices add up (atomicAdd), so
// this is the gradient of a gather: select_rows / select_cols / lookup rows /
// pick_batch_elems.
extern "C" __global__ void dn_index_add(float* dst, const float* src, const int* idx, long long outer,
                                        long long n_dst, long long n_idx, long long inner) {
  long long total = outer * n_idx * inner;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long k = t % inner;
    long long r = t / inner;
    long long j = r % n_idx;
    long long o = r / n_idx;
    long long row = idx[j];
    if (row < 0 || row >= n_dst) continue;
    atomicAdd(dst + (o * n_dst + row) * inner + k, src[t]);
  }
}

// pick with one index per batch element: x viewed as (outer, n, mid, bx) with
// the picked axis of size n; out is (outer, mid, bo) and
// out[o, m, b] = x[o, idx[b], m, bx == 1 ? 0 : b].  An index out of range
// yields NaN rather than a read outside x.
extern "C" __global__ void dn_pick_fwd(float* out, const float* x, const int* idx, long long outer, long long n,
                                       long long mid, long long bx, long long bo) {
  long long total = outer * mid * bo;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long b = t % bo;
    long long r = t / bo;
    long long m = r % mid;
    long long o = r / mid;
    long long i = idx[b];
    out[t] = (i >= 0 && i < n) ? x[((o * n + i) * mid + m) * bx + (bx == 1 ? 0 : b)] : __int_as_float(0x7fc00000);
  }
}

// The gradient of dn_pick_fwd before any batch reduction: g, zero on entry and
// viewed as (outer, n, mid, bo), receives g[o, idx[b], m, b] = dy[o, m, b].
extern "C" __global__ void dn_pick_bwd(float* g, const float* dy, const int* idx, long long outer, long long n,
                                       long long mid, long long bo) {
  long long total = outer * mid * bo;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long b = t % bo;
    long long r = t / bo;
    long long m = r % mid;
    long long o = r / mid;
    long long i = idx[b];
    if (i >= 0 && i < n) g[((o * n + i) * mid + m) * bo + b] = dy[t];
  }
}
