// The one reader of the front end's objects (see contract.h).
#include "contract.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "pyobj.h"
#include "slots.h"

namespace dy {
namespace contract {

namespace {

PyObject* intern(const char* s) { return intern_name(s); }

// The attribute names read here, interned once (never freed: they may outlive the interpreter's teardown).
struct Names {
  PyObject* shape = intern("shape");
  PyObject *check = intern("check_validity"), *name = intern("name"), *nograd = intern("nograd");
  PyObject *batch = intern("batch"), *batch_attrs = intern("batch_attrs"), *batch_shared = intern("batch_shared");
  PyObject *attrs = intern("attrs");
};
const Names& names() {
  static const Names* n = new Names();
  return *n;
}

py::object get(PyObject* o, PyObject* name) { return attr(o, name); }

// What every forward and backward reads, at slot offsets (slots.h): a parameter's storage
// (ParamStorage.__slots__), its WeightScale (WeightScale.__slots__), and the graph's node lists
// (fastgraph's GraphBase members).  Never freed (see Names).
enum StorageSlot { st_value, st_grad, st_has_grad, st_touched, st_wscale };
SlotTable& storage_slots() {
  static SlotTable* const t = new SlotTable{"value", "grad", "has_grad", "touched", "wscale"};
  return *t;
}
py::object get_storage(PyObject* o, StorageSlot k) { return storage_slots().get(o, k); }
py::object scale_factor(PyObject* ws) {
  static SlotTable* const t = new SlotTable{"factor"};
  return t->get(ws, 0);
}
enum GraphSlot { g_nodes, g_dims, g_ng };
py::object get_graph(PyObject* o, GraphSlot k) {
  static SlotTable* const t = new SlotTable{"nodes", "dims", "ng"};
  return t->get(o, k);
}

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
    long long x = dy_as_long_long(it);
    if (x == -1 && PyErr_Occurred()) {
      Py_DECREF(seq);
      throw py::error_already_set();
    }
    I.push_back(x);
  }
  Py_DECREF(seq);
}

}  // namespace

void decode_attrs(PyObject* attrs, std::vector<int64_t>& I, std::vector<double>& F, std::vector<AttrSlot>& S) {
  if (attrs == Py_None || !PyTuple_Check(attrs)) return;
  const size_t i0 = I.size(), f0 = F.size();
  Py_ssize_t n = PyTuple_GET_SIZE(attrs);
  for (Py_ssize_t k = 0; k < n; ++k) {
    PyObject* v = PyTuple_GET_ITEM(attrs, k);
    AttrSlot at;
    if (PyFloat_Check(v)) {  // a number goes to both lists, so an int where a float is meant still works
      double x = PyFloat_AS_DOUBLE(v);
      at = {int32_t(I.size() - i0), int32_t(F.size() - f0)};
      F.push_back(x);
      I.push_back(std::isfinite(x) && std::fabs(x) < 9e18 ? int64_t(x) : 0);
    } else if (PyLong_Check(v)) {
      long long x = dy_as_long_long(v);
      if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
      at = {int32_t(I.size() - i0), int32_t(F.size() - f0)};
      I.push_back(x);
      F.push_back(double(x));
    } else if (PyTuple_Check(v) || PyList_Check(v)) {
      at.i = int32_t(I.size() - i0);
      decode_seq(v, I);
    }
    // None, Dims, arrays, strings and parameter storages write nothing: the leaf code reads them itself.
    S.push_back(at);
  }
}

Shape shape_from_tuple(PyObject* t) {
  if (!PyTuple_Check(t)) throw std::runtime_error("cpu_eigen: a node's Dim.shape is not a tuple");
  Py_ssize_t n = PyTuple_GET_SIZE(t);
  if (n > Py_ssize_t(MAXD) + 1)
    throw std::invalid_argument("cpu_eigen: tensors have at most " + std::to_string(MAXD) +
                                " data dims plus the batch, got a shape of " + std::to_string(n) + " axes");
  int64_t v[MAXD + 1];  // shape_from's rule, without a vector per node
  for (Py_ssize_t k = 0; k < n; ++k) v[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, k));
  if (PyErr_Occurred()) throw py::error_already_set();
  Shape r;
  if (n == 1) {
    r.d[0] = v[0];
  } else if (n > 1) {
    r.nd = int(n) - 1;
    for (int k = 0; k < r.nd; ++k) r.d[k] = v[k];
    r.bd = v[n - 1];
  }
  return r;
}

OpRecord read_op(PyObject* op) {
  OpRecord r;
  r.name = get(op, names().name).cast<std::string>();
  for (auto v : get(op, names().nograd)) r.nograd.push_back(v.cast<int>());
  r.maps = get(op, names().batch).cast<std::string>() == "map";
  std::vector<std::string> attrs;
  for (auto v : get(op, names().attrs)) attrs.push_back(v.cast<std::string>());
  auto place = [&](const std::string& a) {
    auto it = std::find(attrs.begin(), attrs.end(), a);
    return it == attrs.end() ? -1 : int(it - attrs.begin());
  };
  for (auto v : get(op, names().batch_attrs)) {
    int k = place(v.cast<std::string>());
    if (k < 0) throw std::runtime_error("cpu_eigen: op " + r.name + " batches an attribute it does not have");
    r.per_elem.push_back(k);
  }
  for (auto v : get(op, names().batch_shared)) r.shared.push_back(v.cast<int>());
  r.b_attr = place("b");
  return r;
}

GraphSource::GraphSource(py::object cg) : cg_(std::move(cg)) {}

bool GraphSource::check_validity() const {
  int r = PyObject_IsTrue(get(cg_.ptr(), names().check).ptr());
  if (r < 0) throw py::error_already_set();
  return r == 1;
}

namespace {
// The front end's packed-graph reader (packed_nodes.h), or null without its C accelerator.
DyPackedViewFn packed_view() {
  static const DyPackedViewFn fn = [] {
    void* p = PyCapsule_Import(DY_PACKED_VIEW_CAPSULE, 0);
    if (!p) PyErr_Clear();
    return reinterpret_cast<DyPackedViewFn>(p);
  }();
  return fn;
}
}  // namespace

GraphSource::Lists GraphSource::lists(int to) const {
  Lists l;
  const DyPackedViewFn view = packed_view();
  l.packed = view && view(cg_.ptr(), &l.pk) == 1;
  if (!l.packed) l.nodes = get_graph(cg_.ptr(), g_nodes);
  l.dims = get_graph(cg_.ptr(), g_dims), l.ng = get_graph(cg_.ptr(), g_ng);
  for (PyObject* o : {l.dims.ptr(), l.ng.ptr()})
    if (!PyList_Check(o)) throw std::runtime_error("cpu_eigen: the graph's node lists are not lists");
  if (!l.packed && !PyList_Check(l.nodes.ptr())) throw std::runtime_error("cpu_eigen: the graph's node lists are not lists");
  if (to > (l.packed ? l.pk.n : PyList_GET_SIZE(l.nodes.ptr())))
    throw py::index_error("cpu_eigen: forward past the end of the graph");
  if (to > PyList_GET_SIZE(l.dims.ptr()) || to > PyList_GET_SIZE(l.ng.ptr()))
    throw std::runtime_error("cpu_eigen: the graph's dims and ng lists are shorter than its nodes");
  return l;
}

NodeRecord GraphSource::record(const Lists& l, int j) const {
  PyObject* t = PyList_GET_ITEM(l.nodes.ptr(), j);
  if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(t, 1)))
    throw std::runtime_error("cpu_eigen: node " + std::to_string(j) + " is not an (op, input ids, attrs) tuple");
  PyObject* dim = PyList_GET_ITEM(l.dims.ptr(), j);
  PyObject* ids = PyTuple_GET_ITEM(t, 1);
  return {PyTuple_GET_ITEM(t, 0), ids, nullptr, int(PyTuple_GET_SIZE(ids)), PyTuple_GET_ITEM(t, 2), dim,
          PyList_GET_ITEM(l.ng.ptr(), j) == Py_True};
}

Shape NodeRecord::shape() const {
  py::object shp = get(dim, names().shape);
  return shape_from_tuple(shp.ptr());
}

py::object GraphSource::attrs(int j) const {
  DyPackedView pk;
  const DyPackedViewFn view = packed_view();
  if (view && view(cg_.ptr(), &pk) == 1) {
    if (j < 0 || j >= pk.n) throw py::index_error("cpu_eigen: no node " + std::to_string(j) + " in the graph");
    PyObject* a = pk.nodes[j].attrs;
    return py::reinterpret_borrow<py::object>(a ? a : Py_None);
  }
  py::object nodes = get_graph(cg_.ptr(), g_nodes);
  if (!PyList_Check(nodes.ptr()) || j < 0 || j >= PyList_GET_SIZE(nodes.ptr()))
    throw py::index_error("cpu_eigen: no node " + std::to_string(j) + " in the graph");
  PyObject* t = PyList_GET_ITEM(nodes.ptr(), j);
  if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3)
    throw std::runtime_error("cpu_eigen: node " + std::to_string(j) + " is not an (op, input ids, attrs) tuple");
  return py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(t, 2));
}

namespace storage {

py::object value(PyObject* st) { return get_storage(st, st_value); }

float factor(PyObject* st) {
  double f = PyFloat_AsDouble(scale_factor(get_storage(st, st_wscale).ptr()).ptr());
  if (f == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return float(f);
}

Tensor& grad(PyObject* st) {
  py::object g = get_storage(st, st_grad);
  return as_tensor(g, "parameter");  // the storage keeps the tensor alive
}

bool has_grad(PyObject* st) { return get_storage(st, st_has_grad).ptr() == Py_True; }

void set_has_grad(PyObject* st) { storage_slots().set(st, st_has_grad, Py_True); }

void touch(PyObject* st, const int64_t* rows, int64_t n) {
  py::object touched = get_storage(st, st_touched);
  for (int64_t k = 0; k < n; ++k) {
    PyObject* r = PyLong_FromLongLong(rows[k]);
    if (!r) throw py::error_already_set();
    int rc = PySet_Add(touched.ptr(), r);
    Py_DECREF(r);
    if (rc < 0) throw py::error_already_set();
  }
}

}  // namespace storage

void read_input(PyObject* data, float* dst, int64_t n) {
  FArray arr = FArray::ensure(data);
  if (!arr || arr.size() != n) throw std::runtime_error("cpu_eigen: input data does not match its dim");
  std::memcpy(dst, arr.data(), size_t(n) * sizeof(float));
}

}  // namespace contract
}  // namespace dy
