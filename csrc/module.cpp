// Python bindings of the cpu_eigen backend: the Tensor type, storage methods,
// single-op kernels (for the node-by-node executor and the conformance suite)
// and the whole-graph Executor.
#include <exception>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <tuple>
#include <unordered_map>

#include "autobatch.h"
#include "common.h"
#include "gemm_blas.h"
#include "gemm_thin.h"
#include "update_rules.h"
#include "rowops.h"
#include "kernel_util.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define DY_HAVE_MXCSR 1
#endif

namespace py = pybind11;
using namespace dy;

namespace {

int64_t prod(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t v : s) {
    if (v < 0) throw std::invalid_argument("cpu_eigen: negative dimension");
    n *= v;
  }
  return n;
}

// A backend tensor: float32, column-major with the batch last, shaped as NumPy sees it.
struct Tensor {
  std::vector<int64_t> shape;
  Buffer buf;
  Shape s;
  explicit Tensor(std::vector<int64_t> sh) : shape(std::move(sh)), buf(size_t(prod(shape))), s(shape_from(shape)) {}
  float* data() { return buf.data(); }
  int64_t total() const { return int64_t(buf.size()); }
  View view() { return {buf.data(), s}; }
  CView cview() const { return {buf.data(), s}; }
};

std::vector<int64_t> shape_of(const py::handle& t) {
  std::vector<int64_t> r;
  for (auto v : py::reinterpret_borrow<py::tuple>(t)) r.push_back(v.cast<int64_t>());
  return r;
}

using FArray = py::array_t<float, py::array::f_style | py::array::forcecast>;

std::unique_ptr<Tensor> from_numpy(py::handle a) {
  FArray arr = FArray::ensure(a);
  if (!arr) throw py::type_error("cpu_eigen.from_numpy: expected an array of numbers");
  std::vector<int64_t> sh(arr.shape(), arr.shape() + arr.ndim());
  auto t = std::make_unique<Tensor>(sh);
  if (t->total()) std::memcpy(t->data(), arr.data(), size_t(t->total()) * sizeof(float));
  return t;
}

py::array to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> sh(t.shape.begin(), t.shape.end());
  py::array_t<float, py::array::f_style> out(sh);
  if (t.total()) std::memcpy(out.mutable_data(), t.buf.data(), size_t(t.total()) * sizeof(float));
  return std::move(out);
}

Tensor& as_tensor(py::handle h, const char* what) {
  try {
    return h.cast<Tensor&>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string("cpu_eigen.") + what + ": expected a cpu_eigen Tensor, got " +
                         std::string(py::str(py::type::handle_of(h).attr("__name__"))));
  }
}

void same_size(const Tensor& a, const Tensor& b, const char* what) {
  if (a.total() != b.total())
    throw py::value_error(std::string("cpu_eigen.") + what + ": tensors of " + std::to_string(a.total()) + " and " +
                          std::to_string(b.total()) + " values");
}

// Rows (batch elements) of a table, bounds-checked.
std::vector<int64_t> row_list(py::handle rows, int64_t n, const char* what) {
  std::vector<int64_t> r;
  for (auto v : py::reinterpret_borrow<py::iterable>(rows)) {
    int64_t k = py::reinterpret_borrow<py::object>(v).cast<int64_t>();
    if (k < 0 || k >= n)
      throw py::index_error(std::string("cpu_eigen.") + what + ": row " + std::to_string(k) + " out of range for " +
                            std::to_string(n) + " rows");
    r.push_back(k);
  }
  return r;
}

int64_t row_size(const Tensor& t) { return t.shape.size() > 1 ? t.total() / t.shape.back() : 1; }
int64_t n_rows(const Tensor& t) { return t.shape.size() > 1 ? t.shape.back() : t.total(); }

// A sequence attribute: its length, then each item (an int, or a nested sequence the same way).
void decode_seq(PyObject* v, std::vector<int64_t>& I) {
  PyObject* seq = PySequence_Fast(v, "attribute");
  if (!seq) throw py::error_already_set();
  Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
  I.push_back(m);
  for (Py_ssize_t j = 0; j < m; ++j) {
    PyObject* it = PySequence_Fast_GET_ITEM(seq, j);
    if (PyTuple_Check(it) || PyList_Check(it)) {
      try {
        decode_seq(it, I);
      } catch (...) {
        Py_DECREF(seq);
        throw;
      }
      continue;
    }
    long long x = PyLong_AsLongLong(it);
    if (x == -1 && PyErr_Occurred()) {
      Py_DECREF(seq);
      throw py::error_already_set();
    }
    I.push_back(x);
  }
  Py_DECREF(seq);
}

// Flatten a node's attribute tuple (see Attrs in common.h).
void decode_attrs(PyObject* attrs, std::vector<int64_t>& I, std::vector<double>& F) {
  if (attrs == Py_None || !PyTuple_Check(attrs)) return;
  Py_ssize_t n = PyTuple_GET_SIZE(attrs);
  for (Py_ssize_t k = 0; k < n; ++k) {
    PyObject* v = PyTuple_GET_ITEM(attrs, k);
    if (v == Py_None) {
      I.push_back(-1);
    } else if (PyFloat_Check(v)) {  // a number goes to both lists, so an int where a float is meant still works
      double x = PyFloat_AS_DOUBLE(v);
      F.push_back(x);
      I.push_back(std::isfinite(x) && std::fabs(x) < 9e18 ? int64_t(x) : 0);
    } else if (PyLong_Check(v)) {
      long long x = PyLong_AsLongLong(v);
      if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
      I.push_back(x);
      F.push_back(double(x));
    } else if (PyTuple_Check(v) || PyList_Check(v)) {
      decode_seq(v, I);
    }
    // Dims, arrays, strings and parameter storages are read by the leaf code or not at all.
  }
}

Shape shape_from_tuple(PyObject* t) {
  Py_ssize_t n = PyTuple_GET_SIZE(t);
  std::vector<int64_t> s(static_cast<size_t>(n));
  for (Py_ssize_t k = 0; k < n; ++k) s[size_t(k)] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, k));
  return shape_from(s);
}

const KernelDef& kdef(int code) {
  const auto& t = kernel_table();
  if (code < 0 || size_t(code) >= t.size()) throw std::invalid_argument("cpu_eigen: bad op code");
  return t[size_t(code)];
}

// The op table's shape rule, run before a single-op kernel: the kernels trust their operands'
// dims (the graph has checked its nodes), so a direct call with inconsistent ones must raise
// here rather than read out of bounds.  Installed by backend.py; never destroyed (it may
// outlive the interpreter's teardown).
py::object& shape_check() {
  static py::object* f = new py::object();
  return *f;
}

void check_call(const KernelDef& k, const py::sequence& xs, const py::object& attrs, const py::object& shape) {
  if (!shape_check()) throw std::runtime_error("cpu_eigen: single-op kernels need the shape check that "
                                               "dynet_backends.cpu_eigen.backend installs; import it first");
  shape_check()(k.name, xs, attrs, shape);
}

// Single-op kernels for the node-by-node path.
std::unique_ptr<Tensor> fwd_op(int code, py::sequence xs, py::object attrs, py::tuple shape) {
  const KernelDef& k = kdef(code);
  if (!k.fwd) throw std::invalid_argument(std::string("cpu_eigen: ") + k.name + " has no standalone forward kernel");
  check_call(k, xs, attrs, shape);
  std::vector<int64_t> I;
  std::vector<double> F;
  decode_attrs(attrs.ptr(), I, F);
  std::vector<CView> v;
  for (auto x : xs) v.push_back(as_tensor(x, k.name).cview());
  auto y = std::make_unique<Tensor>(shape_of(shape));
  Attrs a{I.data(), int(I.size()), F.data(), int(F.size())};
  k.fwd(v.data(), int(v.size()), y->view(), a);
  return y;
}

std::unique_ptr<Tensor> bwd_op(int code, py::sequence xs, Tensor& y, Tensor& dy, py::object attrs, int i) {
  const KernelDef& k = kdef(code);
  if (!k.bwd) throw std::invalid_argument(std::string("cpu_eigen: ") + k.name + " has no backward kernel");
  if (y.shape != dy.shape) throw std::invalid_argument(std::string("cpu_eigen: ") + k.name + ": y and dy differ in shape");
  check_call(k, xs, attrs, py::tuple(py::cast(y.shape)));
  std::vector<int64_t> I;
  std::vector<double> F;
  decode_attrs(attrs.ptr(), I, F);
  std::vector<CView> v;
  for (auto x : xs) v.push_back(as_tensor(x, k.name).cview());
  if (i < 0 || size_t(i) >= v.size()) throw py::index_error("cpu_eigen: input index out of range");
  auto dx = std::make_unique<Tensor>(as_tensor(xs[size_t(i)], k.name).shape);
  std::fill(dx->data(), dx->data() + dx->total(), 0.0f);
  Attrs a{I.data(), int(I.size()), F.data(), int(F.size())};
  k.bwd(v.data(), int(v.size()), y.cview(), dy.cview(), i, dx->view(), a);
  return dx;
}

// ======================================================================== executor

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

PyObject* intern(const char* s) {
  PyObject* o = PyUnicode_InternFromString(s);
  if (!o) throw py::error_already_set();
  return o;
}

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

// Runs a ComputationGraph's nodes inside C++: the graph's new nodes are read
// straight from its Python lists once, values and gradients live in arenas.
class Executor {
 public:
  explicit Executor(py::object cg) : cg_(std::move(cg)) {
    s_nodes_ = intern("nodes"), s_dims_ = intern("dims"), s_ng_ = intern("ng"), s_shape_ = intern("shape");
    s_value_ = intern("value"), s_grad_ = intern("grad"), s_has_grad_ = intern("has_grad");
    s_touched_ = intern("touched"), s_check_ = intern("check_validity");
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
    bool check = PyObject_IsTrue(py::reinterpret_steal<py::object>(PyObject_GetAttr(cg_.ptr(), s_check_)).ptr()) == 1;
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

  py::object gradient(int i) {
    if (i < 0 || i >= n_grad_ || !nodes_[size_t(i)].g) return py::none();
    return copy_out(defined_grad(nodes_[size_t(i)]), nodes_[size_t(i)].s);
  }

  void reset() {
    nodes_.clear(), args_.clear(), ints_.clear(), flts_.clear(), refs_.clear(), held_.clear();
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
    }
    grads_.reset(), dpre_.reset_merged();
    n_grad_ = 0;
  }

  void invalidate(int i) {
    if (i < 0 || i >= int(nodes_.size())) return;
    PyObject* nodes = get_list(s_nodes_);
    PyObject* t = PyList_GET_ITEM(nodes, i);
    Node& n = nodes_[size_t(i)];
    read_attrs(n, i, PyTuple_GET_ITEM(t, 2));
    Py_DECREF(nodes);
  }

  size_t arena_floats() const { return vals_.capacity() + grads_.capacity() + dpre_.capacity(); }

 private:
  struct Node {
    int op;
    const OpInfo* info;
    int a0, na, i0, ni, f0, nf;
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
  };
  struct Group {  // forward: products sharing one weight, waiting to run as one GEMM
    int w;
    std::vector<int> ready;
  };

  py::object cg_;
  PyObject *s_nodes_, *s_dims_, *s_ng_, *s_shape_, *s_value_, *s_grad_, *s_has_grad_, *s_touched_, *s_check_;
  std::vector<Node> nodes_;
  std::vector<int> args_;
  std::vector<int64_t> ints_;
  std::vector<double> flts_;
  std::vector<py::object> refs_;  // per node: the input array or parameter storage it reads
  std::vector<py::object> held_;  // per node: the parameter tensor its value points into
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

  PyObject* get_list(PyObject* name) {
    PyObject* l = PyObject_GetAttr(cg_.ptr(), name);
    if (!l) throw py::error_already_set();
    if (!PyList_Check(l)) {
      Py_DECREF(l);
      throw std::runtime_error("cpu_eigen: the graph's node lists are not lists");
    }
    return l;
  }

  const OpInfo& op_info(PyObject* op) {
    auto it = ops_.find(op);
    if (it != ops_.end()) return it->second;
    py::handle h(op);
    OpInfo oi;
    oi.name = h.attr("name").cast<std::string>();
    oi.code = kernel_code(oi.name);
    for (auto v : h.attr("nograd")) oi.nograd.push_back(v.cast<int>());
    oi.leaf = oi.name == "input" ? 1 : oi.name == "parameter" ? 2 : oi.name == "lookup" ? 3 : 0;
    op_refs_.push_back(py::reinterpret_borrow<py::object>(op));
    return ops_.emplace(op, std::move(oi)).first->second;
  }

  Attrs attrs_of(const Node& n) const {
    return {ints_.data() + n.i0, n.ni, flts_.data() + n.f0, n.nf};
  }

  void read_attrs(Node& n, int j, PyObject* attrs) {
    n.i0 = int(ints_.size()), n.f0 = int(flts_.size());
    decode_attrs(attrs, ints_, flts_);
    n.ni = int(ints_.size()) - n.i0, n.nf = int(flts_.size()) - n.f0;
    if (n.info->leaf && PyTuple_Check(attrs) && PyTuple_GET_SIZE(attrs) > 0)
      refs_[size_t(j)] = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(attrs, 0));
  }

  // Read nodes [nodes_.size(), b) from the graph's lists.
  void marshal(int b) {
    PyObject* nodes = get_list(s_nodes_);
    PyObject* dims = get_list(s_dims_);
    PyObject* ng = get_list(s_ng_);
    try {
      if (b > PyList_GET_SIZE(nodes)) throw py::index_error("cpu_eigen: forward past the end of the graph");
      for (int j = int(nodes_.size()); j < b; ++j) {
        PyObject* t = PyList_GET_ITEM(nodes, j);
        Node n;
        n.info = &op_info(PyTuple_GET_ITEM(t, 0));
        n.op = n.info->code;
        if (n.op < 0) throw std::runtime_error("cpu_eigen: op " + n.info->name + " is not supported by this backend");
        PyObject* ids = PyTuple_GET_ITEM(t, 1);
        n.a0 = int(args_.size());
        n.na = int(PyTuple_GET_SIZE(ids));
        for (int q = 0; q < n.na; ++q) args_.push_back(int(PyLong_AsLong(PyTuple_GET_ITEM(ids, q))));
        PyObject* shp = PyObject_GetAttr(PyList_GET_ITEM(dims, j), s_shape_);
        if (!shp) throw py::error_already_set();
        n.s = shape_from_tuple(shp);
        Py_DECREF(shp);
        n.ng = PyList_GET_ITEM(ng, j) == Py_True;
        n.mark = vals_.mark();
        refs_.emplace_back();
        held_.emplace_back();
        read_attrs(n, j, PyTuple_GET_ITEM(t, 2));
        if (n.info->leaf != 2) n.v = vals_.alloc(size_t(n.s.total()));
        nodes_.push_back(n);
      }
    } catch (...) {
      refs_.resize(nodes_.size());
      held_.resize(nodes_.size());
      Py_DECREF(nodes), Py_DECREF(dims), Py_DECREF(ng);
      throw;
    }
    Py_DECREF(nodes), Py_DECREF(dims), Py_DECREF(ng);
  }

  Tensor& storage_tensor(const py::object& st, PyObject* name) {
    PyObject* t = PyObject_GetAttr(st.ptr(), name);
    if (!t) throw py::error_already_set();
    py::object o = py::reinterpret_steal<py::object>(t);
    return as_tensor(o, "parameter");  // the storage keeps the tensor alive
  }

  void run_forward(int j) {
    Node& n = nodes_[size_t(j)];
    switch (n.info->leaf) {
      case 1: {  // input: copy the host data in
        FArray arr = FArray::ensure(refs_[size_t(j)]);
        if (!arr || arr.size() != n.s.total()) throw std::runtime_error("cpu_eigen: input data does not match its dim");
        std::memcpy(n.v, arr.data(), size_t(n.s.total()) * sizeof(float));
        return;
      }
      case 2: {  // parameter: read its storage in place (and keep that tensor alive while the node points at it)
        PyObject* t = PyObject_GetAttr(refs_[size_t(j)].ptr(), s_value_);
        if (!t) throw py::error_already_set();
        py::object keep = py::reinterpret_steal<py::object>(t);
        Tensor& w = as_tensor(keep, "parameter");
        if (w.total() != n.s.total()) throw std::runtime_error("cpu_eigen: parameter storage does not match its dim");
        n.v = w.data();
        held_[size_t(j)] = std::move(keep);
        return;
      }
      case 3: {  // lookup: gather rows
        Tensor& w = storage_tensor(refs_[size_t(j)], s_value_);
        Attrs a = attrs_of(n);
        int64_t cnt = a.I(0), rs = n.s.size(), rows = n_rows(w);
        for (int64_t k = 0; k < cnt; ++k) {
          int64_t r = a.I(1 + int(k));
          if (r < 0 || r >= rows) throw py::index_error("cpu_eigen: lookup row " + std::to_string(r) + " out of range");
          std::memcpy(n.v + k * rs, w.data() + r * rs, size_t(rs) * sizeof(float));
        }
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
      if (!a.I(0)) return;  // a constant parameter (update=False)
      if (n.g != n.alias) {
        Tensor& g = storage_tensor(st, s_grad_);
        int64_t m = n.s.total();
        for (int64_t k = 0; k < m; ++k) g.data()[k] += n.g[k];
      }
      if (PyObject_SetAttr(st.ptr(), s_has_grad_, Py_True) < 0) throw py::error_already_set();
      return;
    }
    int64_t cnt = a.I(0);
    if (!a.I(1 + int(cnt))) return;  // update=False
    Tensor& g = storage_tensor(st, s_grad_);
    int64_t rs = n.s.size();
    PyObject* touched = PyObject_GetAttr(st.ptr(), s_touched_);
    if (!touched) throw py::error_already_set();
    py::object keep = py::reinterpret_steal<py::object>(touched);
    for (int64_t k = 0; k < cnt; ++k) {
      int64_t r = a.I(1 + int(k));
      float* dst = g.data() + r * rs;
      for (int64_t q = 0; q < rs; ++q) dst[q] += n.g[k * rs + q];
      PyObject* pr = PyLong_FromLongLong(r);
      int rc = PySet_Add(touched, pr);
      Py_DECREF(pr);
      if (rc < 0) throw py::error_already_set();
    }
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
      if (n.info->leaf != 2 || !attrs_of(n).I(0)) continue;
      PyObject* st = refs_[size_t(j)].ptr();
      if (std::find(aliased_.begin(), aliased_.end(), st) != aliased_.end()) continue;
      aliased_.push_back(st);  // a second node of the same parameter keeps its own block
      PyObject* hg = PyObject_GetAttr(st, s_has_grad_);
      if (!hg) throw py::error_already_set();
      bool clean = hg == Py_False;
      Py_DECREF(hg);
      if (!clean) continue;
      Tensor& g = storage_tensor(refs_[size_t(j)], s_grad_);
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
      const Node& W = nodes_[size_t(w)];
      ab::input_grad(W.v, W.s.d[0], W.s.d[1], its);
    }
    for (int j : pending_leaves_) {
      nodes_[size_t(j)].pending = false;
      leaf_backward(nodes_[size_t(j)]);
    }
    pending_leaves_.clear();
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
    dw_.push_back({n.g, X.v, X.s.total() / W.s.d[1], W.dwq});
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
          dw_.push_back({r, X.v, nb, m.dwq});
          m.dwq = int(dw_.size()) - 1;
          continue;
        }
      }
      ku::lstm_gates_grad(xp, n.na, n.s, r, q, {grad_of(m), m.s});
    }
  }

  void flush_weight_grad(Node& W) {
    items_.clear();
    for (int e = W.dwq; e >= 0; e = dw_[size_t(e)].next) {
      const DeferredGrad& d = dw_[size_t(e)];
      items_.push_back({d.x, d.n, nullptr, d.dy});
    }
    W.dwq = -1;
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

PYBIND11_MODULE(_cpu_eigen, m) {
  m.doc() = "cpu_eigen: float32 kernels on Eigen and a whole-graph executor for dynet_api";
  static py::exception<MemoryLimitError> unused(m, "_MemoryLimitError");  // keeps the type known
  (void)unused;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const MemoryLimitError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  py::class_<Tensor>(m, "Tensor")
      .def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.shape)); })
      .def("numpy", &to_numpy)
      .def("__array__", [](const Tensor& t, py::args, py::kwargs) { return to_numpy(t); })
      .def("__repr__", [](const Tensor& t) { return "<cpu_eigen.Tensor " + std::string(py::str(py::cast(t.shape))) + ">"; });

  m.def("kernel_names", [] {
    std::vector<std::string> r;
    for (const auto& k : kernel_table()) r.push_back(k.name);
    return r;
  });
  m.def("has_backward", [](int code) { return kdef(code).bwd != nullptr; });
  m.def("set_shape_check", [](py::object f) { shape_check() = std::move(f); });
  m.def("fwd_op", &fwd_op);
  m.def("bwd_op", &bwd_op);

  m.def("from_numpy", [](py::handle a) { return from_numpy(a); });
  m.def("to_numpy", [](const Tensor& t) { return to_numpy(t); });
  m.def("zeros", [](std::vector<int64_t> s) {
    auto t = std::make_unique<Tensor>(s);
    std::fill_n(t->data(), t->total(), 0.0f);
    return t;
  });
  m.def("full", [](std::vector<int64_t> s, float v) {
    auto t = std::make_unique<Tensor>(s);
    std::fill_n(t->data(), t->total(), v);
    return t;
  });
  m.def("add", [](const Tensor& a, const Tensor& b) {
    same_size(a, b, "add");
    auto t = std::make_unique<Tensor>(a.shape);
    for (int64_t k = 0; k < a.total(); ++k) t->data()[k] = a.buf.data()[k] + b.buf.data()[k];
    return t;
  });
  m.def("iadd", [](Tensor& d, const Tensor& s) {
    same_size(d, s, "iadd");
    for (int64_t k = 0; k < d.total(); ++k) d.data()[k] += s.buf.data()[k];
  });
  m.def("assign", [](Tensor& d, py::handle a) {
    FArray arr = FArray::ensure(a);
    if (!arr) throw py::type_error("cpu_eigen.assign: expected an array of numbers");
    if (arr.size() != d.total())
      throw py::value_error("cpu_eigen.assign: " + std::to_string(arr.size()) + " values for a tensor of " +
                            std::to_string(d.total()));
    std::memcpy(d.data(), arr.data(), size_t(d.total()) * sizeof(float));
  });
  m.def("fill", [](Tensor& d, float v) { std::fill_n(d.data(), d.total(), v); });
  m.def("clear_rows", [](Tensor& d, py::handle rows) {
    int64_t rs = row_size(d);
    for (int64_t r : row_list(rows, n_rows(d), "clear_rows")) std::fill_n(d.data() + r * rs, rs, 0.0f);
  });
  m.def("scale", [](Tensor& d, float s, py::object rows) {
    if (rows.is_none()) {
      for (int64_t k = 0; k < d.total(); ++k) d.data()[k] *= s;
      return;
    }
    int64_t rs = row_size(d);
    for (int64_t r : row_list(rows, n_rows(d), "scale"))
      for (int64_t k = 0; k < rs; ++k) d.data()[r * rs + k] *= s;
  });
  m.def("clip", [](Tensor& d, float lo, float hi) {
    for (int64_t k = 0; k < d.total(); ++k) d.data()[k] = std::min(std::max(d.data()[k], lo), hi);
  });
  m.def("gather_batch", [](Tensor& t, py::handle rows) {
    std::vector<int64_t> r = row_list(rows, n_rows(t), "gather_batch");
    std::vector<int64_t> sh = t.shape;
    if (sh.size() < 2) sh.push_back(1);
    sh.back() = int64_t(r.size());
    auto out = std::make_unique<Tensor>(sh);
    int64_t rs = row_size(t);
    for (size_t j = 0; j < r.size(); ++j)
      std::memcpy(out->data() + int64_t(j) * rs, t.data() + r[j] * rs, size_t(rs) * sizeof(float));
    return out;
  });
  m.def("scatter_add_batch", [](Tensor& d, py::handle rows, const Tensor& src) {
    std::vector<int64_t> r = row_list(rows, n_rows(d), "scatter_add_batch");
    int64_t rs = row_size(d);
    if (src.total() != rs * int64_t(r.size()))
      throw py::value_error("cpu_eigen.scatter_add_batch: source does not hold one row per index");
    for (size_t j = 0; j < r.size(); ++j)
      for (int64_t k = 0; k < rs; ++k) d.data()[r[j] * rs + k] += src.buf.data()[int64_t(j) * rs + k];
  });
  m.def("sq_norm", [](const Tensor& t, py::object rows) {
    const upd::NormFn norm = upd::current().sq_norm;
    if (rows.is_none()) return norm(t.buf.data(), t.total());
    int64_t rs = row_size(t);
    double s = 0;
    for (int64_t r : row_list(rows, n_rows(t), "sq_norm")) s += norm(t.buf.data() + r * rs, rs);
    return s;
  });
  // The clipping norm of one update: sum of squares over (tensor, rows or None) pairs, in one call.
  m.def("sq_norm_all", [](py::list parts) {
    const upd::NormFn norm = upd::current().sq_norm;
    double s = 0;
    for (auto it : parts) {
      auto p = it.cast<py::tuple>();
      if (p.size() != 2) throw py::value_error("cpu_eigen.sq_norm_all: parts are (tensor, rows or None)");
      const Tensor& t = as_tensor(p[0], "sq_norm_all");
      if (p[1].is_none()) {
        s += norm(t.buf.data(), t.total());
        continue;
      }
      int64_t rs = row_size(t);
      for (int64_t r : row_list(p[1], n_rows(t), "sq_norm_all")) s += norm(t.buf.data() + r * rs, rs);
    }
    return s;
  });
  m.def("update", [](const std::string& rule, Tensor& w, Tensor& g, py::list states, py::object rows, py::dict h) {
    same_size(w, g, "update");
    std::vector<float*> sp;
    for (auto s : states) {
      Tensor& st = as_tensor(s, "update");
      same_size(w, st, "update");
      sp.push_back(st.data());
    }
    auto get = [&](const char* k) { return h.contains(k) ? h[k].cast<double>() : 0.0; };
    double gscale = h.contains("gscale") ? h["gscale"].cast<double>() : 1.0;
    double wscale = h.contains("wscale") ? h["wscale"].cast<double>() : 1.0;
    std::vector<int64_t> r;
    if (!rows.is_none()) r = row_list(rows, n_rows(w), "update");
    apply_update(rule, w.data(), g.data(), sp, w.total(), row_size(w), rows.is_none() ? nullptr : &r, get("lr"),
                 gscale, get("mom"), get("eps"), get("rho"), get("beta_1"), get("beta_2"), false, wscale);
  });
  // One trainer step over many parameters: items are (w, g, states, rows or None, clear); all are
  // checked before any is stepped, so a bad item leaves every parameter as it was.
  m.def("update_all", [](const std::string& rule, py::list items, py::dict h) {
    auto get = [&](const char* k) { return h.contains(k) ? h[k].cast<double>() : 0.0; };
    double lr = get("lr"), mom = get("mom"), eps = get("eps"), rho = get("rho"), b1 = get("beta_1"),
           b2 = get("beta_2"), gscale = h.contains("gscale") ? h["gscale"].cast<double>() : 1.0,
           wscale = h.contains("wscale") ? h["wscale"].cast<double>() : 1.0;
    struct Item {
      Tensor* w;
      Tensor* g;
      std::vector<float*> states;
      bool dense, clear;
      std::vector<int64_t> rows;
    };
    std::vector<Item> todo(items.size());
    size_t i = 0;
    for (auto it : items) {
      auto t = it.cast<py::tuple>();
      if (t.size() != 5) throw py::value_error("cpu_eigen.update_all: items are (w, g, states, rows, clear)");
      Item& x = todo[i++];
      x.w = &as_tensor(t[0], "update_all");
      x.g = &as_tensor(t[1], "update_all");
      same_size(*x.w, *x.g, "update_all");
      for (auto s : t[2].cast<py::sequence>()) {
        Tensor& st = as_tensor(s, "update_all");
        same_size(*x.w, st, "update_all");
        x.states.push_back(st.data());
      }
      x.dense = t[3].is_none();
      if (!x.dense) x.rows = row_list(t[3], n_rows(*x.w), "update_all");
      x.clear = t[4].cast<bool>();
    }
    for (Item& x : todo)
      apply_update(rule, x.w->data(), x.g->data(), x.states, x.w->total(), row_size(*x.w),
                   x.dense ? nullptr : &x.rows, lr, gscale, mom, eps, rho, b1, b2, x.clear, wscale);
  });
  m.def("cpu_has_avx2_fma", [] {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  });
  m.def("use_fast_gemm", [](py::object gemm, py::object thr) {
    if (gemm.is_none()) {
      set_fast_gemm(nullptr, nullptr);
      return;
    }
    auto g = reinterpret_cast<GemmFn>(PyCapsule_GetPointer(gemm.ptr(), "dynet_cpu_eigen.gemm"));
    auto t = reinterpret_cast<ThreadsFn>(PyCapsule_GetPointer(thr.ptr(), "dynet_cpu_eigen.threads"));
    if (!g || !t) throw py::error_already_set();
    set_fast_gemm(g, t);
  });
  m.def("fast_gemm", [] { return fast_gemm() != nullptr; });
  m.def("use_blas", [](const std::string& path, const std::string& prefix) { return blas::load(path, prefix); });
  m.def("unuse_blas", &blas::unload);
  m.def("blas", &blas::describe);
  m.def("blas_min_work", &blas::min_work);
  m.def("set_blas_min_work", &blas::set_min_work);
  m.def("blas_min_side", &blas::min_side);
  m.def("set_blas_min_side", &blas::set_min_side);
  m.def("rowops_isa", [] { return std::string(rows::isa()); });
  m.def("thin_gemm_isa", &thin::isa);
  m.def("update_isa", &upd::isa);
  m.def("select_update_isa", &upd::select, py::arg("name"));
  m.def("select_thin_gemm", &thin::select, py::arg("name"));
  m.def("set_autobatch", [](bool on) { ab::set_enabled(on); });
  m.def("autobatch", [] { return ab::enabled(); });
  m.def("autobatch_stats", [] {
    const ab::Stats& s = ab::stats();
    return py::make_tuple(s.forward, s.input_grad, s.weight_grad);
  });
  m.def("seed", [](uint64_t s) { rng().seed(static_cast<std::mt19937::result_type>(s)); });
  m.def("set_threads", &set_threads);
  m.def("threads", &threads);
  m.def("set_mem_limit", [](size_t mb) { set_mem_limit(mb << 20); });
  m.def("mem_limit_mb", [] { return mem_limit() >> 20; });
  m.def("mem_used", &mem_used);
  m.def("openmp", [] {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
  });

  py::class_<Executor>(m, "Executor", py::dynamic_attr())
      .def(py::init<py::object>())
      .def("forward", &Executor::forward)
      .def("backward", &Executor::backward)
      .def("value", &Executor::value)
      .def("gradient", &Executor::gradient)
      .def("reset", &Executor::reset)
      .def("truncate", &Executor::truncate)
      .def("invalidate", &Executor::invalidate)
      .def("arena_floats", &Executor::arena_floats);
}
