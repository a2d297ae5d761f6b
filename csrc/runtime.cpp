// Memory accounting (the --dynet-mem limit), buffers, the arena, the random
// generator, the thread setting and the trainer update rules.
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common.h"
#include "update_rules.h"

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

namespace {

enum class Rule { sgd, momentum, adagrad, adadelta, rmsprop, adam, amsgrad, eg };

Rule rule_code(const std::string& rule) {
  if (rule == "sgd") return Rule::sgd;
  if (rule == "momentum") return Rule::momentum;
  if (rule == "adagrad") return Rule::adagrad;
  if (rule == "adadelta") return Rule::adadelta;
  if (rule == "rmsprop") return Rule::rmsprop;
  if (rule == "adam") return Rule::adam;
  if (rule == "amsgrad") return Rule::amsgrad;
  if (rule == "eg") return Rule::eg;
  throw std::invalid_argument("cpu_eigen: unknown update rule '" + rule + "'");
}

// Exponentiated gradient over n contiguous elements (the vectorised rules are in update_rules).
void eg_step(float* w, const float* g0, float** s, int64_t n, double lr, double gscale, double mom, double wscale) {
  float c = float(lr * gscale), m = float(mom), ws = float(wscale);
  std::vector<float> lw(static_cast<size_t>(n));
  float mx = -INFINITY;
  for (int64_t k = 0; k < n; ++k) {
    s[0][k] = s[0][k] * m - c * g0[k];
    lw[size_t(k)] = std::log(std::max(w[k], 1e-30f)) + s[0][k] * ws;
    mx = std::max(mx, lw[size_t(k)]);
  }
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += (lw[size_t(k)] = std::exp(lw[size_t(k)] - mx));
  for (int64_t k = 0; k < n; ++k) w[k] = float(lw[size_t(k)] / sum);
}

}  // namespace

void apply_update(const std::string& rule_name, float* w, float* g, std::vector<float*>& states, int64_t n,
                  int64_t row_size, const std::vector<int64_t>* rows, double lr, double gscale, double mom,
                  double eps, double rho, double b1, double b2, bool clear, double wscale) {
  const Rule rule = rule_code(rule_name);
  size_t ns = states.size();
  if (rule == Rule::eg) {
    if (!rows) {
      eg_step(w, g, states.data(), n, lr, gscale, mom, wscale);
      if (clear) std::memset(g, 0, size_t(n) * sizeof(float));
      return;
    }
    // the simplex spans the chosen rows together: gather, step, scatter
    size_t m = rows->size() * size_t(row_size);
    std::vector<std::vector<float>> tmp(ns + 2, std::vector<float>(m));
    for (size_t j = 0; j < rows->size(); ++j) {
      size_t o = size_t((*rows)[j] * row_size), t = j * size_t(row_size);
      std::memcpy(&tmp[0][t], w + o, size_t(row_size) * sizeof(float));
      std::memcpy(&tmp[1][t], g + o, size_t(row_size) * sizeof(float));
      for (size_t q = 0; q < ns; ++q) std::memcpy(&tmp[2 + q][t], states[q] + o, size_t(row_size) * sizeof(float));
    }
    std::vector<float*> sp;
    for (size_t q = 0; q < ns; ++q) sp.push_back(tmp[2 + q].data());
    eg_step(tmp[0].data(), tmp[1].data(), sp.data(), int64_t(m), lr, gscale, mom, wscale);
    for (size_t j = 0; j < rows->size(); ++j) {
      size_t o = size_t((*rows)[j] * row_size), t = j * size_t(row_size);
      std::memcpy(w + o, &tmp[0][t], size_t(row_size) * sizeof(float));
      for (size_t q = 0; q < ns; ++q) std::memcpy(states[q] + o, &tmp[2 + q][t], size_t(row_size) * sizeof(float));
      if (clear) std::memset(g + o, 0, size_t(row_size) * sizeof(float));
    }
    return;
  }
  // One vectorised pass per parameter (or per touched row), the gradient cleared as it is read.
  const upd::StepFn step = upd::current().step;
  const upd::Hyper h{float(lr), float(gscale), float(lr * gscale), float(mom), float(eps), float(rho), float(b1), float(b2),
                     float(wscale)};
  const int code = int(rule);  // Rule and upd::Rule list the vectorised rules in the same order
  if (!rows) {
    step(code, w, g, states.data(), n, h, clear);
    return;
  }
  std::vector<float*> sp(ns);
  for (int64_t r : *rows) {
    int64_t o = r * row_size;
    for (size_t q = 0; q < ns; ++q) sp[q] = states[q] + o;
    step(code, w + o, g + o, sp.data(), row_size, h, clear);
  }
}
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
