// Batched products over a shared weight: one GEMM over the operands' columns, read and
// written in place when they already lie side by side (the executor gives a group's outputs
// and gradients one block each), else gathered into / scattered from scratch blocks kept
// between calls.
#include "autobatch.h"

#include <algorithm>
#include <cstring>
#include <functional>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernel_util.h"

namespace dy {
namespace ab {

namespace {
int g_strategy = 1;
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
// Whether each item's (rows x n) block, picked by get, starts where the previous one ends,
// so the blocks already form one matrix and need no gather.
template <class Get>
bool consecutive(const std::vector<Item>& items, int64_t rows, Get get) {
  for (size_t i = 1; i < items.size(); ++i)
    if (get(items[i]) != get(items[i - 1]) + rows * items[i - 1].n) return false;
  return true;
}
// The items' (rows x n) blocks, picked by get, as one matrix: in place when they lie side by
// side, else gathered into the scratch block.
template <class Get>
const float* as_matrix(const std::vector<Item>& items, int64_t rows, Get get, std::vector<float>& slot) {
  if (consecutive(items, rows, get)) return get(items[0]);
  float* m = scratch(slot, rows * columns(items));
  gather(m, rows, items, get);
  return m;
}
const float* item_x(const Item& it) { return it.x; }
const float* item_dy(const Item& it) { return it.dy; }
// y (r x n) = the column b (or zero where b is null).  A block past the caches is written with
// streaming stores: the GEMM after this reads it back from memory in either case, and these skip
// reading every line in before writing it (the 10000 x 16T logits of rnnlm-batch: ~1.8 -> ~1.1 ms).
constexpr int64_t STREAM_FLOATS = int64_t(1) << 19;  // 2 MiB
void fill_columns(float* y, const float* b, int64_t r, int64_t n, bool stream) {
#if defined(__SSE2__)
  if (stream && r >= 16) {
    for (int64_t j = 0; j < n; ++j) {
      float* d = y + j * r;
      int64_t k = 0;
      for (; k < r && (reinterpret_cast<uintptr_t>(d + k) & 15); ++k) d[k] = b ? b[k] : 0.0f;
      if (b)
        for (; k + 4 <= r; k += 4) _mm_stream_ps(d + k, _mm_loadu_ps(b + k));
      else
        for (; k + 4 <= r; k += 4) _mm_stream_ps(d + k, _mm_setzero_ps());
      for (; k < r; ++k) d[k] = b ? b[k] : 0.0f;
    }
    _mm_sfence();  // streaming stores are weakly ordered: complete them before the GEMM reads y
    return;
  }
#else
  (void)stream;
#endif
  if (!b) {
    std::fill_n(y, r * n, 0.0f);
    return;
  }
  for (int64_t j = 0; j < n; ++j) std::memcpy(y + j * r, b, size_t(r) * sizeof(float));
}

// The items ordered by their dy (sums and independent columns do not depend on the order;
// the executor gives a group's gradients one block in node order).
thread_local std::vector<Item> t_sorted;
// Backward defers a weight's items as it walks the graph down, so they mostly arrive in the
// reverse of dy's order (the chain's ~1000 per flush): reversed, not sorted, when they are.
std::vector<Item>& by_dy(const std::vector<Item>& items) {
  const std::less<const float*> before;
  auto by = [&](const Item& a, const Item& b) { return before(a.dy, b.dy); };
  auto after = [&](const Item& a, const Item& b) { return before(b.dy, a.dy); };
  if (std::is_sorted(items.begin(), items.end(), after)) {
    t_sorted.assign(items.rbegin(), items.rend());
    return t_sorted;
  }
  t_sorted.assign(items.begin(), items.end());
  if (!std::is_sorted(t_sorted.begin(), t_sorted.end(), by)) std::sort(t_sorted.begin(), t_sorted.end(), by);
  return t_sorted;
}
}  // namespace

Stats& stats() {
  static Stats s;
  return s;
}
int strategy() { return g_strategy; }
void set_strategy(int s) { g_strategy = s; }

void forward(const float* W, int64_t r, int64_t c, const std::vector<Item>& items) {
  ++stats().forward;
  int64_t N = columns(items);
  const float* X = as_matrix(items, c, item_x, t_a);
  // Outputs side by side (the executor gives a group one block): the GEMM writes in place,
  // after each item's columns start as its bias (or zero); otherwise through a scratch block.
  bool direct = consecutive(items, r, [](const Item& it) { return static_cast<const float*>(it.y); });
  float* Y = direct ? items[0].y : scratch(t_b, r * N);
  float* y = Y;
  bool stream = r * N >= STREAM_FLOATS;
  // One bias for every item (the group's shared parameter) or none: ku::gemm_bias writes each
  // column as bias + W x in one pass, where the fill below writes the block first and the GEMM
  // reads it back (a Tree-LSTM level's gates: 128 x hundreds of columns, five times per level).
  const float* bias = items[0].bias.p;
  bool one_bias = direct && !stream && (!bias || items[0].bias.s.total() == r);
  for (size_t i = 1; i < items.size() && one_bias; ++i) one_bias = items[i].bias.p == bias;
  if (one_bias) {
    ku::gemm_bias(r, N, c, W, X, Y, bias);
    return;
  }
  for (const Item& it : items) {
    if (it.bias.p && it.bias.s.total() != r) ku::fail("autobatch: a bias that is not one column");
    fill_columns(y, direct ? it.bias.p : nullptr, r, it.n, stream);
    y += r * it.n;
  }
  ku::gemm_acc(false, false, r, N, c, W, X, Y);
  if (direct) return;
  for (const Item& it : items) {
    int64_t m = r * it.n;
    if (!it.bias.p) {
      std::memcpy(it.y, Y, size_t(m) * sizeof(float));
    } else {  // a column bias: y[:, j] = b + Y[:, j]
      ku::CVec b(it.bias.p, r);
      for (int64_t j = 0; j < it.n; ++j) ku::Vec(it.y + j * r, r) = b + ku::CVec(Y + j * r, r);
    }
    Y += m;
  }
}

// Items of at least this many columns add their dy x^T to dW by a GEMM of their own, reading
// both in place; the rest are gathered into one GEMM (a GEMM over a few columns is mostly
// reading and writing dW, while gathering copies every column once more).
constexpr int64_t OWN_GEMM_COLUMNS = 32;

void weight_grad(float* dW, int64_t r, int64_t c, const std::vector<Item>& items) {
  if (items.size() == 1) {
    ku::gemm_acc(false, true, r, c, items[0].n, items[0].dy, items[0].x, dW);
    return;
  }
  ++stats().weight_grad;
  std::vector<Item>& its = by_dy(items);
  if (consecutive(its, r, item_dy) && consecutive(its, c, item_x)) {
    ku::gemm_acc(false, true, r, c, columns(its), its[0].dy, its[0].x, dW);
    return;
  }
  size_t small = 0;
  for (const Item& it : its) {
    if (it.n >= OWN_GEMM_COLUMNS)
      ku::gemm_acc(false, true, r, c, it.n, it.dy, it.x, dW);
    else
      its[small++] = it;
  }
  its.resize(small);
  if (small == 1) ku::gemm_acc(false, true, r, c, its[0].n, its[0].dy, its[0].x, dW);
  if (small > 1)
    ku::gemm_acc(false, true, r, c, columns(its), as_matrix(its, r, item_dy, t_a), as_matrix(its, c, item_x, t_b), dW);
}

void input_grad(const float* W, int64_t r, int64_t c, const std::vector<Item>& items) {
  ++stats().input_grad;
  std::vector<Item>& its = by_dy(items);
  int64_t N = columns(its);
  const float* G = as_matrix(its, r, item_dy, t_a);
  float* T = scratch(t_b, c * N);
  const float* Wt = ku::transposed_in_sweep(W, r, c, N);
  if (Wt) {
    ku::gemm_bias(c, N, r, Wt, G, T, nullptr);  // T = W^T G, written whole
  } else {
    std::fill_n(T, c * N, 0.0f);
    ku::gemm_acc(true, false, c, N, r, W, G, T);
  }
  for (const Item& it : its) {
    ku::Arr(it.y, c * it.n) += ku::CArr(T, c * it.n);
    T += c * it.n;
  }
}

}  // namespace ab
}  // namespace dy
