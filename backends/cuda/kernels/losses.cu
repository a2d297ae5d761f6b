// Classification losses over a (n, B) score matrix, one column per batch
// element: pickneglogsoftmax and hinge, forward and backward.
//
// One block per column (a grid-stride loop over columns), its threads striding
// over the rows and combining with warp shuffles: blockDim.x must be a power of
// two no larger than 32.  Scores are C-contiguous float32, element (i, b) at
// i * B + b; idx holds B int32 indices checked on the host.
#include "device_math.cuh"

// log-sum-exp of column b, computed by the whole block (every thread gets it).
DN_F float dn_column_lse(const float* x, long long n, long long B, long long b) {
  float m = -DN_INF;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, x[i * B + b]);
  m = dn_warp_max(m);
  if (fabsf(m) == DN_INF) return m;  // +Inf if any +Inf, -Inf if all are -Inf (a NaN shows in the sum below)
  float s = 0.0f;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) s += expf(x[i * B + b] - m);
  s = dn_warp_sum(s);
  return m + logf(s);
}

// out[b] = logsumexp(x[:, b]) - x[idx[b], b]
extern "C" __global__ void dn_pnls_fwd(float* out, const float* x, const int* idx, long long n, long long B) {
  for (long long b = blockIdx.x; b < B; b += gridDim.x) {
    float lse = dn_column_lse(x, n, B, b);
    if (threadIdx.x == 0) out[b] = lse - x[(long long)idx[b] * B + b];
  }
}

// g[i, b] = softmax(x[:, b])[i] * dy[b] - (i == idx[b]) * dy[b]
extern "C" __global__ void dn_pnls_bwd(float* g, const float* x, const float* dy, const int* idx, long long n,
                                       long long B) {
  for (long long b = blockIdx.x; b < B; b += gridDim.x) {
    float lse = dn_column_lse(x, n, B, b);
    float d = dy[b];
    long long gold = idx[b];
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
      float v = expf(x[i * B + b] - lse) * d;
      g[i * B + b] = i == gold ? v - d : v;
    }
  }
}

// out[b] = sum over i != idx[b] of max(0, x[i, b] - x[idx[b], b] + margin)
extern "C" __global__ void dn_hinge_fwd(float* out, const float* x, const int* idx, float margin, long long n,
                                        long long B) {
  for (long long b = blockIdx.x; b < B; b += gridDim.x) {
    long long gold = idx[b];
    float xg = x[gold * B + b];
    float s = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
      float v = x[i * B + b] - xg + margin;
      if (i != gold && (v > 0.0f || v != v)) s += v;  // a NaN score makes a NaN loss
    }
    s = dn_warp_sum(s);
    if (threadIdx.x == 0) out[b] = s;
  }
}

// Each active term (a positive margin violation) sends dy[b] to its row and
// -dy[b] to the gold row.
extern "C" __global__ void dn_hinge_bwd(float* g, const float* x, const float* dy, const int* idx, float margin,
                                        long long n, long long B) {
  for (long long b = blockIdx.x; b < B; b += gridDim.x) {
    long long gold = idx[b];
    float xg = x[gold * B + b];
    float d = dy[b];
    float count = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
      if (i == gold) continue;
      float v = x[i * B + b] - xg + margin;
      // Only active terms receive dy, as in DyNet (no loss, no gradient, even for an Inf dy).
      bool active = v > 0.0f;
      count += active ? 1.0f : 0.0f;
      g[i * B + b] = active ? d : 0.0f;
    }
    count = dn_warp_sum(count);
    if (threadIdx.x == 0) g[gold * B + b] = count > 0.0f ? -count * d : 0.0f;
  }
}
