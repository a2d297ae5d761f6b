// The whole-graph executor (see executor.h): the graph's new nodes are read once through the
// contract (contract.h), values and gradients live in arenas, products that share a weight run
// as one GEMM (autobatch.h).
#include "executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "autobatch.h"
#include "common.h"
#include "contract.h"
#include "gemm_thin.h"
#include "kernel_util.h"
#include "op_attrs.h"
#include "tensor.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define DY_HAVE_MXCSR 1
#endif

namespace dy {

namespace {

namespace py = pybind11;
// Denormal floats (|x| < 1.2e-38, as gradients become deep in long chains) run ~100x slower on
// x86; while a graph runs, flush them to zero (FTZ/DAZ) as TensorFlow and DyNet builds do.
class FlushDenormals {
 public:
#ifdef DY_HAVE_MXCSR
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// The agendas' ready nodes: a bitset with moving bounds instead of a heap (pops are nearly
// monotonic, so a pop is a word scan and a count-trailing-zeros).
struct ReadySet {
  std::vector<uint64_t> w;
  int lo = 0, hi = -1;
  size_t n = 0;
  void init(size_t bits) { w.assign((bits + 63) / 64, 0), lo = int(w.size()), hi = -1, n = 0; }
  bool empty() const { return n == 0; }
  void push(int k) {
    w[size_t(k >> 6)] |= uint64_t(1) << (k & 63);
    lo = std::min(lo, k >> 6), hi = std::max(hi, k >> 6), ++n;
  }
  int pop_min() {
    while (!w[size_t(lo)]) ++lo;
    uint64_t& x = w[size_t(lo)];
    int b = __builtin_ctzll(x);
    x &= x - 1, --n;
    return lo * 64 + b;
  }
  int pop_max() {
    while (!w[size_t(hi)]) --hi;
    uint64_t& x = w[size_t(hi)];
    int b = 63 - __builtin_clzll(x);
    x &= ~(uint64_t(1) << b), --n;
    return hi * 64 + b;
  }
};

struct OpInfo {
  int code = -1;
  int leaf = 0;  // 1 input, 2 parameter, 3 lookup
  std::string name;
  std::vector<int> nograd;
};

// Kernel-call counters (dynet_api/profiling.py's rule, for every backend alike): per op code, forward
// nodes evaluated, kernel calls (a node run alone, a batched group, each input's backward, a
// batched dX or dW product, a leaf's gradient hand-over) and, with --dynet-profiling, seconds.
struct KernelCounts {
  std::vector<int64_t> nodes, calls;
  std::vector<double> seconds;
  bool timing = false;
  KernelCounts() { reset(); }
  void reset() {
    size_t n = kernel_table().size();
    nodes.assign(n, 0), calls.assign(n, 0), seconds.assign(n, 0.0);
  }
};
KernelCounts& counts() {
  static KernelCounts* c = new KernelCounts();  // never destroyed (may outlive the interpreter's teardown)
  return *c;
}
inline void count_call(int op, int64_t nodes = 0) {
  KernelCounts& c = counts();
  ++c.calls[size_t(op)], c.nodes[size_t(op)] += nodes;
}

// Adds the time of one kernel call to its op's seconds, only when profiling is on (a branch otherwise).
class CallTimer {
 public:
  explicit CallTimer(int op) : op_(op), on_(counts().timing) {
    if (on_) t0_ = std::chrono::steady_clock::now();
  }
  ~CallTimer() {
    if (on_) counts().seconds[size_t(op_)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  int op_;
  bool on_;
  std::chrono::steady_clock::time_point t0_;
};

// Runs a ComputationGraph's nodes inside C++: the graph's new nodes are read once
// (contract::GraphSource), values and gradients live in arenas.
class Executor {
 public:
  explicit Executor(py::object cg) : graph_(std::move(cg)) {
    matmul_ = kernel_code("matmul"), affine_ = kernel_code("affine_transform");
    lstm_gates_ = kernel_code("vanilla_lstm_gates"), lstm_gates_drop_ = kernel_code("vanilla_lstm_gates_dropout");
  }

  // Set when a forward or backward ended with an exception: the next reset gives the arenas' blocks back.
  struct FailureMark {
    bool& failed;
    int before = std::uncaught_exceptions();
    ~FailureMark() {
      if (std::uncaught_exceptions() > before) failed = true;
    }
  };

  void forward(int a, int b) {
    FailureMark fm{failed_};
    FlushDenormals ftz;
    if (b > int(nodes_.size())) marshal(b);
    bool check = graph_.check_validity();
    if (ab::enabled() && b - a > 2) {
      bool products = plan_groups(a, b);
      bool inputs = plan_lstm_inputs(a, b);
      if (products || inputs) {
        if (!products) gid_.assign(size_t(b - a), -1), groups_.clear();
        batched_forward(a, b, check);
        return;
      }
    }
    for (int j = a; j < b; ++j) {
      run_forward(j);
      if (check) check_finite(j);
    }
  }

  void backward(int i, bool full) {
    if (i < 0 || i >= int(nodes_.size())) throw py::index_error("cpu_eigen: backward from an unevaluated node");
    FailureMark fm{failed_};
    FlushDenormals ftz;
    grads_.reset(), dpre_.reset_merged();
    n_grad_ = 0;
    for (int j = 0; j <= i; ++j) {
      Node& n = nodes_[size_t(j)];
      n.g = nullptr, n.dwq = -1, n.fresh = false, n.pending = false;
    }
    dxq_.clear(), pending_leaves_.clear();
    alias_param_grads(i);
    n_grad_ = i + 1;
    dw_.clear();
    bool defer = ab::enabled();
    Node& top = nodes_[size_t(i)];
    std::fill_n(grad_of(top), top.s.total(), 1.0f);
    if (defer && i > 1 && plan_backward_groups(i, full))
      batched_backward(i, full);
    else
      for (int j = i; j >= 0; --j) backward_node(j, full, defer, -1);
    flush_lstm_inputs();
  }

  py::object value(int i) {
    if (i < 0 || i >= int(nodes_.size()) || !nodes_[size_t(i)].v)
      throw py::index_error("cpu_eigen: value of an unevaluated node " + std::to_string(i));
    return copy_out(nodes_[size_t(i)].v, nodes_[size_t(i)].s);
  }

  // The first value of node i as a float: a one-element result (a loss) without a tensor copy.
  double scalar(int i) {
    if (i < 0 || i >= int(nodes_.size()) || !nodes_[size_t(i)].v)
      throw py::index_error("cpu_eigen: value of an unevaluated node " + std::to_string(i));
    return double(nodes_[size_t(i)].v[0]);
  }

  py::object gradient(int i) {
    if (i < 0 || i >= n_grad_ || !nodes_[size_t(i)].g) return py::none();
    return copy_out(defined_grad(nodes_[size_t(i)]), nodes_[size_t(i)].s);
  }

  void reset() {
    nodes_.clear(), args_.clear(), ints_.clear(), flts_.clear(), slots_.clear(), refs_.clear(), held_.clear(), scaled_.clear();
    if (failed_) {
      vals_.release(), grads_.release(), dpre_.release();
      failed_ = false;
    }
    vals_.reset(), grads_.reset(), dpre_.reset_merged();
    has_floor_ = false;
    n_grad_ = 0;
  }

  void truncate(int n) {
    if (n < int(nodes_.size())) {
      // not below a batch's output block: earlier nodes may point into it
      Arena::Mark m = nodes_[size_t(n)].mark;
      if (has_floor_ && (floor_.block > m.block || (floor_.block == m.block && floor_.off > m.off))) m = floor_;
      vals_.rewind(m);
      nodes_.resize(size_t(n));
      refs_.resize(size_t(n));
      held_.resize(size_t(n));
      scaled_.resize(size_t(n));
    }
    grads_.reset(), dpre_.reset_merged();
    n_grad_ = 0;
  }

  void invalidate(int i) {
    if (i < 0 || i >= int(nodes_.size())) return;
    read_attrs(nodes_[size_t(i)], i, graph_.attrs(i).ptr());
  }

  size_t arena_floats() const { return vals_.capacity() + grads_.capacity() + dpre_.capacity(); }

 private:
  struct Node {
    int op;
    const OpInfo* info;
    int a0, na, i0, ni, f0, nf, s0, ns;  // inputs in args_, attributes in ints_, flts_, slots_
    Shape s;
    bool ng;
    float* v = nullptr;
    float* g = nullptr;
    Arena::Mark mark;
    int dwq = -1;  // backward: head of this node's deferred weight-gradient products in dw_
    float* alias = nullptr;  // backward: the parameter's own (all-zero) gradient, used as this node's
    bool fresh = false;      // backward: g is allocated but nothing has written it yet (not zeroed)
    bool pending = false;    // backward: a leaf whose gradient still waits for a deferred LSTM input product
  };
  struct DeferredGrad {  // dW += dy x^T, postponed until the sweep reaches W
    const float* dy;
    const float* x;
    int64_t n;
    int next;
    int op;  // the product's op (for the call counters)
  };
  struct Group {  // forward: products sharing one weight, waiting to run as one GEMM
    int w;
    std::vector<int> ready;
  };

  contract::GraphSource graph_;
  std::vector<Node> nodes_;
  std::vector<int> args_;
  std::vector<int64_t> ints_;
  std::vector<double> flts_;
  std::vector<AttrSlot> slots_;
  std::vector<py::object> refs_;  // per node: the input array or parameter storage it reads
  std::vector<py::object> held_;  // per node: the parameter tensor its value points into
  std::vector<std::vector<float>> scaled_;  // per node: a parameter's weights under a weight-decay factor
  bool failed_ = false;  // see FailureMark
  Arena vals_, grads_;
  Arena dpre_;  // backward: the LSTM gates' r, alone (and in one block) so that successive steps' lie side by side
  struct DeferredInput {  // an LSTM step's dx += W_x^T r, postponed to one GEMM per W_x
    const float* r;
    int x, w;
    int64_t n;
  };
  std::vector<DeferredInput> dxq_;
  std::vector<int> pending_leaves_;
  std::vector<Group> lstm_groups_;  // forward: gates nodes by W_x (Group::ready lists them)
  std::vector<float*> pre_;         // forward: node j's precomputed W_x x at pre_[j - pre_a_], or null
  int pre_a_ = 0;
  std::vector<float> pre_buf_;
  struct ClearOnExit {
    std::vector<float*>& v;
    ~ClearOnExit() { v.clear(); }
  };
  Arena::Mark floor_;       // end of the latest batch output block (truncate keeps it)
  bool has_floor_ = false;
  int n_grad_ = 0;
  std::unordered_map<PyObject*, OpInfo> ops_;
  std::vector<py::object> op_refs_;
  int matmul_ = -1, affine_ = -1, lstm_gates_ = -1, lstm_gates_drop_ = -1;
  std::vector<DeferredGrad> dw_;
  std::vector<PyObject*> aliased_;  // backward: storages whose first node's gradient is aliased
  std::vector<int> gid_, cnt_, cons_off_, cons_;  // forward plan over a node range
  std::vector<int> wgid_;                          // plan: weight node -> its group
  ReadySet ready_;                                 // agenda: ready nodes outside groups
  std::vector<Group> groups_;
  std::vector<ab::Item> items_;
  std::vector<CView> xin_ = std::vector<CView>(16);  // gather_inputs' buffer

  const OpInfo& op_info(PyObject* op) {
    auto it = ops_.find(op);
    if (it != ops_.end()) return it->second;
    contract::OpRecord r = contract::read_op(op);
    OpInfo oi;
    oi.name = std::move(r.name);
    oi.code = kernel_code(oi.name);
    oi.nograd = std::move(r.nograd);
    oi.leaf = oi.name == "input" ? 1 : oi.name == "parameter" ? 2 : oi.name == "lookup" ? 3 : 0;
    op_refs_.push_back(py::reinterpret_borrow<py::object>(op));
    return ops_.emplace(op, std::move(oi)).first->second;
  }

  Attrs attrs_of(const Node& n) const {
    return {ints_.data() + n.i0, n.ni, flts_.data() + n.f0, n.nf, slots_.data() + n.s0, n.ns};
  }

  void read_attrs(Node& n, int j, PyObject* attrs) {
    n.i0 = int(ints_.size()), n.f0 = int(flts_.size()), n.s0 = int(slots_.size());
    contract::decode_attrs(attrs, ints_, flts_, slots_);
    n.ni = int(ints_.size()) - n.i0, n.nf = int(flts_.size()) - n.f0, n.ns = int(slots_.size()) - n.s0;
    if (n.info->leaf && PyTuple_Check(attrs) && PyTuple_GET_SIZE(attrs) > 0)
      refs_[size_t(j)] = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(attrs, 0));
  }

  // Read nodes [nodes_.size(), b) from the graph.
  void marshal(int b) {
    try {
      graph_.read(int(nodes_.size()), b, [&](int j, const contract::NodeRecord& r) {
        Node n;
        n.info = &op_info(r.op);
        n.op = n.info->code;
        if (n.op < 0) throw std::runtime_error("cpu_eigen: op " + n.info->name + " is not supported by this backend");
        n.a0 = int(args_.size());
        n.na = r.n_inputs();
        for (int q = 0; q < n.na; ++q) args_.push_back(r.input(q));
        n.s = r.shape;
        n.ng = r.ng;
        n.mark = vals_.mark();
        refs_.emplace_back();
        held_.emplace_back();
        scaled_.emplace_back();
        read_attrs(n, j, r.attrs);
        if (n.info->leaf != 2) n.v = vals_.alloc(size_t(n.s.total()));
        nodes_.push_back(n);
      });
    } catch (...) {
      refs_.resize(nodes_.size());
      held_.resize(nodes_.size());
      scaled_.resize(nodes_.size());
      throw;
    }
  }

  void run_forward(int j) {
    Node& n = nodes_[size_t(j)];
    count_call(n.op, 1);
    CallTimer timer(n.op);
    switch (n.info->leaf) {
      case 1: {  // input: copy the host data in
        contract::read_input(refs_[size_t(j)].ptr(), n.v, n.s.total());
        return;
      }
      case 2: {  // parameter: read its storage in place (and keep that tensor alive while the node points at it)
        py::object keep = contract::storage::value(refs_[size_t(j)].ptr());
        Tensor& w = as_tensor(keep, "parameter");
        if (w.total() != n.s.total()) throw std::runtime_error("cpu_eigen: parameter storage does not match its dim");
        const float f = contract::storage::factor(refs_[size_t(j)].ptr());
        if (f == 1.0f) {
          n.v = w.data();
          held_[size_t(j)] = std::move(keep);
          return;
        }
        // under a weight-decay factor, the weights are a scaled copy (as DyNet's ParameterNode makes)
        std::vector<float>& c = scaled_[size_t(j)];
        c.resize(size_t(n.s.total()));
        for (int64_t k = 0; k < n.s.total(); ++k) c[size_t(k)] = w.data()[k] * f;
        n.v = c.data();
        return;
      }
      case 3: {  // lookup: gather rows
        py::object keep = contract::storage::value(refs_[size_t(j)].ptr());
        Tensor& w = as_tensor(keep, "lookup");
        IntSpan idx = attrs_of(n).ints(attr::lookup::indices);
        int64_t rs = n.s.size(), rows = n_rows(w);
        for (int64_t k = 0; k < idx.size(); ++k) {
          int64_t r = idx[k];
          if (r < 0 || r >= rows) throw py::index_error("cpu_eigen: lookup row " + std::to_string(r) + " out of range");
          std::memcpy(n.v + k * rs, w.data() + r * rs, size_t(rs) * sizeof(float));
        }
        const float f = contract::storage::factor(refs_[size_t(j)].ptr());
        if (f != 1.0f)  // the weights are the stored rows times the weight-decay factor
          for (int64_t k = 0; k < idx.size() * rs; ++k) n.v[k] *= f;
        return;
      }
      default:
        break;
    }
    const KernelDef& k = kernel_table()[size_t(n.op)];
    CView* xp = gather_inputs(n);
    if (n.op == lstm_gates_ && size_t(j - pre_a_) < pre_.size() && pre_[size_t(j - pre_a_)]) {
      ku::lstm_gates_pre(xp, n.na, {n.v, n.s}, pre_[size_t(j - pre_a_)]);
      return;
    }
    k.fwd(xp, n.na, {n.v, n.s}, attrs_of(n));
  }

  // The node's input views in one reused buffer (no per-call construction of a fixed array).
  CView* gather_inputs(const Node& n) {
    if (size_t(n.na) > xin_.size()) xin_.resize(size_t(n.na));
    CView* xp = xin_.data();
    const int* ids = args_.data() + n.a0;
    for (int q = 0; q < n.na; ++q) {
      const Node& m = nodes_[size_t(ids[q])];
      xp[q].p = m.v, xp[q].s = m.s;
    }
    return xp;
  }

  // The node's gradient, ready to add into (zero-filled on first use).
  float* grad_of(Node& m) {
    if (!m.g && m.alias) {
      m.g = m.alias;  // zero (has_grad was false): the node's gradient accumulates in place
    } else if (!m.g) {
      m.g = grads_.alloc(size_t(m.s.total()));
      std::fill_n(m.g, m.s.total(), 0.0f);
    } else if (m.fresh) {
      std::fill_n(m.g, m.s.total(), 0.0f);
    }
    m.fresh = false;
    return m.g;
  }

  // Whether nothing has written the node's gradient yet (allocating it, not zeroed, if it has
  // none): then a kernel that writes every element may write it instead of adding into zeros,
  // and saves a zero-fill pass and a read (the output layer's 10000 x 16 logits per LM step).
  bool grad_unwritten(Node& m) {
    if (!m.g && !m.alias) m.g = grads_.alloc(size_t(m.s.total())), m.fresh = true;
    return m.fresh;
  }

  // The node's gradient for reading: zero if nothing has written it.
  float* defined_grad(Node& m) {
    if (m.fresh) std::fill_n(m.g, m.s.total(), 0.0f), m.fresh = false;
    return m.g;
  }

  void leaf_backward(Node& n) {
    Attrs a = attrs_of(n);
    size_t j = size_t(&n - nodes_.data());
    const py::object& st = refs_[j];
    if (n.info->leaf == 2) {
      if (!a.flag(attr::parameter::update)) return;  // a constant parameter
      count_call(n.op);  // the gradient's hand-over to the storage (also when it was accumulated there in place)
      CallTimer timer(n.op);
      if (n.g != n.alias) {
        Tensor& g = contract::storage::grad(st.ptr());
        int64_t m = n.s.total();
        for (int64_t k = 0; k < m; ++k) g.data()[k] += n.g[k];
      }
      contract::storage::set_has_grad(st.ptr());
      return;
    }
    if (!a.flag(attr::lookup::update)) return;
    count_call(n.op);
    CallTimer timer(n.op);
    IntSpan idx = a.ints(attr::lookup::indices);
    Tensor& g = contract::storage::grad(st.ptr());
    int64_t rs = n.s.size();
    for (int64_t k = 0; k < idx.size(); ++k) {
      float* dst = g.data() + idx[k] * rs;
      for (int64_t q = 0; q < rs; ++q) dst[q] += n.g[k * rs + q];
    }
    if (idx.size()) contract::storage::touch(st.ptr(), idx.p, idx.size());
  }

  // A parameter read by the graph (once, updated) whose gradient is all zero (has_grad false, as
  // after every trainer update) takes that storage as its node gradient: no zero-fill of an
  // arena block and no add of it into the storage at the end (Tree-LSTM: ~190k floats a tree).
  // The node's gradient() then reads the storage, the same values until the next update.
  void alias_param_grads(int i) {
    aliased_.clear();
    for (int j = 0; j <= i; ++j) {
      Node& n = nodes_[size_t(j)];
      n.alias = nullptr;
      if (n.info->leaf != 2 || !attrs_of(n).flag(attr::parameter::update)) continue;
      PyObject* st = refs_[size_t(j)].ptr();
      if (std::find(aliased_.begin(), aliased_.end(), st) != aliased_.end()) continue;
      aliased_.push_back(st);  // a second node of the same parameter keeps its own block
      if (contract::storage::has_grad(st)) continue;
      Tensor& g = contract::storage::grad(st);
      if (g.total() == n.s.total()) n.alias = g.data();
    }
  }

  bool wants_grad(const Node& n, int q, bool full) const {
    const Node& m = nodes_[size_t(args_[size_t(n.a0 + q)])];
    if (!(m.ng || full)) return false;
    for (int ng : n.info->nograd)
      if (ng == q) return false;
    return true;
  }

  // One node's share of the reverse sweep: its inputs' gradients, except input `skip`
  // (whose gradient the caller computes in a batch), or only input `only` when set.
  void backward_node(int j, bool full, bool defer, int skip, int only = -1) {
    Node& n = nodes_[size_t(j)];
    if (n.dwq >= 0) flush_weight_grad(n);
    if (!n.g) return;
    defined_grad(n);
    const OpInfo& oi = *n.info;
    if (oi.leaf == 2 || oi.leaf == 3) {
      if (n.pending)
        pending_leaves_.push_back(j);
      else
        leaf_backward(n);
      return;
    }
    if (n.na == 0) return;
    const KernelDef& k = kernel_table()[size_t(n.op)];
    CView* xp = gather_inputs(n);
    if (n.op == lstm_gates_ || n.op == lstm_gates_drop_) {
      lstm_gates_backward(n, xp, full, defer);
      return;
    }
    Attrs at = attrs_of(n);
    for (int q = 0; q < n.na; ++q) {
      if (q == skip || (only >= 0 && q != only) || !wants_grad(n, q, full)) continue;
      if (defer && defer_weight_grad(n, q)) continue;
      Node& m = nodes_[size_t(args_[size_t(n.a0 + q)])];
      count_call(n.op);
      CallTimer timer(n.op);
      if (k.bwd_set && grad_unwritten(m)) {
        k.bwd_set(xp, n.na, {n.v, n.s}, {n.g, n.s}, q, {m.g, m.s}, at);
        m.fresh = false;
      } else {
        k.bwd(xp, n.na, {n.v, n.s}, {n.g, n.s}, q, {grad_of(m), m.s}, at);
      }
    }
  }

  // ---------------------------------------------------------------- autobatching
  // A product W x (matmul, or an affine_transform with one product and a column bias) whose
  // weight is one unbatched matrix and whose x has the output's batch: products of the same
  // W run as one GEMM over their concatenated columns.
  bool site_of(const Node& n, int& w, int& x, int& bias) const {
    if (n.op == matmul_ && n.na == 2)
      bias = -1, w = args_[size_t(n.a0)], x = args_[size_t(n.a0 + 1)];
    else if (n.op == affine_ && n.na == 3)
      bias = args_[size_t(n.a0)], w = args_[size_t(n.a0 + 1)], x = args_[size_t(n.a0 + 2)];
    else
      return false;
    const Shape &W = nodes_[size_t(w)].s, &X = nodes_[size_t(x)].s;
    if (W.nd > 2 || W.bd != 1 || W.total() == 0 || X.nd > 2 || X.bd != n.s.bd || X.d[0] != W.d[1] ||
        n.s.d[0] != W.d[0])
      return false;
    if (bias >= 0) {
      const Shape& B = nodes_[size_t(bias)].s;
      if (B.bd != 1 || B.total() != W.d[0]) return false;
    }
    return true;
  }

  // Group the range's products by weight (a parameter's storage, else the weight node);
  // false when no weight has two products here, so the plain in-order loop runs.
  bool plan_groups(int a, int b) {
    int sites = 0;
    for (int j = a; j < b; ++j) {
      int op = nodes_[size_t(j)].op;
      sites += op == matmul_ || op == affine_;
    }
    if (sites < 2) return false;
    gid_.assign(size_t(b - a), -1);
    groups_.clear();
    std::map<std::pair<int, uintptr_t>, int> keys;
    std::vector<int> count;
    wgid_.assign(size_t(b), -1);
    int w, x, bias;
    for (int j = a; j < b; ++j) {
      const Node& n = nodes_[size_t(j)];
      if ((n.op != matmul_ && n.op != affine_) || !site_of(n, w, x, bias)) continue;
      int& g = wgid_[size_t(w)];  // the map is asked once per weight node, not once per product
      if (g < 0) {
        std::pair<int, uintptr_t> key = nodes_[size_t(w)].info->leaf == 2
                                            ? std::make_pair(1, reinterpret_cast<uintptr_t>(refs_[size_t(w)].ptr()))
                                            : std::make_pair(0, uintptr_t(w));
        auto it = keys.emplace(key, int(groups_.size()));
        if (it.second) groups_.push_back({w, {}}), count.push_back(0);
        g = it.first->second;
      }
      gid_[size_t(j - a)] = g;
      ++count[size_t(g)];
    }
    bool any = false;
    for (int j = a; j < b; ++j) {
      int& g = gid_[size_t(j - a)];
      if (g >= 0 && count[size_t(g)] < 2) g = -1;
      any |= g >= 0;
    }
    return any;
  }

  // Evaluate [a, b) in a dependency order that lets products of one weight meet: every other
  // node runs as soon as its inputs are ready (lowest index first, so random draws keep their
  // order); only when none is left does the group whose earliest ready product comes first run,
  // all its ready products as one GEMM (DyNet's agenda-based autobatching, for products only).
  void batched_forward(int a, int b, bool check) {
    size_t nn = size_t(b - a);
    cnt_.assign(nn, 0);
    cons_off_.assign(nn + 1, 0);
    for (int j = a; j < b; ++j) {
      const Node& n = nodes_[size_t(j)];
      for (int q = 0; q < n.na; ++q) {
        int s = args_[size_t(n.a0 + q)];
        if (s >= a) ++cnt_[size_t(j - a)], ++cons_off_[size_t(s - a + 1)];
      }
    }
    for (size_t k = 0; k < nn; ++k) cons_off_[k + 1] += cons_off_[k];
    cons_.resize(size_t(cons_off_[nn]));
    std::vector<int> pos(cons_off_.begin(), cons_off_.end() - 1);
    for (int j = a; j < b; ++j) {
      const Node& n = nodes_[size_t(j)];
      for (int q = 0; q < n.na; ++q) {
        int s = args_[size_t(n.a0 + q)];
        if (s >= a) cons_[size_t(pos[size_t(s - a)]++)] = j;
      }
    }
    ReadySet& heap = ready_;
    heap.init(nn);
    auto make_ready = [&](int j) {
      int g = gid_[size_t(j - a)];
      if (g >= 0)
        groups_[size_t(g)].ready.push_back(j);
      else
        heap.push(j - a);
    };
    auto done = [&](int j) {
      if (check) check_finite(j);
      for (int k = cons_off_[size_t(j - a)]; k < cons_off_[size_t(j - a + 1)]; ++k)
        if (--cnt_[size_t(cons_[size_t(k)] - a)] == 0) make_ready(cons_[size_t(k)]);
    };
    // LSTM input products first (their inputs are leaves): the leaves run now, then one GEMM
    // per W_x; the steps' gates nodes find their columns in pre_.
    std::vector<char> early(nn, 0);
    ClearOnExit clear_pre{pre_};
    if (!lstm_groups_.empty()) run_lstm_inputs(a, early);
    for (int j = a; j < b; ++j)
      if (cnt_[size_t(j - a)] == 0 && !early[size_t(j - a)]) make_ready(j);
    size_t ran = 0;
    for (int j = a; j < b; ++j)
      if (early[size_t(j - a)]) done(j), ++ran;
    std::vector<int> batch;
    for (;;) {
      while (!heap.empty()) {
        int j = a + heap.pop_min();
        run_forward(j);
        done(j);
        ++ran;
      }
      int best = -1, first = b;
      for (size_t g = 0; g < groups_.size(); ++g)
        for (int m : groups_[g].ready)
          if (m < first) first = m, best = int(g);
      if (best < 0) break;
      batch.clear();
      batch.swap(groups_[size_t(best)].ready);
      run_group(batch);
      for (int m : batch) done(m);
      ran += batch.size();
    }
    if (ran != nn) throw std::runtime_error("cpu_eigen: autobatching left nodes unevaluated (a cycle?)");
  }

  // A fused LSTM gates node (no dropout) whose input x is a leaf (lookup or input: nothing to
  // wait for) with one column per batch element, and whose W_x is one unbatched matrix: the
  // builders' add_input steps.  Their W_x x run as one GEMM over all steps, forward and
  // backward, so each step multiplies only W_h (and that weight stays in cache).
  bool lstm_input_site(const Node& n) const {
    if (n.op != lstm_gates_ || n.na != 5) return false;
    const Node& X = nodes_[size_t(args_[size_t(n.a0)])];
    const Node& W = nodes_[size_t(args_[size_t(n.a0 + 2)])];
    return (X.info->leaf == 1 || X.info->leaf == 3) && W.info->leaf == 2 && W.s.nd == 2 && W.s.bd == 1 &&
           W.s.d[1] > 1 && X.s.bd == n.s.bd && X.s.total() == n.s.bd * W.s.d[1];
  }

  // Forward: the gates nodes in [a, b) grouped by W_x; true when some W_x has two or more.
  bool plan_lstm_inputs(int a, int b) {
    lstm_groups_.clear();
    if (lstm_gates_ < 0) return false;
    std::map<int, size_t> at;
    for (int j = a; j < b; ++j) {
      const Node& n = nodes_[size_t(j)];
      if (!lstm_input_site(n)) continue;
      auto it = at.emplace(args_[size_t(n.a0 + 2)], lstm_groups_.size());
      if (it.second) lstm_groups_.push_back({args_[size_t(n.a0 + 2)], {}});
      lstm_groups_[it.first->second].ready.push_back(j);
    }
    lstm_groups_.erase(std::remove_if(lstm_groups_.begin(), lstm_groups_.end(),
                                      [](const Group& g) { return g.ready.size() < 2; }),
                       lstm_groups_.end());
    return !lstm_groups_.empty();
  }

  void run_lstm_inputs(int a, std::vector<char>& early) {
    pre_a_ = a;
    pre_.assign(early.size(), nullptr);
    auto run_leaf = [&](int j) {
      if (j >= a && !early[size_t(j - a)]) run_forward(j), early[size_t(j - a)] = 1;
    };
    int64_t total = 0;
    for (const Group& g : lstm_groups_)
      for (int j : g.ready) total += nodes_[size_t(j)].s.total();
    if (int64_t(pre_buf_.size()) < total) pre_buf_.resize(size_t(total));
    float* out = pre_buf_.data();
    for (const Group& g : lstm_groups_) {
      run_leaf(g.w);
      items_.clear();
      for (int j : g.ready) {
        const Node& n = nodes_[size_t(j)];
        int x = args_[size_t(n.a0)];
        run_leaf(x);
        items_.push_back({nodes_[size_t(x)].v, n.s.bd, out, {}});
        pre_[size_t(j - a)] = out;
        out += n.s.total();
      }
      count_call(lstm_gates_);  // the steps' W_x x as one call (each step's own call follows)
      CallTimer timer(lstm_gates_);
      const Node& W = nodes_[size_t(g.w)];
      ab::forward(W.v, W.s.d[0], W.s.d[1], items_);
    }
  }

  // Backward: the deferred W_x^T r of the LSTM steps, one GEMM per W_x, then the leaves that
  // waited for them.
  void flush_lstm_inputs() {
    if (dxq_.empty()) return;
    std::map<int, std::vector<ab::Item>> by_w;
    for (const DeferredInput& d : dxq_) by_w[d.w].push_back({nullptr, d.n, grad_of(nodes_[size_t(d.x)]), d.r});
    dxq_.clear();
    for (auto& [w, its] : by_w) {
      count_call(lstm_gates_);
      CallTimer timer(lstm_gates_);
      const Node& W = nodes_[size_t(w)];
      ab::input_grad(W.v, W.s.d[0], W.s.d[1], its);
    }
    for (int j : pending_leaves_) {
      nodes_[size_t(j)].pending = false;
      leaf_backward(nodes_[size_t(j)]);
    }
    pending_leaves_.clear();
  }

  // A batched call over the nodes `members` (products of one weight: matmul and affine_transform
  // may share it): one call per op among them, and with `forward` one node each.
  void count_batched(const std::vector<int>& members, bool forward) {
    int first = nodes_[size_t(members[0])].op, other = -1;
    for (int m : members) {
      int op = nodes_[size_t(m)].op;
      if (forward) ++counts().nodes[size_t(op)];
      if (op != first) other = op;
    }
    count_call(first);
    if (other >= 0) count_call(other);
  }

  // Products of one weight whose inputs are ready: one GEMM W [x_1 ... x_n].
  // Eigen's GEMM packs its weight on every call: for a weight past 4096 values that costs
  // about one GEMV, so without the thin-product kernels (which read the weight in place)
  // fewer than 4 products run one by one (Tree-LSTM levels: forward 0.44 -> 0.39 ms).
  bool worth_batching(const std::vector<int>& batch) const {
    if (batch.size() < 2) return false;
    if (batch.size() >= 4 || thin::active()) return true;
    int w, x, bias;
    site_of(nodes_[size_t(batch[0])], w, x, bias);
    return nodes_[size_t(w)].s.total() <= 4096;
  }

  void run_group(const std::vector<int>& batch) {
    if (!worth_batching(batch)) {
      for (int m : batch) run_forward(m);
      return;
    }
    int w, x, bias;
    items_.clear();
    int64_t total = 0;
    for (int m : batch) total += nodes_[size_t(m)].s.total();
    float* block = vals_.alloc(size_t(total));  // outputs side by side: the GEMM writes in place
    floor_ = vals_.mark(), has_floor_ = true;
    for (int m : batch) {
      Node& n = nodes_[size_t(m)];
      n.v = block, block += n.s.total();
      site_of(n, w, x, bias);
      const Node& X = nodes_[size_t(x)];
      ab::Item it{X.v, X.s.total() / X.s.d[0], n.v, nullptr};
      if (bias >= 0) it.bias = {nodes_[size_t(bias)].v, nodes_[size_t(bias)].s};
      items_.push_back(it);
    }
    count_batched(batch, true);
    CallTimer timer(nodes_[size_t(batch[0])].op);
    const Node& W = nodes_[size_t(w)];
    ab::forward(W.v, W.s.d[0], W.s.d[1], items_);
  }

  // Backward: postpone dW += dy x^T of a product whose weight is one unbatched matrix, so
  // that all products of W add their parts with one GEMM when the sweep reaches W.
  bool defer_weight_grad(Node& n, int q) {
    if (!((n.op == matmul_ && n.na == 2 && q == 0) || (n.op == affine_ && q % 2 == 1 && q + 1 < n.na)))
      return false;
    Node& W = nodes_[size_t(args_[size_t(n.a0 + q)])];
    const Node& X = nodes_[size_t(args_[size_t(n.a0 + q + 1)])];
    if (W.s.nd > 2 || W.s.bd != 1 || W.s.total() == 0 || X.s.nd > 2 || X.s.bd != n.s.bd) return false;
    grad_of(W);
    dw_.push_back({n.g, X.v, X.s.total() / W.s.d[1], W.dwq, n.op});
    W.dwq = int(dw_.size()) - 1;
    return true;
  }

  // The fused LSTM gates: r = d(pre-activations) once for all inputs (in an arena of its own, so it
  // outlives the node, and one layer's steps' r lie side by side); with deferral on, dW += r in^T
  // of a matrix W_x or W_h (no dropout, its input batched as the step) joins that weight's one
  // GEMM when the sweep reaches it, which then reads the r in place instead of gathering them.
  void lstm_gates_backward(Node& n, const CView* xp, bool full, bool defer) {
    int64_t nb = n.s.bd, G = n.s.d[0];
    float* r = dpre_.alloc(size_t(G * nb));
    ku::lstm_gates_dpre({n.v, n.s}, {n.g, n.s}, r);
    bool drop = n.op == lstm_gates_drop_;
    for (int q = 0; q < n.na; ++q) {
      if (!wants_grad(n, q, full)) continue;
      Node& m = nodes_[size_t(args_[size_t(n.a0 + q)])];
      if (defer && !drop && q == 0 && lstm_input_site(n)) {  // W_x^T r: with the other steps', at the end
        dxq_.push_back({r, args_[size_t(n.a0)], args_[size_t(n.a0 + 2)], nb});
        grad_of(m);  // so the sweep reaches the leaf (and parks it until the flush)
        m.pending = true;
        continue;
      }
      if (defer && !drop && (q == 2 || q == 3)) {
        const Node& X = nodes_[size_t(args_[size_t(n.a0 + q - 2)])];
        if (m.s.nd == 2 && m.s.bd == 1 && m.s.d[1] > 1 && X.s.bd == nb && X.s.total() == nb * m.s.d[1]) {
          grad_of(m);
          dw_.push_back({r, X.v, nb, m.dwq, n.op});
          m.dwq = int(dw_.size()) - 1;
          continue;
        }
      }
      count_call(n.op);
      CallTimer timer(n.op);
      ku::lstm_gates_grad(xp, n.na, n.s, r, q, {grad_of(m), m.s});
    }
  }

  void flush_weight_grad(Node& W) {
    items_.clear();
    int first = dw_[size_t(W.dwq)].op, other = -1;
    for (int e = W.dwq; e >= 0; e = dw_[size_t(e)].next) {
      const DeferredGrad& d = dw_[size_t(e)];
      if (d.op != first) other = d.op;
      items_.push_back({d.x, d.n, nullptr, d.dy});
    }
    W.dwq = -1;
    count_call(first);  // one dW product for all the weight's deferred parts
    if (other >= 0) count_call(other);
    CallTimer timer(first);
    ab::weight_grad(W.g, W.s.d[0], W.s.d[1], items_);
  }

  // Backward groups: products of one weight whose x needs a gradient (dx = W^T dy batches).
  bool plan_backward_groups(int i, bool full) {
    if (!plan_groups(0, i + 1)) return false;
    int w, x, bias;
    bool any = false;
    for (int j = 0; j <= i; ++j) {
      int& g = gid_[size_t(j)];
      if (g < 0) continue;
      const Node& n = nodes_[size_t(j)];
      site_of(n, w, x, bias);
      if (!wants_grad(n, bias >= 0 ? 2 : 1, full)) g = -1;
      any |= g >= 0;
    }
    return any;
  }

  // The reverse sweep as an agenda: a node runs once every consumer has added its part to
  // its gradient, other nodes first (highest index first, as the plain sweep); when only
  // products of shared weights are left, the group holding the latest one runs all its ready
  // products' input gradients as one GEMM W^T [dy_1 ... dy_n].
  void batched_backward(int i, bool full) {
    size_t nn = size_t(i + 1);
    cnt_.assign(nn, 0);
    std::vector<char> reach(nn, 0);
    reach[nn - 1] = 1;
    for (int j = i; j >= 0; --j) {
      const Node& n = nodes_[size_t(j)];
      if (!reach[size_t(j)] || n.info->leaf) continue;
      for (int q = 0; q < n.na; ++q)
        if (wants_grad(n, q, full)) {
          int s = args_[size_t(n.a0 + q)];
          reach[size_t(s)] = 1, ++cnt_[size_t(s)];
        }
    }
    group_grad_blocks(reach);
    for (Group& g : groups_) g.ready.clear();
    ReadySet& heap = ready_;
    heap.init(nn);
    auto make_ready = [&](int j) {
      int g = gid_[size_t(j)];
      if (g < 0) {
        heap.push(j);
        return;
      }
      // The product's gradient is complete: its bias's and (deferred) weight's parts now, while
      // its dy is still in cache (rnnlm-batch: 10000 x 16 per step, read again only after the
      // whole sweep otherwise); its input's, W^T dy, with the group's.
      backward_node(j, full, true, batched_input(j));
      groups_[size_t(g)].ready.push_back(j);
    };
    auto done = [&](int j) {
      const Node& n = nodes_[size_t(j)];
      if (n.info->leaf) return;
      for (int q = 0; q < n.na; ++q)
        if (wants_grad(n, q, full)) {
          int s = args_[size_t(n.a0 + q)];
          if (--cnt_[size_t(s)] == 0) make_ready(s);
        }
    };
    make_ready(i);
    std::vector<int> batch;
    for (;;) {
      while (!heap.empty()) {
        int j = heap.pop_max();
        backward_node(j, full, true, -1);
        done(j);
      }
      int best = -1, last = -1;
      for (size_t g = 0; g < groups_.size(); ++g)
        for (int m : groups_[g].ready)
          if (m > last) last = m, best = int(g);
      if (best < 0) break;
      batch.clear();
      batch.swap(groups_[size_t(best)].ready);
      run_group_backward(batch, full);
      for (int m : batch) done(m);
    }
  }

  // The reached products of each group get their gradients as one block in node order, so the
  // batched dx and the deferred dW GEMMs read dy in place, without a gather.  The block is not
  // zero-filled: each part is zeroed by its first adder or written whole by its first writer.
  void group_grad_blocks(const std::vector<char>& reach) {
    std::vector<int64_t> size(groups_.size(), 0);
    std::vector<int> members(groups_.size(), 0);
    for (size_t j = 0; j < reach.size(); ++j) {
      int g = gid_[j];
      if (g >= 0 && reach[j] && !nodes_[j].g) size[size_t(g)] += nodes_[j].s.total(), ++members[size_t(g)];
    }
    std::vector<float*> at(groups_.size(), nullptr);
    for (size_t g = 0; g < groups_.size(); ++g)
      if (members[g] >= 2) at[g] = grads_.alloc(size_t(size[g]));
    for (size_t j = 0; j < reach.size(); ++j) {
      int g = gid_[j];
      if (g < 0 || !at[size_t(g)] || !reach[j] || nodes_[j].g) continue;
      nodes_[j].g = at[size_t(g)], nodes_[j].fresh = true, at[size_t(g)] += nodes_[j].s.total();
    }
  }

  // The argument index of a product's x (after the bias and W of an affine_transform).
  int batched_input(int j) const {
    int w, x, bias;
    site_of(nodes_[size_t(j)], w, x, bias);
    return bias >= 0 ? 2 : 1;
  }

  // The group's input gradients (make_ready ran the members' other parts).
  void run_group_backward(const std::vector<int>& batch, bool full) {
    if (!worth_batching(batch)) {
      for (int m : batch) backward_node(m, full, true, -1, batched_input(m));
      return;
    }
    int w, x, bias;
    items_.clear();
    for (int m : batch) {
      site_of(nodes_[size_t(m)], w, x, bias);
      Node& X = nodes_[size_t(x)];
      items_.push_back({nullptr, X.s.total() / X.s.d[0], grad_of(X), nodes_[size_t(m)].g});
    }
    count_batched(batch, false);
    CallTimer timer(nodes_[size_t(batch[0])].op);
    const Node& W = nodes_[size_t(w)];
    ab::input_grad(W.v, W.s.d[0], W.s.d[1], items_);
  }

  void check_finite(int j) {
    const Node& n = nodes_[size_t(j)];
    for (int64_t k = 0; k < n.s.total(); ++k)
      if (!std::isfinite(n.v[k]))
        throw std::runtime_error("check_validity: " + n.info->name + " (node " + std::to_string(j) +
                                 ") produced NaN or Inf");
  }

  static py::object copy_out(const float* p, const Shape& s) {
    std::vector<int64_t> sh(s.d, s.d + s.nd);
    sh.push_back(s.bd);
    auto t = std::make_unique<Tensor>(sh);
    std::memcpy(t->data(), p, size_t(t->total()) * sizeof(float));
    return py::cast(std::move(t));
  }
};

}  // namespace


void bind_executor(py::module_& m) {
  m.def("kernel_counts", [] {  // {op name: (nodes, calls, seconds)} of the ops with activity
    const KernelCounts& c = counts();
    const auto& t = kernel_table();
    py::dict d;
    for (size_t k = 0; k < t.size(); ++k)
      if (c.nodes[k] || c.calls[k]) d[py::str(t[k].name)] = py::make_tuple(c.nodes[k], c.calls[k], c.seconds[k]);
    return d;
  });
  m.def("reset_kernel_counts", [] { counts().reset(); });
  m.def("set_profiling", [](bool on) { counts().timing = on; });
  py::class_<Executor>(m, "Executor", py::dynamic_attr())
      .def(py::init<py::object>())
      .def("forward", &Executor::forward)
      .def("backward", &Executor::backward)
      .def("value", &Executor::value)
      .def("scalar", &Executor::scalar)
      .def("gradient", &Executor::gradient)
      .def("reset", &Executor::reset)
      .def("truncate", &Executor::truncate)
      .def("invalidate", &Executor::invalidate)
      .def("arena_floats", &Executor::arena_floats);
}

}  // namespace dy
