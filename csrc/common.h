// Shared types of the cpu_eigen backend: shapes, tensor views, node attributes,
// memory accounting and the kernel signatures.  Tensors are float32, stored
// column-major with the batch last (DyNet's layout), so one batch element is a
// contiguous column-major block and a lookup-table row is contiguous too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace dy {

// DyNet's DYNET_MAX_TENSOR_DIM: up to 7 data dims (padded with 1s) plus the batch.
constexpr int MAXD = 7;
constexpr int BATCH = MAXD;  // the batch's slot in strides and extents (after the data dims)

struct Shape {
  int nd = 1;
  int64_t d[MAXD] = {1, 1, 1, 1, 1, 1, 1};
  int64_t bd = 1;
  int64_t size() const {
    int64_t n = d[0];
    for (int k = 1; k < MAXD; ++k) n *= d[k];
    return n;
  }
  int64_t total() const { return size() * bd; }
  int64_t rows() const { return d[0]; }
  int64_t cols() const { return d[1]; }
};

// Build a Shape from a NumPy-layout shape (data dims then batch).
Shape shape_from(const std::vector<int64_t>& s);

struct View {
  float* p;
  Shape s;
};

struct CView {
  const float* p;
  Shape s;
};

// A node's attributes, flattened in order: every number (int, bool or float) to
// both i and f, a tuple of ints to i as its length then its items, None to i as -1.
struct Attrs {
  const int64_t* i = nullptr;
  int ni = 0;
  const double* f = nullptr;
  int nf = 0;
  int64_t I(int k) const {
    if (k >= ni) throw std::runtime_error("cpu_eigen: missing integer attribute");
    return i[k];
  }
  double F(int k) const {
    if (k >= nf) throw std::runtime_error("cpu_eigen: missing float attribute");
    return f[k];
  }
};

// Raised when the --dynet-mem budget is exhausted; mapped to Python's MemoryError.
struct MemoryLimitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Process-wide accounting of every float buffer this backend owns.
void mem_reserve(size_t bytes);
void mem_release(size_t bytes) noexcept;
void set_mem_limit(size_t bytes);
size_t mem_limit();
size_t mem_used();

// A float buffer counted against the memory limit.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  float* data() { return p_; }
  const float* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

// Bump allocator made of blocks that never move, so pointers into it stay valid
// until reset; reused across graphs like DyNet's memory pools.  A graph that outgrows the
// blocks adds one at least as large as all of them together: the capacity doubles, so a few
// blocks serve graphs of varying sizes (the last one alone holds any graph seen), and no block
// is ever freed and faulted in again (merging them on reset re-faulted every page each time
// the arena grew: ~600 page faults per rnnlm-batch update over its first epoch).
class Arena {
 public:
  struct Mark {
    size_t block = 0, off = 0;
  };
  float* alloc(size_t n);
  Mark mark() const { return {cur_, off_}; }
  void rewind(Mark m) { cur_ = m.block, off_ = m.off; }
  void reset() { cur_ = 0, off_ = 0; }
  // give every block back (after a graph failed, e.g. at the --dynet-mem cap: its blocks may hold
  // most of the budget, which the next graph's other arenas then could not get)
  void release() { blocks_.clear(), cur_ = 0, off_ = 0; }
  // reset, and replace several blocks by one of their total size, so that the next graph's
  // tensors lie side by side (for a small arena: its new block is faulted in again).
  void reset_merged();
  size_t capacity() const;

 private:
  std::vector<Buffer> blocks_;
  size_t cur_ = 0, off_ = 0;
};

std::mt19937& rng();

// The AVX2+FMA matrix product (null until the optional module is loaded) and its thread setter.
using GemmFn = void (*)(int ta, int tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C);
using ThreadsFn = void (*)(int n);
void set_fast_gemm(GemmFn g, ThreadsFn t);
GemmFn fast_gemm();
void set_threads(int n);
int threads();

// forward: y = f(xs); backward: dx += d f / d xs[i] (accumulating).
using FwdFn = void (*)(const CView* xs, int n, View y, const Attrs& a);
using BwdFn = void (*)(const CView* xs, int n, CView y, CView dy, int i, View dx, const Attrs& a);

struct KernelDef {
  const char* name;
  FwdFn fwd;  // may be null for leaves handled by the executor (input, parameter, lookup)
  BwdFn bwd;  // null for leaves
  // Optional: dx = d f / d xs[i], writing every element of dx without reading it.  The executor
  // calls it for a gradient nothing has written yet, instead of zero-filling it and calling bwd.
  BwdFn bwd_set = nullptr;
};

// All kernels this backend implements; the index is the backend's op code.
const std::vector<KernelDef>& kernel_table();
int kernel_code(const std::string& name);  // -1 if absent

// Trainer update rules on raw buffers (dense when rows is null).  With clear, the gradient
// is zeroed over the stepped elements in the same pass (all of it when dense).  wscale
// multiplies the step of momentum, adadelta and eg (1 / the lazy weight-decay scale).
void apply_update(const std::string& rule, float* w, float* g, std::vector<float*>& states, int64_t n,
                  int64_t row_size, const std::vector<int64_t>* rows, double lr, double gscale, double mom,
                  double eps, double rho, double b1, double b2, bool clear = false, double wscale = 1.0);

}  // namespace dy
