// The op table's leaves and arithmetic: constants and random draws, elementwise binary and
// scalar ops, sums, matrix products, norms, and the linear algebra ops (double inside).
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

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "common.h"
#include "kernel_util.h"
#include "gemm_blas.h"
#include "gemm_impl.h"
#include "gemm_thin.h"

namespace dy {
namespace ku {

// ------------------------------------------------------------------ leaves and broadcasting binary ops
DY_REGISTER(input, nullptr, nullptr);  // a leaf the executor runs itself
DY_REGISTER(parameter, nullptr, nullptr);  // a leaf the executor runs itself
DY_REGISTER(lookup, nullptr, nullptr);  // a leaf the executor runs itself

void f_constant(const CView*, int, const View& y, const Attrs& a) { Arr(y.p, y.s.total()).setConstant(float(a.num(attr::constant::value))); }
DY_REGISTER(constant, f_constant, nullptr);

void f_rnormal(const CView*, int, const View& y, const Attrs& a) {
  std::normal_distribution<double> d(a.num(attr::random_normal::mean), a.num(attr::random_normal::stddev));
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = float(d(rng()));
}
DY_REGISTER(random_normal, f_rnormal, nullptr);
void f_rbern(const CView*, int, const View& y, const Attrs& a) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  float sc = float(a.num(attr::random_bernoulli::scale));
  double p = a.num(attr::random_bernoulli::p);
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = u(rng()) < p ? sc : 0.0f;
}
DY_REGISTER(random_bernoulli, f_rbern, nullptr);
void f_runif(const CView*, int, const View& y, const Attrs& a) {
  std::uniform_real_distribution<double> u(a.num(attr::random_uniform::left), a.num(attr::random_uniform::right));
  for (int64_t k = 0; k < y.s.total(); ++k) y.p[k] = float(u(rng()));
}
DY_REGISTER(random_uniform, f_runif, nullptr);
void f_rgumbel(const CView*, int, const View& y, const Attrs& a) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double mu = a.num(attr::random_gumbel::mu), beta = a.num(attr::random_gumbel::beta);
  for (int64_t k = 0; k < y.s.total(); ++k) {
    double v = std::min(std::max(u(rng()), 1e-12), 1 - 1e-12);
    y.p[k] = float(mu - beta * std::log(-std::log(v)));
  }
}
DY_REGISTER(random_gumbel, f_rgumbel, nullptr);

void f_add(const CView* x, int, const View& y, const Attrs&) {
  if (same(x[0].s, y.s) && same(x[1].s, y.s)) {
    Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()) + CArr(x[1].p, y.s.total());
    return;
  }
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p + q; });
}
void b_add(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) { acc_unbroadcast(dx, y.s, dy.p); }
// dx = dy (summed where x broadcasts), for a gradient nothing has written yet: no zero-fill first.
void b_add_set(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  if (same(dx.s, y.s)) {
    std::memcpy(dx.p, dy.p, size_t(y.s.total()) * sizeof(float));
    return;
  }
  std::fill_n(dx.p, dx.s.total(), 0.0f);
  acc_unbroadcast(dx, y.s, dy.p);
}
// add over runs (no broadcasting there): y = x_0 + x_1; dx = dy.
void f_add_runs(const float* const* x, const int64_t* n, int runs, int na, float* y) {
  for (int r = 0; r < runs; y += n[r], ++r) {
    const float* const* xr = x + size_t(r) * size_t(na);
    Arr(y, n[r]) = CArr(xr[0], n[r]) + CArr(xr[1], n[r]);
  }
}
void b_add_runs(const float* const*, const int64_t* n, int runs, int, const float*, const float* dy, int, float* dx,
                bool set) {
  int64_t m = 0;
  for (int r = 0; r < runs; ++r) m += n[r];
  if (set)
    std::memcpy(dx, dy, size_t(m) * sizeof(float));
  else
    Arr(dx, m) += CArr(dy, m);
}
DY_REGISTER(add, f_add, b_add, b_add_set, f_add_runs, b_add_runs);
DY_REGISTER(colwise_add, f_add, b_add, b_add_set);

void f_cmult(const CView* x, int, const View& y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p * q; });
}
void b_cmult(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float, float q, float g) { return g * q; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float, float g) { return g * p; });
}
void b_cmult_set(const CView* x, int n, const CView& y, const CView& dy, int i, const View& dx, const Attrs& a) {
  if (!(same(x[0].s, y.s) && same(x[1].s, y.s))) {  // broadcasting: added into zeros
    Arr(dx.p, dx.s.total()).setZero();
    b_cmult(x, n, y, dy, i, dx, a);
    return;
  }
  int64_t m = y.s.total();
  Arr(dx.p, m) = CArr(dy.p, m) * CArr(x[1 - i].p, m);
}
// cmult over runs (no broadcasting there): y = x_0 x_1; dx_i = dy x_(1-i).
void f_cmult_runs(const float* const* x, const int64_t* n, int runs, int na, float* y) {
  for (int r = 0; r < runs; y += n[r], ++r) {
    const float* const* xr = x + size_t(r) * size_t(na);
    Arr(y, n[r]) = CArr(xr[0], n[r]) * CArr(xr[1], n[r]);
  }
}
void b_cmult_runs(const float* const* x, const int64_t* n, int runs, int na, const float*, const float* dy, int i,
                  float* dx, bool set) {
  for (int r = 0; r < runs; dy += n[r], dx += n[r], ++r) {
    const float* other = x[size_t(r) * size_t(na) + size_t(1 - i)];
    if (set)
      Arr(dx, n[r]) = CArr(dy, n[r]) * CArr(other, n[r]);
    else
      Arr(dx, n[r]) += CArr(dy, n[r]) * CArr(other, n[r]);
  }
}
DY_REGISTER(cmult, f_cmult, b_cmult, b_cmult_set, f_cmult_runs, b_cmult_runs);
void f_cdiv(const CView* x, int, const View& y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p / q; });
}
void b_cdiv(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float, float q, float g) { return g / q; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return -g * p / (q * q); });
}
DY_REGISTER(cdiv, f_cdiv, b_cdiv);
void f_bmin(const CView* x, int, const View& y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p != p ? p : (q != q ? q : (p <= q ? p : q)); });
}
void b_bmin(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p <= q ? g : 0.0f; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p <= q ? 0.0f : g; });
}
DY_REGISTER(bmin, f_bmin, b_bmin);
void f_bmax(const CView* x, int, const View& y, const Attrs&) {
  bin_fwd(x[0], x[1], y, [](float p, float q) { return p != p ? p : (q != q ? q : (p >= q ? p : q)); });
}
void b_bmax(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  if (i == 0)
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p >= q ? g : 0.0f; });
  else
    bin_bwd(x[0], x[1], y.s, dy.p, dx, [](float p, float q, float g) { return p >= q ? 0.0f : g; });
}
DY_REGISTER(bmax, f_bmax, b_bmax);

// ------------------------------------------------------------------ scalar-attribute ops

void f_negate(const CView* x, int, const View& y, const Attrs&) { Arr(y.p, y.s.total()) = -CArr(x[0].p, y.s.total()); }
void b_negate(const CView*, int, const CView&, const CView& dy, int, const View& dx, const Attrs&) {
  Arr(dx.p, dx.s.total()) -= CArr(dy.p, dx.s.total());
}
DY_REGISTER(negate, f_negate, b_negate);
void f_plus_const(const CView* x, int, const View& y, const Attrs& a) {
  Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()) + float(a.num(attr::plus_const::c));
}
void b_identity(const CView*, int, const CView&, const CView& dy, int, const View& dx, const Attrs&) {
  Arr(dx.p, dx.s.total()) += CArr(dy.p, dx.s.total());
}
DY_REGISTER(plus_const, f_plus_const, b_identity);
void f_const_minus(const CView* x, int, const View& y, const Attrs& a) {
  Arr(y.p, y.s.total()) = float(a.num(attr::const_minus::c)) - CArr(x[0].p, y.s.total());
}
DY_REGISTER(const_minus, f_const_minus, b_negate);
void f_scalar_mult(const CView* x, int, const View& y, const Attrs& a) {
  Arr(y.p, y.s.total()) = CArr(x[0].p, y.s.total()) * float(a.num(attr::scalar_mult::c));
}
void b_scalar_mult(const CView*, int, const CView&, const CView& dy, int, const View& dx, const Attrs& a) {
  Arr(dx.p, dx.s.total()) += CArr(dy.p, dx.s.total()) * float(a.num(attr::scalar_mult::c));
}
DY_REGISTER(scalar_mult, f_scalar_mult, b_scalar_mult);

// ------------------------------------------------------------------ matrix products

// Y (r x k per batch, n batches) += A (r x c, batch ba) * B (c x k, batch bb).
// C += op(A) op(B): large products through the BLAS when one is loaded, products with a short
// side through the thin-product kernels, others through Eigen's AVX2+FMA build when it is
// loaded and the product is big enough to gain from it, else through this (baseline) build.
void gemm_acc(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  if (threads() == 1 && thin::weight_in_cache(ta, tb, m, n, k) && thin::gemm_acc(ta, tb, m, n, k, A, B, C)) return;
  if (blas::gemm_acc(ta, tb, m, n, k, A, B, C)) return;  // large products, when a BLAS is loaded
  // A short side: AVX-512/AVX2 without packing, on one thread (so not for big products when
  // --dynet-threads asks for more and Eigen can split them).
  if ((threads() == 1 || m * n * k < (int64_t(1) << 22)) && thin::gemm_acc(ta, tb, m, n, k, A, B, C)) return;
  GemmFn fast = fast_gemm();
  if (fast && m * n * k >= 4096)
    fast(ta, tb, m, n, k, A, B, C);
  else
    gemm_acc_impl(ta, tb, m, n, k, A, B, C);
}

namespace {
struct TransposedWeight {
  const float* w = nullptr;
  int64_t r = 0, c = 0;  // (a value may be read under two shapes: a reshape shares its input's)
  uint64_t sweep = 0;
  std::vector<float> t;
};
thread_local std::vector<TransposedWeight> t_wt;
thread_local uint64_t t_sweep = 0;  // the current sweep's number
thread_local int t_in_sweep = 0;    // sweeps open (0: none)
}  // namespace

WeightSweep::WeightSweep() {
  if (t_in_sweep++ == 0) ++t_sweep;
}
WeightSweep::~WeightSweep() { --t_in_sweep; }

const float* transposed_in_sweep(const float* W, int64_t r, int64_t c, int64_t n) {
  // (the rule by which gemm_acc and gemm_bias send W^T x to the thin kernels)
  if (t_in_sweep == 0 || n < 2 || threads() != 1 || !thin::active() || !thin::weight_in_cache(false, false, c, n, r))
    return nullptr;
  TransposedWeight* e = nullptr;
  for (TransposedWeight& x : t_wt) {
    if (x.w == W && x.r == r && x.c == c && x.sweep == t_sweep) return x.t.data();
    if (!e && x.sweep != t_sweep) e = &x;  // a copy from an earlier sweep: its memory reused
  }
  if (!e) e = &t_wt.emplace_back();
  e->w = W, e->r = r, e->c = c, e->sweep = t_sweep;
  e->t.resize(size_t(r * c));
  float* t = e->t.data();
  constexpr int64_t B = 32;  // in tiles that stay in the L1 cache, each tile's rows of W outermost
                             // (W^T's columns written in order: 9.5 us for 128 x 256, where columns
                             // of W outermost over the whole matrix took 25)
  for (int64_t I = 0; I < r; I += B)
    for (int64_t J = 0; J < c; J += B) {
      const int64_t ie = std::min(r, I + B), je = std::min(c, J + B);
      int64_t i = I;
#if defined(__SSE2__)
      for (; i + 4 <= ie; i += 4) {
        int64_t j = J;
        for (; j + 4 <= je; j += 4) {  // a 4 x 4 block through SSE registers
          __m128 a = _mm_loadu_ps(W + i + j * r), b = _mm_loadu_ps(W + i + (j + 1) * r);
          __m128 d = _mm_loadu_ps(W + i + (j + 2) * r), f = _mm_loadu_ps(W + i + (j + 3) * r);
          _MM_TRANSPOSE4_PS(a, b, d, f);
          _mm_storeu_ps(t + j + i * c, a), _mm_storeu_ps(t + j + (i + 1) * c, b);
          _mm_storeu_ps(t + j + (i + 2) * c, d), _mm_storeu_ps(t + j + (i + 3) * c, f);
        }
        for (; j < je; ++j)
          for (int64_t q = i; q < i + 4; ++q) t[j + q * c] = W[q + j * r];
      }
#endif
      for (; i < ie; ++i)
        for (int64_t j = J; j < je; ++j) t[j + i * c] = W[i + j * r];
    }
  return t;
}

void gemm_bias(int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C, const float* bias) {
  if (threads() == 1 && (thin::weight_in_cache(false, false, m, n, k) || !blas::would_take(m, n, k)) &&
      thin::gemm_bias(m, n, k, A, B, C, bias))
    return;
  for (int64_t j = 0; j < n; ++j) {
    if (bias)
      std::memcpy(C + j * m, bias, size_t(m) * sizeof(float));
    else
      std::fill_n(C + j * m, m, 0.0f);
  }
  gemm_acc(false, false, m, n, k, A, B, C);
}

void mm_acc(const float* A, int64_t r, int64_t c, int64_t ba, const float* B, int64_t k, int64_t bb, float* Y,
            int64_t n) {
  if (ba == 1 && (bb == n || n == 1)) {
    gemm_acc(false, false, r, k * n, c, A, B, Y);
    return;
  }
  if (ba == 1 && bb == 1) {  // one product, added to every batch element
    Eigen::MatrixXf t = Eigen::MatrixXf::Zero(r, k);
    gemm_acc(false, false, r, k, c, A, B, t.data());
    for (int64_t b = 0; b < n; ++b) Mat(Y + b * r * k, r, k) += t;
    return;
  }
  for (int64_t b = 0; b < n; ++b)
    gemm_acc(false, false, r, k, c, A + (ba == 1 ? 0 : b) * r * c, B + (bb == 1 ? 0 : b) * c * k, Y + b * r * k);
}
// Sum of the n batch elements of G (r x k each).
Eigen::MatrixXf batch_sum(const float* G, int64_t r, int64_t k, int64_t n) {
  Eigen::MatrixXf s = CMat(G, r, k);
  for (int64_t b = 1; b < n; ++b) s += CMat(G + b * r * k, r, k);
  return s;
}
// dA += G * B^T (summed over batch where A has batch 1).
void mm_grad_a(const float* G, int64_t r, int64_t k, int64_t n, const float* B, int64_t c, int64_t bb, float* dA,
               int64_t ba) {
  if (ba == 1 && (bb == n || n == 1)) {
    gemm_acc(false, true, r, c, k * n, G, B, dA);
    return;
  }
  if (ba == 1) {  // bb == 1, n > 1
    Eigen::MatrixXf gs = batch_sum(G, r, k, n);
    gemm_acc(false, true, r, c, k, gs.data(), B, dA);
    return;
  }
  for (int64_t b = 0; b < n; ++b)
    gemm_acc(false, true, r, c, k, G + b * r * k, B + (bb == 1 ? 0 : b) * c * k, dA + b * r * c);
}
// dB += A^T * G (summed over batch where B has batch 1).
void mm_grad_b(const float* G, int64_t r, int64_t k, int64_t n, const float* A, int64_t c, int64_t ba, float* dB,
               int64_t bb) {
  if (ba == 1 && (bb == n || n == 1)) {  // dB += A^T G over every column at once
    const float* At = transposed_in_sweep(A, r, c, k * n);
    if (At)
      gemm_acc(false, false, c, k * n, r, At, G, dB);
    else
      gemm_acc(true, false, c, k * n, r, A, G, dB);
    return;
  }
  if (ba == 1) {  // bb == 1, n > 1
    Eigen::MatrixXf gs = batch_sum(G, r, k, n);
    gemm_acc(true, false, c, k, r, A, gs.data(), dB);
    return;
  }
  for (int64_t b = 0; b < n; ++b)
    gemm_acc(true, false, c, k, r, A + b * r * c, G + b * r * k, dB + (bb == 1 ? 0 : b) * c * k);
}

// One column (a single example's step): y (r) += op(A) x through the thin GEMV directly, when
// the BLAS would not take it (as gemm_acc decides) and a vector build is in use.
bool gemv_direct(bool ta, int64_t r, int64_t c, const float* A, const float* x, float* y) {
  return !blas::would_take(r, 1, c) && thin::gemv_acc(ta, r, c, A, x, y);
}

void f_matmul(const CView* x, int, const View& y, const Attrs&) {
  const int64_t r = x[0].s.d[0], c = x[0].s.d[1];
  if (y.s.total() == r && x[0].s.bd == 1 && x[1].s.total() == c) {  // W x, one column
    std::fill_n(y.p, r, 0.0f);
    if (gemv_direct(false, r, c, x[0].p, x[1].p, y.p)) return;
  }
  if (x[0].s.bd == 1 && x[1].s.bd == y.s.bd) {  // one weight times every column: written in one pass
    gemm_bias(r, x[1].s.d[1] * y.s.bd, c, x[0].p, x[1].p, y.p, nullptr);
    return;
  }
  Arr(y.p, y.s.total()).setZero();
  mm_acc(x[0].p, x[0].s.d[0], x[0].s.d[1], x[0].s.bd, x[1].p, x[1].s.d[1], x[1].s.bd, y.p, y.s.bd);
}
void b_matmul(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t r = x[0].s.d[0], c = x[0].s.d[1], k = x[1].s.d[1];
  if (i == 1 && y.s.total() == r && x[0].s.bd == 1 && dx.s.total() == c &&
      gemv_direct(true, c, r, x[0].p, dy.p, dx.p))  // dx += W^T dy, one column
    return;
  if (i == 0)
    mm_grad_a(dy.p, r, k, y.s.bd, x[1].p, c, x[1].s.bd, dx.p, x[0].s.bd);
  else
    mm_grad_b(dy.p, r, k, y.s.bd, x[0].p, c, x[0].s.bd, dx.p, x[1].s.bd);
}
DY_REGISTER(matmul, f_matmul, b_matmul);

void f_affine(const CView* x, int n, const View& y, const Attrs&) {
  const int64_t r = y.s.d[0];
  if (n == 3 && x[0].s.total() == r && x[1].s.bd == 1 && x[2].s.bd == y.s.bd) {  // b + W X, one bias column
    gemm_bias(r, x[2].s.d[1] * y.s.bd, x[1].s.d[1], x[1].p, x[2].p, y.p, x[0].p);
    return;
  }
  copy_broadcast(x[0], y);
  for (int j = 1; j + 1 < n; j += 2)
    mm_acc(x[j].p, x[j].s.d[0], x[j].s.d[1], x[j].s.bd, x[j + 1].p, x[j + 1].s.d[1], x[j + 1].s.bd, y.p, y.s.bd);
}
void b_affine(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs& a) {
  if (i == 0) {
    acc_unbroadcast(dx, y.s, dy.p);
    return;
  }
  int j = (i % 2 == 1) ? i : i - 1;
  CView A[2] = {x[j], x[j + 1]};
  CView yy = y;
  b_matmul(A, 2, yy, dy, i == j ? 0 : 1, dx, a);
}
DY_REGISTER(affine_transform, f_affine, b_affine);

void f_sum(const CView* x, int n, const View& y, const Attrs&) {
  copy_broadcast(x[0], y);
  for (int j = 1; j < n; ++j) add_broadcast(x[j], y);
}
DY_REGISTER(sum, f_sum, b_add, b_add_set);
void f_average(const CView* x, int n, const View& y, const Attrs& a) {
  f_sum(x, n, y, a);
  Arr(y.p, y.s.total()) /= float(n);
}
void b_average(const CView*, int n, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  acc_unbroadcast(dx, y.s, dy.p, 1.0f / float(n));
}
DY_REGISTER(average, f_average, b_average);

// x ** e for a scalar e per batch element.
void f_pow(const CView* x, int, const View& y, const Attrs&) {
  int64_t m = y.s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float* xb = bat(x[0], b);
    float e = *bat(x[1], b);
    for (int64_t k = 0; k < m; ++k) y.p[b * m + k] = std::pow(xb[k], e);
  }
}
void b_pow(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t m = y.s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) {
    const float* xb = bat(x[0], b);
    float e = *bat(x[1], b);
    const float* g = dy.p + b * m;
    if (i == 0) {
      float* d = bat(dx, b);
      for (int64_t k = 0; k < m; ++k) d[k] += g[k] * e * std::pow(xb[k], e - 1.0f);
    } else {
      const float* yb = y.p + b * m;
      double s = 0;
      for (int64_t k = 0; k < m; ++k) s += double(g[k] * yb[k] * std::log(xb[k]));
      *bat(dx, b) += float(s);
    }
  }
}
DY_REGISTER(pow, f_pow, b_pow);

// Per-batch reductions to a scalar.
void f_dot(const CView* x, int, const View& y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = CArr(bat(x[0], b), m).matrix().dot(CArr(bat(x[1], b), m).matrix());
}
void b_dot(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t m = x[0].s.size();
  const CView& o = x[1 - i];
  for (int64_t b = 0; b < y.s.bd; ++b) Arr(bat(dx, b), m) += dy.p[b] * CArr(bat(o, b), m);
}
DY_REGISTER(dot_product, f_dot, b_dot);
void f_sqnorm(const CView* x, int, const View& y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = CArr(x[0].p + b * m, m).matrix().squaredNorm();
}
void b_sqnorm(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) Arr(dx.p + b * m, m) += (2.0f * dy.p[b]) * CArr(x[0].p + b * m, m);
}
DY_REGISTER(squared_norm, f_sqnorm, b_sqnorm);
void f_l2(const CView* x, int, const View& y, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) y.p[b] = std::sqrt(CArr(x[0].p + b * m, m).matrix().squaredNorm());
}
void b_l2(const CView* x, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  int64_t m = x[0].s.size();
  for (int64_t b = 0; b < y.s.bd; ++b) Arr(dx.p + b * m, m) += (dy.p[b] / y.p[b]) * CArr(x[0].p + b * m, m);
}
DY_REGISTER(l2_norm, f_l2, b_l2);


namespace {

using Eigen::MatrixXd;

// ------------------------------------------------------------------ linear algebra (double inside)

MatrixXd to_d(const float* p, int64_t n) { return CMat(p, n, n).cast<double>(); }

// A NaN anywhere in the matrix makes its whole inverse NaN, on every backend: LU solvers differ
// in where a NaN shows (and cuSOLVER turns a 1x1 NaN into +Inf).
void f_inverse(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.d[0];
  MatrixXd m = to_d(x[0].p, n);
  if (m.hasNaN())
    Mat(y.p, n, n).setConstant(std::numeric_limits<float>::quiet_NaN());
  else
    Mat(y.p, n, n) = m.inverse().cast<float>();
}
void b_inverse(const CView*, int, const CView& y, const CView& dy, int, const View& dx, const Attrs&) {
  int64_t n = y.s.d[0];
  Mat(dx.p, n, n) -= CMat(y.p, n, n).transpose() * CMat(dy.p, n, n) * CMat(y.p, n, n).transpose();
}
DY_REGISTER(inverse, f_inverse, b_inverse);
void f_logdet(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.d[0];
  Eigen::PartialPivLU<MatrixXd> lu(to_d(x[0].p, n));
  double sign = lu.permutationP().determinant(), logabs = 0;
  const MatrixXd& m = lu.matrixLU();
  for (int64_t k = 0; k < n; ++k) {
    double v = m(k, k);
    if (v < 0) sign = -sign;
    logabs += std::log(std::fabs(v));
  }
  y.p[0] = sign > 0 ? float(logabs) : std::numeric_limits<float>::quiet_NaN();
}
void b_logdet(const CView* x, int, const CView&, const CView& dy, int, const View& dx, const Attrs&) {
  int64_t n = x[0].s.d[0];
  Mat(dx.p, n, n) += (double(dy.p[0]) * to_d(x[0].p, n).inverse().transpose()).cast<float>();
}
DY_REGISTER(logdet, f_logdet, b_logdet);
void f_trace_prod(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.total();
  y.p[0] = (CArr(x[0].p, n) * CArr(x[1].p, n)).sum();
}
void b_trace_prod(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t n = dx.s.total();
  Arr(dx.p, n) += dy.p[0] * CArr(x[1 - i].p, n);
}
DY_REGISTER(trace_of_product, f_trace_prod, b_trace_prod);

// contract3d_1d: Y_ij = sum_k A_ijk b_k, i.e. the (ij x k) matrix times b, batched.
void f_c3d1(const CView* x, int, const View& y, const Attrs&) {
  int64_t ij = x[0].s.d[0] * x[0].s.d[1], k = x[0].s.d[2];
  Arr(y.p, y.s.total()).setZero();
  mm_acc(x[0].p, ij, k, x[0].s.bd, x[1].p, 1, x[1].s.bd, y.p, y.s.bd);
}
void b_c3d1(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t ij = x[0].s.d[0] * x[0].s.d[1], k = x[0].s.d[2];
  if (i == 0)
    mm_grad_a(dy.p, ij, 1, y.s.bd, x[1].p, k, x[1].s.bd, dx.p, x[0].s.bd);
  else
    mm_grad_b(dy.p, ij, 1, y.s.bd, x[0].p, k, x[0].s.bd, dx.p, x[1].s.bd);
}
DY_REGISTER(contract3d_1d, f_c3d1, b_c3d1);
// contract3d_1d_1d: y_i = sum_jk A_ijk b_k c_j (unbatched).
void f_c3d11(const CView* x, int, const View& y, const Attrs&) {
  int64_t I = x[0].s.d[0], J = x[0].s.d[1], K = x[0].s.d[2];
  Eigen::VectorXf t = CMat(x[0].p, I * J, K) * CVec(x[1].p, K);
  Vec(y.p, I) = Eigen::Map<Eigen::MatrixXf>(t.data(), I, J) * CVec(x[2].p, J);
}
void b_c3d11(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t I = x[0].s.d[0], J = x[0].s.d[1], K = x[0].s.d[2];
  const float *A = x[0].p, *b = x[1].p, *c = x[2].p, *g = dy.p;
  for (int64_t kk = 0; kk < K; ++kk)
    for (int64_t j = 0; j < J; ++j)
      for (int64_t ii = 0; ii < I; ++ii) {
        int64_t q = ii + I * (j + J * kk);
        if (i == 0)
          dx.p[q] += g[ii] * c[j] * b[kk];
        else if (i == 1)
          dx.p[kk] += A[q] * c[j] * g[ii];
        else
          dx.p[j] += A[q] * b[kk] * g[ii];
      }
}
DY_REGISTER(contract3d_1d_1d, f_c3d11, b_c3d11);

int64_t mod(int64_t a, int64_t n) { return ((a % n) + n) % n; }
void f_circ_conv(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.total();
  for (int64_t k = 0; k < n; ++k) {
    float s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[1].p[mod(k - j, n)] * x[0].p[j];
    y.p[k] = s;
  }
}
void b_circ_conv(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t n = dx.s.total();
  const float* o = x[1 - i].p;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < n; ++k) dx.p[j] += o[mod(k - j, n)] * dy.p[k];
}
DY_REGISTER(circ_conv, f_circ_conv, b_circ_conv);
void f_circ_corr(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.total();
  for (int64_t k = 0; k < n; ++k) {
    float s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[1].p[mod(k + j, n)] * x[0].p[j];
    y.p[k] = s;
  }
}
void b_circ_corr(const CView* x, int, const CView&, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t n = dx.s.total();
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < n; ++k)
      dx.p[j] += (i == 0 ? x[1].p[mod(k + j, n)] : x[0].p[mod(j - k, n)]) * dy.p[k];
}
DY_REGISTER(circ_corr, f_circ_corr, b_circ_corr);


// ------------------------------------------------------------------ weight norm

void f_wnorm(const CView* x, int, const View& y, const Attrs&) {
  int64_t n = x[0].s.total();
  float sq = CArr(x[0].p, n).square().sum();
  Arr(y.p, n) = CArr(x[0].p, n) * (x[1].p[0] / std::sqrt(sq));
}
void b_wnorm(const CView* x, int, const CView& y, const CView& dy, int i, const View& dx, const Attrs&) {
  int64_t n = x[0].s.total();
  float sq = CArr(x[0].p, n).square().sum(), proj = (CArr(dy.p, n) * CArr(x[0].p, n)).sum();
  if (i == 0)
    Arr(dx.p, n) += CArr(dy.p, n) * (x[1].p[0] / std::sqrt(sq)) - CArr(y.p, n) * (proj / sq);
  else
    dx.p[0] += proj / std::sqrt(sq);
}
DY_REGISTER(weight_norm, f_wnorm, b_wnorm);

}  // namespace


}  // namespace ku
}  // namespace dy
