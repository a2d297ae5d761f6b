// Memory accounting (the --dynet-mem limit), buffers, the arena, the random
// generator and the thread setting (the trainer update rules: update_rules.cpp).
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dy {

namespace {
std::atomic<size_t> g_used{0};
size_t g_limit = 0;  // 0: no limit
int g_threads = 1;
GemmFn g_fast_gemm = nullptr;
ThreadsFn g_fast_threads = nullptr;
constexpr size_t ALIGN = 64;
constexpr size_t BLOCK_FLOATS = size_t(1) << 18;  // 1 MiB arena blocks
}  // namespace

void mem_reserve(size_t bytes) {
  size_t now = g_used.fetch_add(bytes) + bytes;
  if (g_limit && now > g_limit) {
    g_used.fetch_sub(bytes);
    throw MemoryLimitError("cpu_eigen: out of memory: the memory limit (--dynet-mem / mem) of " +
                           std::to_string(g_limit >> 20) + " MB is exhausted (" + std::to_string((now - bytes) >> 20) +
                           " MB in use, " + std::to_string(bytes) + " bytes more requested)");
  }
}
void mem_release(size_t bytes) noexcept { g_used.fetch_sub(bytes); }
void set_mem_limit(size_t bytes) { g_limit = bytes; }
size_t mem_limit() { return g_limit; }
size_t mem_used() { return g_used.load(); }

Buffer::Buffer(size_t n) {
  if (n == 0) return;
  size_t bytes = ((n * sizeof(float) + ALIGN - 1) / ALIGN) * ALIGN;
  mem_reserve(bytes);
  p_ = static_cast<float*>(std::aligned_alloc(ALIGN, bytes));
  if (!p_) {
    mem_release(bytes);
    throw MemoryLimitError("cpu_eigen: out of memory: the system refused " + std::to_string(bytes) + " bytes");
  }
  n_ = n;
}
Buffer::~Buffer() {
  if (p_) {
    std::free(p_);
    mem_release(((n_ * sizeof(float) + ALIGN - 1) / ALIGN) * ALIGN);
  }
}

float* Arena::alloc(size_t n) {
  size_t need = ((n + 15) / 16) * 16;  // keep every tensor 64-byte aligned
  while (cur_ < blocks_.size()) {
    if (off_ + need <= blocks_[cur_].size()) {
      float* p = blocks_[cur_].data() + off_;
      off_ += need;
      return p;
    }
    ++cur_, off_ = 0;
  }
  try {
    blocks_.emplace_back(std::max({need, BLOCK_FLOATS, capacity()}));
  } catch (const MemoryLimitError&) {  // no room to double under the limit: a plain block, else just what is asked
    try {
      blocks_.emplace_back(std::max(need, BLOCK_FLOATS));
    } catch (const MemoryLimitError&) {
      blocks_.emplace_back(need);
    }
  }
  cur_ = blocks_.size() - 1;
  off_ = need;
  return blocks_[cur_].data();
}
void Arena::reset_merged() {
  reset();
  if (blocks_.size() < 2) return;
  size_t total = capacity();
  blocks_.clear();  // first, so the memory limit counts the old blocks and the new one apart
  blocks_.emplace_back(total);
}
size_t Arena::capacity() const {
  size_t s = 0;
  for (const auto& b : blocks_) s += b.size();
  return s;
}

std::mt19937& rng() {
  static std::mt19937 r(12345);
  return r;
}

void set_fast_gemm(GemmFn g, ThreadsFn t) {
  g_fast_gemm = g, g_fast_threads = t;
  if (t) t(g_threads);
}
GemmFn fast_gemm() { return g_fast_gemm; }

void set_threads(int n) {
  g_threads = std::max(1, n);
  Eigen::setNbThreads(g_threads);
  if (g_fast_threads) g_fast_threads(g_threads);
#ifdef _OPENMP
  omp_set_num_threads(g_threads);
#endif
}
int threads() { return g_threads; }

Shape shape_from(const std::vector<int64_t>& s) {
  Shape r;
  if (s.empty()) return r;
  if (s.size() == 1) {  // a bare vector: one batch element
    r.d[0] = s[0];
    return r;
  }
  if (s.size() > size_t(MAXD) + 1)
    throw std::invalid_argument("cpu_eigen: tensors have at most " + std::to_string(MAXD) +
                                " data dims plus the batch, got a shape of " + std::to_string(s.size()) + " axes");
  r.nd = int(s.size()) - 1;
  for (int k = 0; k < r.nd; ++k) r.d[k] = s[size_t(k)];
  r.bd = s.back();
  return r;
}

}  // namespace dy
