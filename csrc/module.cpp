// Python bindings of the cpu_eigen backend: the Tensor type, storage methods, trainer
// updates and single-op kernels (for the node-by-node executor and the conformance suite).
// The whole-graph Executor lives in executor.cpp, the reader of the front end's objects in
// contract.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "autobatch.h"
#include "common.h"
#include "contract.h"
#include "executor.h"
#include "gemm_blas.h"
#include "gemm_thin.h"
#include "op_attrs.h"
#include "rowops.h"
#include "tensor.h"
#include "trainer_step.h"
#include "update_rules.h"

namespace py = pybind11;
using namespace dy;

namespace {

std::vector<int64_t> shape_of(const py::handle& t) {
  std::vector<int64_t> r;
  for (auto v : py::reinterpret_borrow<py::tuple>(t)) r.push_back(v.cast<int64_t>());
  return r;
}

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

void same_size(const Tensor& a, const Tensor& b, const char* what) {
  if (a.total() != b.total())
    throw py::value_error(std::string("cpu_eigen.") + what + ": tensors of " + std::to_string(a.total()) + " and " +
                          std::to_string(b.total()) + " values");
}

// A trainer's hyper dict as the rule kernels read it, once per update: the keys of update_rules_table.h
// (generated from the trainer records), interned, read with the C API; a key not sent takes its default.
upd::Hyper read_hyper(PyObject* h) {
  static PyObject* const* keys = [] {
    static PyObject* k[upd::kHyperKeys];
    for (int i = 0; i < upd::kHyperKeys; ++i) k[i] = PyUnicode_InternFromString(upd::kHyperNames[i]);  // kept
    return k;
  }();
  double v[upd::kHyperKeys];
  for (int i = 0; i < upd::kHyperKeys; ++i) {
    PyObject* x = keys[i] ? PyDict_GetItemWithError(h, keys[i]) : nullptr;
    if (!x) {
      if (PyErr_Occurred()) throw py::error_already_set();
      v[i] = upd::kHyperAbsent[i];
      continue;
    }
    v[i] = PyFloat_AsDouble(x);
    if (v[i] == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  }
  return upd::Hyper::from(v);
}

// Rows (batch elements) of a table, bounds-checked.
std::vector<int64_t> row_list(py::handle rows, int64_t n, const char* what) {
  std::vector<int64_t> r;
  PyObject* seq = PySequence_Fast(rows.ptr(), "rows must be a sequence of ints");
  if (!seq) throw py::error_already_set();
  py::object keep = py::reinterpret_steal<py::object>(seq);
  r.reserve(size_t(PySequence_Fast_GET_SIZE(seq)));
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); ++i) {
    PyObject* v = PySequence_Fast_GET_ITEM(seq, i);
    int64_t k = PyLong_AsLongLong(v);
    if (k == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::type_error(std::string("cpu_eigen.") + what + ": rows must be ints, got " + Py_TYPE(v)->tp_name);
    }
    if (k < 0 || k >= n)
      throw py::index_error(std::string("cpu_eigen.") + what + ": row " + std::to_string(k) + " out of range for " +
                            std::to_string(n) + " rows");
    r.push_back(k);
  }
  return r;
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
  std::vector<AttrSlot> S;
  contract::decode_attrs(attrs.ptr(), I, F, S);
  std::vector<CView> v;
  for (auto x : xs) v.push_back(as_tensor(x, k.name).cview());
  auto y = std::make_unique<Tensor>(shape_of(shape));
  Attrs a{I.data(), int(I.size()), F.data(), int(F.size()), S.data(), int(S.size())};
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
  std::vector<AttrSlot> S;
  contract::decode_attrs(attrs.ptr(), I, F, S);
  std::vector<CView> v;
  for (auto x : xs) v.push_back(as_tensor(x, k.name).cview());
  if (i < 0 || size_t(i) >= v.size()) throw py::index_error("cpu_eigen: input index out of range");
  auto dx = std::make_unique<Tensor>(as_tensor(xs[size_t(i)], k.name).shape);
  std::fill(dx->data(), dx->data() + dx->total(), 0.0f);
  Attrs a{I.data(), int(I.size()), F.data(), int(F.size()), S.data(), int(S.size())};
  k.bwd(v.data(), int(v.size()), y.cview(), dy.cview(), i, dx->view(), a);
  return dx;
}

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
  // The attribute names the kernels were compiled against (op_attrs.h), {op: "a,b,..."}.
  m.def("op_attr_names", [] {
    py::dict d;
    for (const auto& o : attr::kAll) d[py::str(o.op)] = py::str(o.names);
    return d;
  });
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
  // (Read with the C API: pybind's per-item casts cost more than the norm of a small parameter.)
  m.def("sq_norm_all", [](py::list parts) {
    const upd::NormFn norm = upd::current().sq_norm;
    double s = 0;
    PyObject* l = parts.ptr();
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l); ++i) {
      PyObject* p = PyList_GET_ITEM(l, i);
      if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 2)
        throw py::value_error("cpu_eigen.sq_norm_all: parts are (tensor, rows or None)");
      const Tensor& t = as_tensor(PyTuple_GET_ITEM(p, 0), "sq_norm_all");
      PyObject* rows = PyTuple_GET_ITEM(p, 1);
      if (rows == Py_None) {
        s += norm(t.buf.data(), t.total());
        continue;
      }
      int64_t rs = row_size(t);
      for (int64_t r : row_list(rows, n_rows(t), "sq_norm_all")) s += norm(t.buf.data() + r * rs, rs);
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
    const int code = upd::rule_code(rule);
    const upd::Hyper hy = read_hyper(h.ptr());
    std::vector<int64_t> r;
    if (!rows.is_none()) r = row_list(rows, n_rows(w), "update");
    upd::apply_update(code, w.data(), g.data(), sp, w.total(), row_size(w), rows.is_none() ? nullptr : &r, hy, false);
  });
  add_trainer_step(m);
  // One trainer step over many parameters: items are (w, g, states, rows or None, clear); all are
  // checked before any is stepped, so a bad item leaves every parameter as it was.
  m.def("update_all", [](const std::string& rule, py::list items, py::dict h) {
    const int code = upd::rule_code(rule);
    const upd::Hyper hy = read_hyper(h.ptr());
    struct Item {
      Tensor* w;
      Tensor* g;
      std::vector<float*> states;
      bool dense, clear;
      std::vector<int64_t> rows;
    };
    PyObject* l = items.ptr();
    std::vector<Item> todo(size_t(PyList_GET_SIZE(l)));
    for (size_t i = 0; i < todo.size(); ++i) {
      PyObject* t = PyList_GET_ITEM(l, Py_ssize_t(i));
      if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5)
        throw py::value_error("cpu_eigen.update_all: items are (w, g, states, rows, clear)");
      Item& x = todo[i];
      x.w = &as_tensor(PyTuple_GET_ITEM(t, 0), "update_all");
      x.g = &as_tensor(PyTuple_GET_ITEM(t, 1), "update_all");
      same_size(*x.w, *x.g, "update_all");
      PyObject* ss = PySequence_Fast(PyTuple_GET_ITEM(t, 2), "cpu_eigen.update_all: states must be a sequence");
      if (!ss) throw py::error_already_set();
      py::object keep = py::reinterpret_steal<py::object>(ss);
      for (Py_ssize_t q = 0; q < PySequence_Fast_GET_SIZE(ss); ++q) {
        Tensor& st = as_tensor(PySequence_Fast_GET_ITEM(ss, q), "update_all");
        same_size(*x.w, st, "update_all");
        x.states.push_back(st.data());
      }
      PyObject* rows = PyTuple_GET_ITEM(t, 3);
      x.dense = rows == Py_None;
      if (!x.dense) x.rows = row_list(rows, n_rows(*x.w), "update_all");
      int c = PyObject_IsTrue(PyTuple_GET_ITEM(t, 4));
      if (c < 0) throw py::error_already_set();
      x.clear = c == 1;
    }
    for (Item& x : todo)
      if (x.states.size() != size_t(upd::kRuleStates[code]))
        throw py::value_error("cpu_eigen.update_all: update rule '" + rule + "' takes " +
                              std::to_string(upd::kRuleStates[code]) + " state tensors, got " +
                              std::to_string(x.states.size()));
    for (Item& x : todo)
      upd::apply_update(code, x.w->data(), x.g->data(), x.states, x.w->total(), row_size(*x.w),
                        x.dense ? nullptr : &x.rows, hy, x.clear);
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
  m.def("update_rules", &upd::rules_with_kernels);
  // The trainer records this module was built from (update_rules_table.h), for the check at load time.
  m.def("update_rule_table", [] {
    py::dict states;
    for (int r = 0; r < upd::kRules; ++r) states[upd::kRuleNames[r]] = upd::kRuleStates[r];
    py::list keys;
    for (int i = 0; i < upd::kHyperKeys; ++i) keys.append(upd::kHyperNames[i]);
    return py::make_tuple(states, keys);
  });
  m.def("select_update_isa", &upd::select, py::arg("name"));
  m.def("select_thin_gemm", &thin::select, py::arg("name"));
  m.def("set_autobatch", [](int strategy) { ab::set_strategy(strategy); });
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

  bind_executor(m);
}
