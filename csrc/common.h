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

// An attribute of an op, by name: attr::<op>::<name> in op_attrs.h (generated from the op records)
// is its place in the node's attribute tuple, so kernels never count positions themselves.
struct AttrKey {
  int k;
  const char* name;  // "op.attribute", for error messages
};

// Where attribute k of a node landed when its tuple was flattened: its first entry in the integer
// list and in the float list, -1 where it wrote none (None, and objects the leaf code reads itself).
struct AttrSlot {
  int32_t i = -1, f = -1;
};

// A run of integers inside a node's flattened attributes (an int sequence attribute).
struct IntSpan {
  const int64_t* p = nullptr;
  int64_t n = 0;
  const int64_t* begin() const { return p; }
  const int64_t* end() const { return p + n; }
  int64_t size() const { return n; }
  int64_t operator[](int64_t k) const { return p[k]; }
};

// A node's attributes, flattened in order: a number (int, bool or float) to both i and f, a
// sequence to i as its length then its items (a nested sequence the same way), and per
// attribute its slot.  Kernels read them by name: a.num(attr::elu::alpha).
struct Attrs {
  const int64_t* i = nullptr;
  int ni = 0;
  const double* f = nullptr;
  int nf = 0;
  const AttrSlot* slot = nullptr;
  int ns = 0;
  bool none(AttrKey k) const { return k.k >= ns || (slot[k.k].i < 0 && slot[k.k].f < 0); }
  // a number (float, int or bool)
  double num(AttrKey k) const {
    if (k.k >= ns || slot[k.k].f < 0) missing(k, "a number");
    return f[slot[k.k].f];
  }
  // an int or a bool (a float truncated)
  int64_t integer(AttrKey k) const {
    if (k.k >= ns || slot[k.k].i < 0) missing(k, "an integer");
    return i[slot[k.k].i];
  }
  bool flag(AttrKey k) const { return integer(k) != 0; }
  // a sequence of ints
  IntSpan ints(AttrKey k) const {
    int64_t n = integer(k);
    if (n < 0 || slot[k.k].i + 1 + n > ni) missing(k, "a sequence of integers");
    return {i + slot[k.k].i + 1, n};
  }
  // a sequence of int sequences
  std::vector<std::vector<int64_t>> int_lists(AttrKey k) const {
    int64_t nl = integer(k), at = slot[k.k].i;
    std::vector<std::vector<int64_t>> r;
    for (int64_t l = 0; l < nl; ++l) {
      if (++at >= ni || i[at] < 0 || at + 1 + i[at] > ni) missing(k, "a sequence of integer sequences");
      r.emplace_back(i + at + 1, i + at + 1 + i[at]);
      at += i[at];
    }
    return r;
  }
  [[noreturn]] static void missing(AttrKey k, const char* what) {
    throw std::runtime_error(std::string("cpu_eigen: attribute ") + k.name + " (place " + std::to_string(k.k) +
                             " of the attribute tuple) is missing or not " + what);
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

// forward: y = f(xs); backward: dx += d f / d xs[i] (accumulating).  The views come by reference:
// an 80-byte View passed by value was copied twice per call through the stack, and the second
// copy stalled on the first (store forwarding), a third of the executor's own time per node.
using FwdFn = void (*)(const CView* xs, int n, const View& y, const Attrs& a);
using BwdFn = void (*)(const CView* xs, int n, const CView& y, const CView& dy, int i, const View& dx,
                     const Attrs& a);

// An elementwise op (every input the output's shape) over a batch whose inputs lie scattered, in
// runs: in run r, input q's n[r] floats are at x[r * na + q]; y, dy and dx hold the runs one after
// another.  The backward writes dx = d f / d x_i (set) or adds it into dx.
using RunsFwdFn = void (*)(const float* const* x, const int64_t* n, int runs, int na, float* y);
using RunsBwdFn = void (*)(const float* const* x, const int64_t* n, int runs, int na, const float* y,
                           const float* dy, int i, float* dx, bool set);

struct KernelDef {
  const char* name;
  FwdFn fwd;  // may be null for leaves handled by the executor (input, parameter, lookup)
  BwdFn bwd;  // null for leaves
  // Optional: dx = d f / d xs[i], writing every element of dx without reading it.  The executor
  // calls it for a gradient nothing has written yet, instead of zero-filling it and calling bwd.
  BwdFn bwd_set = nullptr;
  // Optional, both or neither, for an elementwise op: forward and backward over a batch whose
  // inputs are read where they lie, so an autobatched group needs no joined copy of its operands.
  RunsFwdFn fwd_runs = nullptr;
  RunsBwdFn bwd_runs = nullptr;
};

// Registers an op's kernels, written right after them: DY_REGISTER(conv2d, f_conv2d, b_conv2d).
// Every kernels_*.cpp file's registrations run when the module loads (kernel_table.cpp).
void register_kernels(const KernelDef& k);
struct KernelRegistration {
  explicit KernelRegistration(const KernelDef& k) { register_kernels(k); }
};
#define DY_REGISTER(NAME, ...) \
  const ::dy::KernelRegistration dy_registered_##NAME(::dy::KernelDef{#NAME, __VA_ARGS__})

// All kernels this backend implements, by name; the index is the backend's op code.
const std::vector<KernelDef>& kernel_table();
int kernel_code(const std::string& name);  // -1 if absent

}  // namespace dy
