// The vanilla LSTM's fused gates (gate order i, f, o, g), one kernel each way instead of a chain
// of CuPy operations per LSTM step.
//
// Pre-activations are (4n, cols) C-contiguous float32 (cols: the batch).  Every kernel is a
// grid-stride loop, correct for any grid and block size.
#include "device_math.cuh"

// y = act(pre + b): rows 0..3n-1 the sigmoid (in its tanh form, as the reference computes it;
// the forget gate's rows n..2n-1 with DyNet's bias of 1 added), rows 3n..4n-1 tanh.  pre and b
// have pcols and bcols columns, each 1 (broadcast over the batch) or cols.
extern "C" __global__ void dn_lstm_gates_fwd(float* y, const float* pre, const float* b, long long n,
                                             long long cols, long long pcols, long long bcols) {
  long long total = 4 * n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long c = t % cols;
    long long r = t / cols;
    float v = pre[r * pcols + (pcols == 1 ? 0 : c)] + b[r * bcols + (bcols == 1 ? 0 : c)];
    if (r >= n && r < 2 * n) v += 1.0f;
    y[t] = r < 3 * n ? 0.5f + 0.5f * tanhf(0.5f * v) : tanhf(v);
  }
}

// The gradient of the pre-activations from the gates' output y and its gradient dy, both
// (4n, cols): dy * y * (1 - y) on the sigmoid rows, dy * (1 - y^2) on the tanh rows.
extern "C" __global__ void dn_lstm_gates_bwd(float* r, const float* y, const float* dy, long long n, long long cols) {
  long long total = 4 * n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    float v = y[t];
    r[t] = t / cols < 3 * n ? dy[t] * v * (1.0f - v) : dy[t] * (1.0f - v * v);
  }
}
