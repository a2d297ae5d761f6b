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

// The cell and hidden state from the gates [i; f; o; g] (4n, gcols) and the cell c (n, ccols),
// out (n, cols); gcols and ccols are each 1 (broadcast over the batch) or cols.  One parameter
// list for all five (the backward ones take dy after their output); a gradient is written with
// cols columns, so its operand must have them (the host sums a broadcast operand's gradient).
#define DN_GATE(k) gates[((k) * n + r) * gcols + (gcols == 1 ? 0 : col)]
#define DN_CELL c[r * ccols + (ccols == 1 ? 0 : col)]

// c_new = i * g + f * c
extern "C" __global__ void dn_lstm_c_fwd(float* out, const float* c, const float* gates, long long n,
                                         long long cols, long long ccols, long long gcols) {
  long long total = n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long col = t % cols, r = t / cols;
    out[t] = DN_GATE(0) * DN_GATE(3) + DN_GATE(1) * DN_CELL;
  }
}

// The gates' gradient of c_new = i * g + f * c: [dy * g; dy * c; 0; dy * i], (4n, cols), for
// gates with cols columns (gcols == cols).
extern "C" __global__ void dn_lstm_c_bwd_gates(float* dg, const float* dy, const float* c, const float* gates,
                                               long long n, long long cols, long long ccols, long long gcols) {
  long long total = n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long col = t % cols, r = t / cols;
    float g = dy[t];
    dg[(0 * n + r) * cols + col] = g * DN_GATE(3);
    dg[(1 * n + r) * cols + col] = g * DN_CELL;
    dg[(2 * n + r) * cols + col] = 0.0f;
    dg[(3 * n + r) * cols + col] = g * DN_GATE(0);
  }
}

// h = o * tanh(c)
extern "C" __global__ void dn_lstm_h_fwd(float* out, const float* c, const float* gates, long long n,
                                         long long cols, long long ccols, long long gcols) {
  long long total = n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long col = t % cols, r = t / cols;
    out[t] = DN_GATE(2) * tanhf(DN_CELL);
  }
}

// The gradient of h = o * tanh(c) for c (n, cols; ccols == cols): dy * o * (1 - tanh(c)^2).
extern "C" __global__ void dn_lstm_h_bwd_c(float* dc, const float* dy, const float* c, const float* gates,
                                           long long n, long long cols, long long ccols, long long gcols) {
  long long total = n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long col = t % cols, r = t / cols;
    float th = tanhf(DN_CELL);
    dc[t] = dy[t] * DN_GATE(2) * (1.0f - th * th);
  }
}

// The gates' gradient of h = o * tanh(c), (4n, cols) for gates with cols columns: [0; 0; dy * tanh(c); 0].
extern "C" __global__ void dn_lstm_h_bwd_gates(float* dg, const float* dy, const float* c, const float* gates,
                                               long long n, long long cols, long long ccols, long long gcols) {
  long long total = n * cols;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)blockDim.x * gridDim.x) {
    long long col = t % cols, r = t / cols;
    dg[(0 * n + r) * cols + col] = 0.0f;
    dg[(1 * n + r) * cols + col] = 0.0f;
    dg[(2 * n + r) * cols + col] = dy[t] * tanhf(DN_CELL);
    dg[(3 * n + r) * cols + col] = 0.0f;
  }
}
#undef DN_GATE
#undef DN_CELL
