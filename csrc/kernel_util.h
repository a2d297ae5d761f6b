// Helpers shared by the kernel files: strided iteration over MAXD data dims plus the
// batch with DyNet's broadcasting, axis views, attribute lists, matrix products.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "op_attrs.h"

namespace dy {
namespace ku {

using Arr = Eigen::Map<Eigen::ArrayXf>;
using CArr = Eigen::Map<const Eigen::ArrayXf>;
using Mat = Eigen::Map<Eigen::MatrixXf>;
using CMat = Eigen::Map<const Eigen::MatrixXf>;

constexpr double SELU_LAMBDA = 1.0507009873554804934193349852946;
constexpr double SELU_ALPHA = 1.6732632423543772848170429916717;
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

// max(0, v) that keeps a NaN, as NumPy's maximum does (std::max(0.0f, NaN) is 0).
inline float relu_keep_nan(float v) { return v > 0.0f || v != v ? v : 0.0f; }
// max(a, b) that keeps a NaN of either side (std::max drops a NaN b).
inline float max_keep_nan(float a, float b) { return b > a || b != b ? b : a; }

[[noreturn]] inline void fail(const std::string& m) { throw std::runtime_error("cpu_eigen: " + m); }

inline bool same_data(const Shape& a, const Shape& b) {
  for (int k = 0; k < MAXD; ++k)
    if (a.d[k] != b.d[k]) return false;
  return true;
}
inline bool same(const Shape& a, const Shape& b) { return a.bd == b.bd && same_data(a, b); }

// Column-major strides of x over the MAXD data dims and the batch (slot BATCH).
struct Str {
  int64_t s[MAXD + 1];
};
inline Str cstr(const Shape& x) {
  Str r;
  int64_t s = 1;
  for (int k = 0; k < MAXD; ++k) r.s[k] = s, s *= x.d[k];
  r.s[BATCH] = s;
  return r;
}
// Strides of x in the index space of y: dims x broadcasts along get stride 0.
inline Str bstr(const Shape& x, const Shape& y) {
  Str r;
  int64_t s = 1;
  for (int k = 0; k < MAXD; ++k) {
    r.s[k] = (x.d[k] == 1 && y.d[k] != 1) ? 0 : s;
    s *= x.d[k];
  }
  r.s[BATCH] = (x.bd == 1 && y.bd != 1) ? 0 : s;
  return r;
}
struct Ext {
  int64_t n[MAXD + 1];
};
inline Ext ext(const Shape& y) {
  Ext e;
  for (int k = 0; k < MAXD; ++k) e.n[k] = y.d[k];
  e.n[BATCH] = y.bd;
  return e;
}

// Visit every index of extent e, passing the offsets of up to 4 strided operands: axis 0
// in the inner loop, the other axes (the batch last) counted like an odometer, one step
// per run of axis 0.
template <class F>
void iter4(const Ext& e, const Str& a, const Str& b, const Str& c, const Str& d, F f) {
  for (int k = 0; k <= BATCH; ++k)
    if (e.n[k] <= 0) return;
  int64_t idx[MAXD + 1] = {};
  int64_t oa = 0, ob = 0, oc = 0, od = 0;
  const int64_t n0 = e.n[0], a0 = a.s[0], b0 = b.s[0], c0 = c.s[0], d0 = d.s[0];
  for (;;) {
    for (int64_t i0 = 0; i0 < n0; ++i0) f(oa + i0 * a0, ob + i0 * b0, oc + i0 * c0, od + i0 * d0);
    int k = 1;
    for (; k <= BATCH; ++k) {
      if (++idx[k] < e.n[k]) {
        oa += a.s[k], ob += b.s[k], oc += c.s[k], od += d.s[k];
        break;
      }
      int64_t back = e.n[k] - 1;
      oa -= back * a.s[k], ob -= back * b.s[k], oc -= back * c.s[k], od -= back * d.s[k];
      idx[k] = 0;
    }
    if (k > BATCH) return;
  }
}
template <class F>
void iter3(const Ext& e, const Str& a, const Str& b, const Str& c, F f) {
  iter4(e, a, b, c, Str{}, [&](int64_t x, int64_t y, int64_t z, int64_t) { f(x, y, z); });
}
template <class F>
void iter2(const Ext& e, const Str& a, const Str& b, F f) {
  iter4(e, a, b, Str{}, Str{}, [&](int64_t x, int64_t y, int64_t, int64_t) { f(x, y); });
}

inline const float* bat(const CView& x, int64_t b) { return x.p + (x.s.bd == 1 ? 0 : b) * x.s.size(); }
inline float* bat(const View& x, int64_t b) { return x.p + (x.s.bd == 1 ? 0 : b) * x.s.size(); }

// Axis view: element (in, j, out) of x along axis k sits at in + inner*(j + len*out).
struct Axis {
  int64_t inner, len, outer;  // outer includes the batch
};
inline Axis axis_of(const Shape& x, int k) {
  Axis a{1, x.d[k], x.bd};
  for (int j = 0; j < k; ++j) a.inner *= x.d[j];
  for (int j = k + 1; j < MAXD; ++j) a.outer *= x.d[j];
  return a;
}

inline std::vector<int64_t> int_list(const Attrs& a, AttrKey key) {
  IntSpan s = a.ints(key);
  return std::vector<int64_t>(s.begin(), s.end());
}

// ------------------------------------------------------------------ broadcasting binary ops

template <class Op>
void bin_fwd(const CView& a, const CView& b, const View& y, Op op) {
  if (same(a.s, y.s) && same(b.s, y.s)) {
    int64_t n = y.s.total();
    for (int64_t k = 0; k < n; ++k) y.p[k] = op(a.p[k], b.p[k]);
    return;
  }
  iter3(ext(y.s), cstr(y.s), bstr(a.s, y.s), bstr(b.s, y.s),
        [&](int64_t iy, int64_t ia, int64_t ib) { y.p[iy] = op(a.p[ia], b.p[ib]); });
}

// dx_i += g(a, b, dy) over y's index space; broadcast dims of x_i are summed.
template <class G>
void bin_bwd(const CView& a, const CView& b, const Shape& ys, const float* dy, const View& dx, G g) {
  if (same(a.s, ys) && same(b.s, ys)) {
    int64_t n = ys.total();
    for (int64_t k = 0; k < n; ++k) dx.p[k] += g(a.p[k], b.p[k], dy[k]);
    return;
  }
  // Four operands: dy is the fourth.
  iter4(ext(ys), bstr(a.s, ys), bstr(b.s, ys), bstr(dx.s, ys), cstr(ys),
        [&](int64_t ia, int64_t ib, int64_t ix, int64_t iy) { dx.p[ix] += g(a.p[ia], b.p[ib], dy[iy]); });
}

// dx += s * dy, summing over the dims x was broadcast along.
inline void acc_unbroadcast(const View& dx, const Shape& ys, const float* dy, float s = 1.0f) {
  if (same(dx.s, ys)) {
    int64_t n = ys.total();
    if (s == 1.0f)  // a plain loop (vectorised by the compiler): Eigen's alignment peeling cost more than a 16-value add
      for (int64_t k = 0; k < n; ++k) dx.p[k] += dy[k];
    else
      Arr(dx.p, n) += s * CArr(dy, n);
    return;
  }
  if (dx.s.bd == 1 && ys.bd > 1 && same_data(dx.s, ys)) {  // summed over the batch only (a bias): contiguous column adds
    // A block of dx at a time, kept in a local while every column is added in order (the same
    // sums as column by column), so dx is read and written once instead of once per column.
    constexpr int64_t B = 512;
    float acc[B];
    int64_t n = dx.s.total();
    for (int64_t r0 = 0; r0 < n; r0 += B) {
      int64_t m = std::min(B, n - r0);
      Arr a(acc, m);
      a = CArr(dx.p + r0, m);
      if (s == 1.0f)
        for (int64_t b = 0; b < ys.bd; ++b) a += CArr(dy + b * n + r0, m);
      else
        for (int64_t b = 0; b < ys.bd; ++b) a += s * CArr(dy + b * n + r0, m);
      Arr(dx.p + r0, m) = a;
    }
    return;
  }
  iter2(ext(ys), bstr(dx.s, ys), cstr(ys), [&](int64_t ix, int64_t iy) { dx.p[ix] += s * dy[iy]; });
}
// y = x broadcast to y's shape.
inline void copy_broadcast(const CView& x, const View& y) {
  if (same(x.s, y.s)) {
    std::copy(x.p, x.p + y.s.total(), y.p);
    return;
  }
  iter2(ext(y.s), cstr(y.s), bstr(x.s, y.s), [&](int64_t iy, int64_t ix) { y.p[iy] = x.p[ix]; });
}
inline void add_broadcast(const CView& x, const View& y) {
  if (same(x.s, y.s)) {
    Arr(y.p, y.s.total()) += CArr(x.p, y.s.total());
    return;
  }
  iter2(ext(y.s), cstr(y.s), bstr(x.s, y.s), [&](int64_t iy, int64_t ix) { y.p[iy] += x.p[ix]; });
}


using Vec = Eigen::Map<Eigen::VectorXf>;
using CVec = Eigen::Map<const Eigen::VectorXf>;

// C (m x n) += op(A) op(B), dispatched to the AVX2+FMA build when it is loaded.
void gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C);
// C (m x n) = bias + A B (bias a column of m added to every column; null: none), written in one pass
// by the thin kernels where gemm_acc would send the product to them, else filled then accumulated.
void gemm_bias(int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C, const float* bias);
// W^T (c x r, column-major) of the weight W (r x c) for the input gradient W^T dy over n columns,
// made once per backward sweep and kept for the rest of it (the weights do not change within
// one); null where it would not pay: outside a sweep, one column, or a product the thin kernels
// do not take.  The thin kernels read a weight in place for W x but take W^T dy only as dot
// products, which fall behind a BLAS from ~48 columns on; with W^T, the input gradient runs on the
// forward's kernel, without the BLAS's packing of W on every call (128 x 256, 16-640 columns:
// 68-163 against 48-142 GFLOP/s).
const float* transposed_in_sweep(const float* W, int64_t r, int64_t c, int64_t n);
// A backward sweep (the executor's backward holds one while it runs).
class WeightSweep {
 public:
  WeightSweep();
  ~WeightSweep();
  WeightSweep(const WeightSweep&) = delete;
  WeightSweep& operator=(const WeightSweep&) = delete;
};
// Y (r x k per batch, n batches) += A (r x c, batch ba) * B (c x k, batch bb); batch 1 broadcasts.
void mm_acc(const float* A, int64_t r, int64_t c, int64_t ba, const float* B, int64_t k, int64_t bb, float* Y,
            int64_t n);
// dA += G * B^T and dB += A^T * G, summed over the batch where the operand has batch 1.
void mm_grad_a(const float* G, int64_t r, int64_t k, int64_t n, const float* B, int64_t c, int64_t bb, float* dA,
               int64_t ba);
void mm_grad_b(const float* G, int64_t r, int64_t k, int64_t n, const float* A, int64_t c, int64_t ba, float* dB,
               int64_t bb);
// An index list attribute, every entry checked against [0, bound): a bad index raises, never reads
// outside a tensor (the graph's shape rules check them too, but kernels are also called directly).
inline std::vector<int64_t> index_list(const Attrs& a, AttrKey key, int64_t bound, const char* what) {
  std::vector<int64_t> v = int_list(a, key);
  for (int64_t k : v)
    if (k < 0 || k >= bound)
      fail(std::string(what) + ": index " + std::to_string(k) + " out of range for size " + std::to_string(bound));
  return v;
}
inline void check_count(size_t n, int64_t want, const char* what) {
  if (int64_t(n) != want)
    fail(std::string(what) + ": " + std::to_string(n) + " indices where " + std::to_string(want) + " are needed");
}

// The identity's backward, dx += dy (plus_const, reshape, to_device).
void b_identity(const CView*, int, const CView&, const CView& dy, int, const View& dx, const Attrs&);

// The fused LSTM gates' backward in two halves, so the executor derives every input's gradient
// from one r: r (G x n) = d(pre-activations) from the gates' y and dy, and input i's gradient from r.
void lstm_gates_dpre(const CView& y, const CView& dy, float* r);
void lstm_gates_grad(const CView* x, int nargs, const Shape& ys, float* r, int i, const View& dx);
// The gates' forward with W_x x given (G x n, one column per batch element): the executor
// computes it for many steps as one GEMM.
void lstm_gates_pre(const CView* x, int nargs, const View& y, const float* pre);

// log-sum-exp of n values spaced st apart.
float lse_strided(const float* p, int64_t n, int64_t st);

}  // namespace ku
}  // namespace dy
