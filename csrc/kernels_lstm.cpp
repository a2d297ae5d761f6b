// The op table's fused LSTM pieces: the gates (with or without dropout masks), the cell and the
// hidden state; the executor also runs the gates' input products of many steps as one GEMM.
// Kernels on column-major float32 buffers; backends/reference_numpy is the specification:
// size-1 data dims and batch 1 broadcast, backward sums over broadcast dims, and backward
// kernels accumulate into dx, so the executor needs no temporaries.
#include <Eigen/Dense>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common.h"
#include "kernel_util.h"
#include "simd_act.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define DY_LSTM_X86 1
#endif

namespace dy {
namespace ku {

namespace {

// ------------------------------------------------------------------ fused LSTM pieces (gates i, f, o, g)
// Sized for the builders' steps (one vector or a small batch per call): products through
// gemm_acc (the AVX2+FMA build when loaded), Eigen's vectorised logistic/tanh, scratch
// held per thread so a call allocates nothing once the sizes have been seen.

constexpr float FORGET_GATE_BIAS = 1.0f;

// AVX2+FMA versions of the per-step work (compiled with a target attribute, picked at run time
// like rowops; DYNET_CPU_EIGEN_ISA=baseline keeps Eigen): the 4h x h product with the previous
// state as one register-blocked GEMV, and logistic/tanh with Eigen's own rational approximations
// (its FMA cut-offs), so the values are Eigen's up to the rounding of the fused multiply-adds.
#ifdef DY_LSTM_X86
#define DY_LSTM_T256 DY_ACT_T256
using act::logistic_256;
using act::tanh_256;
using act::tail_mask;

// y (m) += A (m x k, column-major) x.
DY_LSTM_T256 void gemv_acc_256(const float* A, int64_t m, int64_t k, const float* x, float* y) {
  int64_t r = 0;
  for (; r + 64 <= m; r += 64) {
    __m256 a0 = _mm256_loadu_ps(y + r), a1 = _mm256_loadu_ps(y + r + 8), a2 = _mm256_loadu_ps(y + r + 16),
           a3 = _mm256_loadu_ps(y + r + 24), a4 = _mm256_loadu_ps(y + r + 32), a5 = _mm256_loadu_ps(y + r + 40),
           a6 = _mm256_loadu_ps(y + r + 48), a7 = _mm256_loadu_ps(y + r + 56);
    const float* c = A + r;
    for (int64_t j = 0; j < k; ++j, c += m) {
      __m256 v = _mm256_broadcast_ss(x + j);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), v, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 8), v, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 16), v, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 24), v, a3);
      a4 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 32), v, a4);
      a5 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 40), v, a5);
      a6 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 48), v, a6);
      a7 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 56), v, a7);
    }
    _mm256_storeu_ps(y + r, a0), _mm256_storeu_ps(y + r + 8, a1), _mm256_storeu_ps(y + r + 16, a2);
    _mm256_storeu_ps(y + r + 24, a3), _mm256_storeu_ps(y + r + 32, a4), _mm256_storeu_ps(y + r + 40, a5);
    _mm256_storeu_ps(y + r + 48, a6), _mm256_storeu_ps(y + r + 56, a7);
  }
  for (; r + 16 <= m; r += 16) {
    __m256 a0 = _mm256_loadu_ps(y + r), a1 = _mm256_loadu_ps(y + r + 8);
    const float* c = A + r;
    for (int64_t j = 0; j < k; ++j, c += m) {
      __m256 v = _mm256_broadcast_ss(x + j);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), v, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 8), v, a1);
    }
    _mm256_storeu_ps(y + r, a0), _mm256_storeu_ps(y + r + 8, a1);
  }
  for (; r + 8 <= m; r += 8) {
    __m256 a0 = _mm256_loadu_ps(y + r);
    const float* c = A + r;
    for (int64_t j = 0; j < k; ++j, c += m) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), _mm256_broadcast_ss(x + j), a0);
    _mm256_storeu_ps(y + r, a0);
  }
  for (; r < m; ++r) {
    float a = y[r];
    for (int64_t j = 0; j < k; ++j) a = std::fma(A[r + j * m], x[j], a);
    y[r] = a;
  }
}

// One column of gates: the forget bias, logistic on i, f, o (3h values) and tanh on g (h values).
DY_LSTM_T256 void gate_act_256(float* g, int64_t H) {
  const int64_t L = 3 * H;
  const __m256 one = _mm256_set1_ps(FORGET_GATE_BIAS);
  int64_t j = 0;
  for (; j + 8 <= L; j += 8) {
    __m256 v = _mm256_loadu_ps(g + j);
    // lanes of the forget gate (H <= index < 2H) get the bias
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int(j)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i in_f = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(H)), idx),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(int(2 * H)), idx));
    v = _mm256_add_ps(v, _mm256_and_ps(_mm256_castsi256_ps(in_f), one));
    _mm256_storeu_ps(g + j, logistic_256(v));
  }
  if (j < L) {  // L - j < 8 values, all of the o gate (H >= 8) or handled the same way
    __m256i k = tail_mask(L - j);
    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int(j)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i in_f = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(H)), idx),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(int(2 * H)), idx));
    __m256 v = _mm256_add_ps(_mm256_maskload_ps(g + j, k), _mm256_and_ps(_mm256_castsi256_ps(in_f), one));
    _mm256_maskstore_ps(g + j, k, logistic_256(v));
  }
  float* t = g + L;
  j = 0;
  for (; j + 8 <= H; j += 8) _mm256_storeu_ps(t + j, tanh_256(_mm256_loadu_ps(t + j)));
  if (j < H) {
    __m256i k = tail_mask(H - j);
    _mm256_maskstore_ps(t + j, k, tanh_256(_mm256_maskload_ps(t + j, k)));
  }
}

// y (n) = o (n) * tanh(c (n)).
DY_LSTM_T256 void out_tanh_256(const float* o, const float* c, int64_t n, float* y) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(o + j), tanh_256(_mm256_loadu_ps(c + j))));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(_mm256_maskload_ps(o + j, k), tanh_256(_mm256_maskload_ps(c + j, k))));
  }
}
#endif

bool lstm_avx2() { return act::avx2_fma(); }

// Per-thread scratch buffers that only grow.
float* lstm_scratch(int slot, int64_t n) {
  static thread_local std::vector<float> bufs[5];
  std::vector<float>& v = bufs[slot];
  if (int64_t(v.size()) < n) v.resize(size_t(n));
  return v.data();
}

// An LSTM input (x or h) as `cols` columns of len values: the tensor itself, or its product with
// the dropout mask written to scratch.  cols is 1 when neither has a batch, else the batch n.
struct LstmIn {
  const float* p;
  int64_t cols;
};
LstmIn lstm_in(const CView& v, const CView* mask, int64_t n, int slot) {
  int64_t len = v.s.d[0];
  if (!mask) return {v.p, v.s.bd == 1 ? 1 : n};
  int64_t cols = (v.s.bd == 1 && mask->s.bd == 1) ? 1 : n;
  float* out = lstm_scratch(slot, len * cols);
  for (int64_t b = 0; b < cols; ++b) Arr(out + b * len, len) = CArr(bat(v, b), len) * CArr(bat(*mask, b), len);
  return {out, cols};
}

// Y (G x n) += W (G x len) * in, an input of one column adding to every batch column.
void lstm_acc_product(const float* W, int64_t G, int64_t len, LstmIn in, float* Y, int64_t n) {
  if (len == 1) {  // W is one column (the builders' precomputed input products): Y_b += in_b W
    for (int64_t b = 0; b < n; ++b) Arr(Y + b * G, G) += in.p[in.cols == 1 ? 0 : b] * CArr(W, G);
    return;
  }
  if (in.cols == n) {
    gemm_acc(false, false, G, n, len, W, in.p, Y);
    return;
  }
  float* t = lstm_scratch(2, G);
  std::fill_n(t, G, 0.0f);
  gemm_acc(false, false, G, 1, len, W, in.p, t);
  for (int64_t b = 0; b < n; ++b) Arr(Y + b * G, G) += CArr(t, G);
}

// pre: W_x x already computed for every batch column (the executor batches it over the steps),
// else null.
void lstm_gates_impl(const CView* x, int nargs, const View& y, const float* pre) {
  bool drop = nargs == 7;
  int64_t n = y.s.bd, G = y.s.d[0], H = G / 4, X = x[0].s.d[0];
  if (pre) {
    for (int64_t b = 0; b < n; ++b) Arr(y.p + b * G, G) = CArr(x[4].p, G) + CArr(pre + b * G, G);
  } else {
    for (int64_t b = 0; b < n; ++b) std::copy(x[4].p, x[4].p + G, y.p + b * G);
    lstm_acc_product(x[2].p, G, X, lstm_in(x[0], drop ? &x[5] : nullptr, n, 0), y.p, n);
  }
  LstmIn hin = lstm_in(x[1], drop ? &x[6] : nullptr, n, 1);
#ifdef DY_LSTM_X86
  if (lstm_avx2()) {
    if (n == 1 && H > 1)
      gemv_acc_256(x[3].p, G, H, hin.p, y.p);
    else
      lstm_acc_product(x[3].p, G, H, hin, y.p, n);
    for (int64_t b = 0; b < n; ++b) gate_act_256(y.p + b * G, H);
    return;
  }
#endif
  lstm_acc_product(x[3].p, G, H, hin, y.p, n);
  for (int64_t b = 0; b < n; ++b) {
    float* g = y.p + b * G;
    Arr(g + H, H) += FORGET_GATE_BIAS;
    Arr(g, 3 * H) = Arr(g, 3 * H).logistic();
    Arr(g + 3 * H, H) = Arr(g + 3 * H, H).tanh();
  }
}
void f_lstm_gates(const CView* x, int nargs, const View& y, const Attrs&) { lstm_gates_impl(x, nargs, y, nullptr); }

// d(pre-activations) from d(gates): sigmoid' = y (1 - y) on i, f, o; tanh' = 1 - y^2 on g.
void lstm_dgates_into(const CView& y, const CView& dy, float* r) {
  int64_t n = y.s.bd, G = y.s.d[0], H = G / 4;
  for (int64_t b = 0; b < n; ++b) {
    const float *yb = y.p + b * G, *gb = dy.p + b * G;
    float* rb = r + b * G;
    CArr ys(yb, 3 * H), yt(yb + 3 * H, H);
    Arr(rb, 3 * H) = CArr(gb, 3 * H) * ys * (1.0f - ys);
    Arr(rb + 3 * H, H) = CArr(gb + 3 * H, H) * (1.0f - yt.square());
  }
}
// Sum over the batch of r (G x n), in scratch (not next to r: the executor keeps the r of
// successive steps side by side, for one weight-gradient GEMM that reads them in place).
const float* lstm_rowsum(const float* r, int64_t n, int64_t G) {
  if (n == 1) return r;
  float* s = lstm_scratch(4, G);
  Arr(s, G) = CArr(r, G);
  for (int64_t b = 1; b < n; ++b) Arr(s, G) += CArr(r + b * G, G);
  return s;
}

void b_lstm_gates(const CView* x, int nargs, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t n = y.s.bd, G = y.s.d[0];
  float* r = lstm_scratch(3, G * n);
  lstm_dgates_into(y, dy, r);
  ku::lstm_gates_grad(x, nargs, y.s, r, i, dx);
}
DY_REGISTER(vanilla_lstm_gates, f_lstm_gates, b_lstm_gates);
DY_REGISTER(vanilla_lstm_gates_dropout, f_lstm_gates, b_lstm_gates);

}  // namespace

void lstm_gates_pre(const CView* x, int nargs, const View& y, const float* pre) { lstm_gates_impl(x, nargs, y, pre); }

// Input i's gradient of the fused gates from r = d(pre-activations) (G x n).
void lstm_gates_grad(const CView* x, int nargs, const Shape& ys, float* r, int i, const View& dx) {
  bool drop = nargs == 7;
  int64_t n = ys.bd, G = ys.d[0], H = G / 4, X = x[0].s.d[0];
  if (i == 4) {  // db: the batch sum of r
    Arr(dx.p, G) += CArr(lstm_rowsum(r, n, G), G);
    return;
  }
  if (i == 2 || i == 3) {  // dW += r in^T, summed over the batch
    bool isx = i == 2;
    int64_t len = isx ? X : H;
    LstmIn in = lstm_in(x[isx ? 0 : 1], drop ? &x[isx ? 5 : 6] : nullptr, n, isx ? 0 : 1);
    if (len == 1) {  // one column: dW += sum_b in_b r_b
      for (int64_t b = 0; b < n; ++b) Arr(dx.p, G) += in.p[in.cols == 1 ? 0 : b] * CArr(r + b * G, G);
      return;
    }
    if (in.cols == n)
      gemm_acc(false, true, G, len, n, r, in.p, dx.p);
    else
      gemm_acc(false, true, G, len, 1, lstm_rowsum(r, n, G), in.p, dx.p);
    return;
  }
  // The inputs and the masks: back = W^T r, then times the mask (for x, h) or the input (for the masks).
  bool isx = i == 0 || i == 5, of_mask = i == 5 || i == 6;
  int64_t len = isx ? X : H;
  const float* W = isx ? x[2].p : x[3].p;
  const CView* other = drop ? &x[of_mask ? (isx ? 0 : 1) : (isx ? 5 : 6)] : nullptr;
  if (!other) {  // plain x or h: accumulate W^T r straight into dx
    if (dx.s.bd == n)
      gemm_acc(true, false, len, n, G, W, r, dx.p);
    else
      gemm_acc(true, false, len, 1, G, W, lstm_rowsum(r, n, G), dx.p);
    return;
  }
  bool sum_first = dx.s.bd == 1 && other->s.bd == 1;  // mask (W^T r_b) summed over b = mask (W^T sum_b r_b)
  int64_t cols = sum_first ? 1 : n;
  float* back = lstm_scratch(2, len * cols);
  std::fill_n(back, len * cols, 0.0f);
  gemm_acc(true, false, len, cols, G, W, sum_first ? lstm_rowsum(r, n, G) : r, back);
  for (int64_t b = 0; b < cols; ++b) Arr(bat(dx, b), len) += CArr(back + b * len, len) * CArr(bat(*other, b), len);
}

void lstm_gates_dpre(const CView& y, const CView& dy, float* r) { lstm_dgates_into(y, dy, r); }

namespace {

void f_lstm_c(const CView* x, int, const View& y, const Attrs&) {
  int64_t H = y.s.d[0];
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
    Arr(y.p + b * H, H) = CArr(g, H) * CArr(g + 3 * H, H) + CArr(g + H, H) * CArr(c, H);
  }
}
void b_lstm_c(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t H = y.s.d[0];
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
    CArr d(dy.p + b * H, H);
    float* o = bat(dx, b);
    if (i == 0) {
      Arr(o, H) += d * CArr(g + H, H);
    } else {
      Arr(o, H) += d * CArr(g + 3 * H, H);
      Arr(o + H, H) += d * CArr(c, H);
      Arr(o + 3 * H, H) += d * CArr(g, H);
    }
  }
}
DY_REGISTER(vanilla_lstm_c, f_lstm_c, b_lstm_c);
void f_lstm_h(const CView* x, int, const View& y, const Attrs&) {
  int64_t H = y.s.d[0];
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
#ifdef DY_LSTM_X86
    if (lstm_avx2()) {
      out_tanh_256(g + 2 * H, c, H, y.p + b * H);
      continue;
    }
#endif
    Arr(y.p + b * H, H) = CArr(g + 2 * H, H) * CArr(c, H).tanh();
  }
}
void b_lstm_h(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t H = y.s.d[0];
  float* t = lstm_scratch(2, H);
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float *c = bat(x[0], b), *g = bat(x[1], b);
    CArr d(dy.p + b * H, H);
    float* o = bat(dx, b);
    Arr(t, H) = CArr(c, H).tanh();
    if (i == 0)
      Arr(o, H) += d * CArr(g + 2 * H, H) * (1.0f - Arr(t, H).square());
    else
      Arr(o + 2 * H, H) += d * Arr(t, H);
  }
}
DY_REGISTER(vanilla_lstm_h, f_lstm_h, b_lstm_h);

}  // namespace

}  // namespace ku
}  // namespace dy
