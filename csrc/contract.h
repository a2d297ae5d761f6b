// What the front end hands this backend, read here and nowhere else.  dynet_api/backend.py states
// it in Python (GraphExecutor, NodeRecord, ParamStorageView) and docs/writing_a_backend.md in
// words; the executor and the single-op kernels see the front end only through this file:
//
//   * the graph (GraphSource): node j is nodes[j] == (op, input ids, attrs), with output
//     dims[j].shape and ng[j] (does it need a gradient); and check_validity;
//   * an op record (OpRecord): its name, its nograd inputs and its attribute names;
//   * a node's attribute tuple (decode_attrs), and a leaf's attrs[0]: an input's host array
//     (read_input) or a parameter's storage (Storage: value, wscale.factor, grad, has_grad, touched).
//
// The other half of the contract, Backend.trainer_step (a whole Trainer.update()), reads the
// trainer, its collection and the storages' slots in trainer_step.cpp.
#pragma once

#include <string>
#include <vector>

#include "common.h"
#include "packed_nodes.h"
#include "small_int.h"
#include "tensor.h"

namespace dy {
namespace contract {

// Flatten a node's attribute tuple onto the ends of Attrs' lists (see Attrs in common.h): one slot
// per attribute in S, its offsets counted from where I and F ended before the call.
void decode_attrs(PyObject* attrs, std::vector<int64_t>& I, std::vector<double>& F, std::vector<AttrSlot>& S);

// A NumPy-layout shape tuple (data dims, then the batch).
Shape shape_from_tuple(PyObject* t);

// What the executor reads of an op record (dynet_api.ops.OpDef).
struct OpRecord {
  std::string name;
  std::vector<int> nograd;  // inputs that never receive a gradient
  // autobatching (dynet_api.ops.OpDef's batch rules): batch == "map"; the places of batch_attrs
  // (one entry per batch element); batch_shared; the place of the attribute ``b`` (or -1)
  bool maps = false;
  std::vector<int> per_elem, shared;
  int b_attr = -1;
};
OpRecord read_op(PyObject* op);

// One node of the graph, borrowed from the graph while GraphSource::read visits it: from its
// node tuple, or from the front end's packed arrays (packed_nodes.h) while it keeps them.
struct NodeRecord {
  PyObject* op;            // the OpDef
  PyObject* ids;           // a tuple of input node indices (null: packed, in pids)
  const Py_ssize_t* pids;  // the packed input ids
  int na;                  // the number of inputs
  PyObject* attrs;         // the attribute tuple (or None)
  PyObject* dim;           // dims[j] itself (its identity: equal Dims give equal shapes)
  bool ng;                 // ng[j]
  // dims[j].shape, read from the Dim on demand: a reader keeps its own Shape per Dim (Dims are
  // interned and immutable) and asks only for a Dim it has not met
  Shape shape() const;
  int n_inputs() const { return na; }
  // input q's node id, or -1 with the Python error set where it is not an int
  long input(int q) const { return pids ? long(pids[q]) : dy_as_long(PyTuple_GET_ITEM(ids, q)); }
};

// The front end's graph, as GraphExecutor's contract hands it to make_executor.
class GraphSource {
 public:
  explicit GraphSource(py::object cg);
  bool check_validity() const;
  // Visit nodes [from, to) in order: f(j, const NodeRecord&).
  template <class F>
  void read(int from, int to, F&& f) const;
  // Node j's attribute tuple (read again after an input's data was set).
  py::object attrs(int j) const;

 private:
  struct Lists {  // the graph's three node lists, held for one read (nodes: none while packed)
    py::object nodes, dims, ng;
    DyPackedView pk{0, nullptr, nullptr};
    bool packed = false;
  };
  Lists lists(int to) const;
  NodeRecord record(const Lists& l, int j) const;
  py::object cg_;
};

// The node tuples (and their ids and attribute tuples) lie scattered over the heap, and loading
// them was most of the read's time: each is asked for a few nodes ahead of its visit.  (Written
// in the loop itself: GCC takes a function that only prefetches for a pure one and drops its calls.)
template <class F>
void GraphSource::read(int from, int to, F&& f) const {
  Lists l = lists(to);
  if (l.packed) {  // flat arrays: nothing to fetch ahead but the dims list's items
    PyObject* const* dims = reinterpret_cast<PyListObject*>(l.dims.ptr())->ob_item;
    PyObject* const* ng = reinterpret_cast<PyListObject*>(l.ng.ptr())->ob_item;
    for (int j = from; j < to; ++j) {
      const DyPackedNode& p = l.pk.nodes[j];
      f(j, NodeRecord{p.op, nullptr, l.pk.ids + p.i0, int(p.na), p.attrs ? p.attrs : Py_None, dims[j],
                      ng[j] == Py_True});
    }
    return;
  }
  PyObject* const* items = reinterpret_cast<PyListObject*>(l.nodes.ptr())->ob_item;
  constexpr int kTuple = 16, kParts = 8;  // how far ahead: the tuple itself, then what it points to
  for (int j = from; j < to; ++j) {
#if defined(__GNUC__)
    if (j + kTuple < to) __builtin_prefetch(items[j + kTuple]);
    if (j + kParts < to) {
      PyObject* t = items[j + kParts];
      if (PyTuple_CheckExact(t) && PyTuple_GET_SIZE(t) == 3) {
        PyObject* ids = PyTuple_GET_ITEM(t, 1);
        __builtin_prefetch(ids);
        __builtin_prefetch(PyTuple_GET_ITEM(t, 2));
      }
    }
#endif
    f(j, record(l, j));
  }
}

// A parameter's storage (ParamStorageView): attrs[0] of a parameter or lookup node.
namespace storage {
py::object value(PyObject* st);  // the stored values' Tensor object (hold it while reading it)
float factor(PyObject* st);      // the weights are value * factor (the lazy weight decay, wscale.factor)
Tensor& grad(PyObject* st);      // the gradient tensor; the storage keeps it alive
bool has_grad(PyObject* st);
void set_has_grad(PyObject* st);                          // after adding into a dense gradient
void touch(PyObject* st, const int64_t* rows, int64_t n);  // after adding into these rows
}  // namespace storage

// An input node's host data (attrs[0]): copied into n floats at dst, or a clear error.
void read_input(PyObject* data, float* dst, int64_t n);

}  // namespace contract
}  // namespace dy
