// Batched matrix products for the executor's autobatching: many W x_i of one shared weight
// computed as one GEMM over the concatenated x_i (a group of products, the LSTM steps' input
// products), and the weight gradient sum_i dY_i x_i^T as one GEMM at the end of backward.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace dy {
namespace ab {

// One product of a batch: x (c x n columns, contiguous), y (r x n columns, contiguous).
struct Item {
  const float* x;
  int64_t n;
  float* y;           // forward: the output to write; backward dX: the gradient to add into
  const float* dy;    // backward: the output gradient (r x n)
  CView bias{nullptr, {}};  // forward: added to y (broadcast) when bias.p is set
};

// y_i = bias_i + W x_i (or W x_i without a bias) for every item, as one GEMM.
void forward(const float* W, int64_t r, int64_t c, const std::vector<Item>& items);
// dW (r x c) += sum_i dy_i x_i^T, as one GEMM over the concatenated columns.
void weight_grad(float* dW, int64_t r, int64_t c, const std::vector<Item>& items);
// dx_i += W^T dy_i for every item, as one GEMM.
void input_grad(const float* W, int64_t r, int64_t c, const std::vector<Item>& items);

// Counts of batched GEMMs run so far (forward, input gradients, weight gradients over 2+ products),
// so tests can tell that batching happened.
struct Stats {
  int64_t forward = 0, input_grad = 0, weight_grad = 0;
};
Stats& stats();

// The executor's autobatching strategy (the backend's autobatch setting: 0 off, 1 DyNet's agenda,
// 2 level by level; autobatch_core.h).
int strategy();
void set_strategy(int s);
inline bool enabled() { return strategy() > 0; }

}  // namespace ab
}  // namespace dy
