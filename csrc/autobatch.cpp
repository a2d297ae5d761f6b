// Batched products over a shared weight: gather the operands' columns into one block,
// one GEMM, scatter the results.  Scratch blocks are kept between calls.
#include "autobatch.h"

#include <cstring>

#include "kernel_util.h"

namespace dy {
namespace ab {

namespace {
bool g_enabled = true;
thread_local std::vector<float> t_a, t_b;

float* scratch(std::vector<float>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v.data();
}
int64_t columns(const std::vector<Item>& items) {
  int64_t n = 0;
  for (const Item& it : items) n += it.n;
  return n;
}
// Copy each item's (rows x n) block, picked by get, side by side into dst.
template <class Get>
void gather(float* dst, int64_t rows, const std::vector<Item>& items, Get get) {
  for (const Item& it : items) {
    std::memcpy(dst, get(it), size_t(rows * it.n) * sizeof(float));
    dst += rows * it.n;
  }
}
}  // namespace

Stats& stats() {
  static Stats s;
  return s;
}
bool enabled() { return g_enabled; }
void set_enabled(bool on) { g_enabled = on; }

void forward(const float* W, int64_t r, int64_t c, const std::vector<Item>& items) {
  ++stats().forward;
  int64_t N = columns(items);
  float* X = scratch(t_a, c * N);
  gather(X, c, items, [](const Item& it) { return it.x; });
  float* Y = scratch(t_b, r * N);
  std::fill_n(Y, r * N, 0.0f);
  ku::gemm_acc(false, false, r, N, c, W, X, Y);
  for (const Item& it : items) {
    int64_t m = r * it.n;
    if (!it.bias.p) {
      std::memcpy(it.y, Y, size_t(m) * sizeof(float));
    } else if (it.bias.s.total() == r) {  // a column bias: y[:, j] = b + Y[:, j]
      ku::CVec b(it.bias.p, r);
      for (int64_t j = 0; j < it.n; ++j) ku::Vec(it.y + j * r, r) = b + ku::CVec(Y + j * r, r);
    } else {  // the executor only batches column biases
      ku::fail("autobatch: a bias that is not one column");
    }
    Y += m;
  }
}

void weight_grad(float* dW, int64_t r, int64_t c, const std::vector<Item>& items) {
  if (items.size() == 1) {
    ku::gemm_acc(false, true, r, c, items[0].n, items[0].dy, items[0].x, dW);
    return;
  }
  ++stats().weight_grad;
  int64_t N = columns(items);
  float* G = scratch(t_a, r * N);
  gather(G, r, items, [](const Item& it) { return it.dy; });
  float* X = scratch(t_b, c * N);
  gather(X, c, items, [](const Item& it) { return it.x; });
  ku::gemm_acc(false, true, r, c, N, G, X, dW);
}

void input_grad(const float* W, int64_t r, int64_t c, const std::vector<Item>& items) {
  ++stats().input_grad;
  int64_t N = columns(items);
  float* G = scratch(t_a, r * N);
  gather(G, r, items, [](const Item& it) { return it.dy; });
  float* T = scratch(t_b, c * N);
  std::fill_n(T, c * N, 0.0f);
  ku::gemm_acc(true, false, c, N, r, W, G, T);
  for (const Item& it : items) {
    ku::Arr(it.y, c * it.n) += ku::CArr(T, c * it.n);
    T += c * it.n;
  }
}

}  // namespace ab
}  // namespace dy
