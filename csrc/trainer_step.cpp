// The C++ twin of Trainer.update() (dynet_api/trainers.py), for the cases of every training loop:
// every parameter on this backend, with or without clipping, sparse or dense lookups, frozen
// parameters, DyNet's lazy weight decay on a root collection, CyclicalSGDTrainer's schedule.
// Python's update (Trainer._update_in_python) is the specification; tests/test_trainer_step.py
// runs both on the same steps and compares the weights, the states and the trainer's counters bit
// for bit.  The twin exists because a small update's work is its bookkeeping: Python's walk over
// the storages, its hyper dict and two backend calls cost 3-6 us, ten times the step of a 64x64
// parameter.
//
// It reads first and changes nothing until the step is sure to run: on anything it does not
// handle (another backend's tensors, a state tensor not yet made, a NaN or infinite norm under
// clipping, the weight-decay factor's fold, a subcollection's trainer, a class's own _decay, a
// whole-tensor rule) it returns False with every object as it was, and Python's update() runs.
#include "trainer_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include <structmember.h>

#include "flush_denormals.h"
#include "pycall.h"
#include "pyobj.h"
#include "slots.h"
#include "tensor.h"
#include "update_rules.h"

namespace dy {

namespace {

// The names of the class attributes read (never freed).
struct Names {
  static PyObject* n(const char* s) { return intern_name(s); }
  PyObject *rule = n("rule"), *step_in_lr = n("step_in_lr"), *hyper_fn = n("_hyper");
  PyObject *after_fn = n("_after_update"), *plain_after = n("_plain_after_update"), *twin = n("_after_update_twin");
  PyObject *decay_fn = n("_decay"), *plain_decay = n("_plain_decay");
  PyObject* hyper[upd::kHyperKeys];  // the keys of _hyper()'s dict
  Names() {
    for (int i = 0; i < upd::kHyperKeys; ++i) hyper[i] = n(upd::kHyperNames[i]);
  }
};
const Names& names() {
  static const Names* n = new Names();
  return *n;
}

// The attributes a step reads and writes, at their classes' slot offsets where they are slots
// (slots.h).  Made once, never freed (see Names).
// The trainer: its settings and counters, CyclicalSGDTrainer's schedule, then the record's
// arguments by their hyper names (update_rules_table.h's kHyperNames, from tr_hyper on).
// The counters (updates ... it) are read and written by name only where the class does not keep
// them in its _counts array (Counters).
enum TrainerSlot {
  tr_model, tr_sparse, tr_clipping, tr_threshold, tr_lr, tr_updates, tr_since, tr_clips, tr_clips_since,
  tr_it, tr_counts, tr_state_key, tr_e_min, tr_e_max, tr_step_size, tr_gamma, tr_hyper
};
SlotTable& trainer_slots() {
  static SlotTable* const t = [] {
    std::vector<PyObject*> v;
    for (const char* s : {"model", "sparse_updates", "clipping_enabled", "clip_threshold", "_learning_rate", "updates",
                          "updates_since_status", "clips", "clips_since_status", "it", "_counts", "_state_key",
                          "e_min", "e_max", "step_size", "gamma"})
      v.push_back(intern_name(s));
    for (int k = 0; k < upd::kHyperKeys; ++k) v.push_back(intern_name(upd::kHyperNames[k]));
    return new SlotTable(std::move(v));
  }();
  return *t;
}
// The collection (ParameterCollection.__slots__) and its WeightScale.
enum ModelSlot { m_storages, m_decay, m_wscale, m_parent };
SlotTable& model_slots() {
  static SlotTable* const t = new SlotTable{"_storages", "_weight_decay", "_wscale", "_parent"};
  return *t;
}
SlotTable& scale_slots() {
  static SlotTable* const t = new SlotTable{"factor"};
  return *t;
}
// A storage (ParamStorage.__slots__): the step declines a storage whose class does not keep one
// of these in a slot.
enum StorageSlot { st_lookup, st_updated, st_has_grad, st_touched, st_grad, st_value, st_states };
SlotTable& storage_slots() {
  static SlotTable* const t = new SlotTable{"lookup", "updated", "has_grad", "touched", "grad", "value", "states"};
  return *t;
}

// An object's attributes in one table, as a step reads and writes them.  number() and flag()
// read a float or a bool in its slot in place, without a reference (nothing runs between the read
// and its use), and other values through Python's conversions, out of line.
class Fields {
 public:
  Fields(PyObject* o, SlotTable& slots) : o_(o), slots_(slots) {}
  py::object operator[](int k) const { return slots_.get(o_, k); }
  PyObject* slot_value(int k) const { return slots_.slot_value(o_, k); }
  [[gnu::always_inline]] double number(int k) const {
    PyObject* v = slots_.slot_value(o_, k);
    if (v && PyFloat_CheckExact(v)) [[likely]]
      return PyFloat_AS_DOUBLE(v);
    return converted_number(k);
  }
  [[gnu::always_inline]] bool flag(int k) const {
    PyObject* v = slots_.slot_value(o_, k);
    if (v == Py_True) return true;
    if (v == Py_False) return false;
    return converted_flag(k);
  }
  void set(int k, PyObject* v) const { slots_.set(o_, k, v); }

 private:
  [[gnu::noinline]] double converted_number(int k) const;
  [[gnu::noinline]] bool converted_flag(int k) const;
  PyObject* o_;
  SlotTable& slots_;
};

PyObject* one() {
  static PyObject* const o = PyLong_FromLong(1);  // kept
  return o;
}

inline bool truth(PyObject* o) {
  if (o == Py_True) return true;
  if (o == Py_False) return false;
  int t = PyObject_IsTrue(o);
  if (t < 0) throw py::error_already_set();
  return t != 0;
}

inline double as_double(PyObject* o) {
  if (PyFloat_CheckExact(o)) return PyFloat_AS_DOUBLE(o);
  double d = PyFloat_AsDouble(o);
  if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return d;
}

double Fields::converted_number(int k) const { return as_double((*this)[k].ptr()); }
bool Fields::converted_flag(int k) const { return truth((*this)[k].ptr()); }

int rule_of(PyObject* name) {
  const char* s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : nullptr;
  if (!s) {
    PyErr_Clear();
    return -1;
  }
  for (int r = 0; r < upd::kRules; ++r)
    if (std::strcmp(s, upd::kRuleNames[r]) == 0) return r;
  return -1;
}

// What a trainer's class says of its update (class attributes, the same for every instance):
// read once per class and kept while the class is unchanged (its type version tag, which CPython
// clears when an attribute of it or of a base changes).
struct ClassFacts {
  int rule = -1;            // the rule's code, or -1 (not one of update_rules_table.h's)
  bool after = false;       // the class's _after_update is not the base's (_plain_after_update)
  bool cyclical = false;    // ... it is the one _after_update_twin names "cyclical_lr": computed here
  bool own_decay = false;   // the class's _decay is not the base's (_plain_decay)
  bool step_in_lr = true;   // step_in_lr
  bool counters = false;    // the counters are the base's properties over _counts (Counters)
};

// Whether class t reads and writes its counters tr_updates .. tr_it (those of them it has: ``it``
// only where cyclical) as trainers.py's properties over the trainer's _counts array do: each name
// is a property with that _record_index, and the class has no attribute hooks of its own.
bool counters_in_array(PyTypeObject* t, bool cyclical) {
  if (t->tp_getattro != PyObject_GenericGetAttr || t->tp_setattro != PyObject_GenericSetAttr) return false;
  static PyObject* const index_name = intern_name("_record_index");
  for (int k = tr_updates; k <= tr_it; ++k) {
    if (k == tr_it && !cyclical) break;
    PyObject* d = _PyType_Lookup(t, trainer_slots().name(k));  // borrowed
    if (!d || !PyObject_TypeCheck(d, &PyProperty_Type)) return false;
    PyObject* at = PyObject_GetAttr(d, index_name);
    if (!at) {
      PyErr_Clear();
      return false;
    }
    const long i = PyLong_Check(at) ? PyLong_AsLong(at) : -1;
    Py_DECREF(at);
    if (i != k - tr_updates) {
      PyErr_Clear();
      return false;
    }
  }
  return true;
}

const ClassFacts& class_facts(PyObject* tr) {
  static PyTypeObject* type = nullptr;
  static unsigned int version = 0;
  static ClassFacts facts;
  PyTypeObject* t = Py_TYPE(tr);
  if (t == type && t->tp_version_tag == version && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG)) return facts;
  const Names& N = names();
  PyObject* cls = reinterpret_cast<PyObject*>(t);
  ClassFacts f;
  f.rule = rule_of(attr(cls, N.rule).ptr());
  py::object after = attr(cls, N.after_fn);
  f.after = !after.is(attr(cls, N.plain_after));
  py::object twin = attr(cls, N.twin);  // (name, the method it computes) or None
  f.cyclical = f.after && PyTuple_Check(twin.ptr()) && PyTuple_GET_SIZE(twin.ptr()) == 2 &&
               PyTuple_GET_ITEM(twin.ptr(), 1) == after.ptr() && PyUnicode_Check(PyTuple_GET_ITEM(twin.ptr(), 0)) &&
               PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(twin.ptr(), 0), "cyclical_lr") == 0;
  f.own_decay = !attr(cls, N.decay_fn).is(attr(cls, N.plain_decay));
  f.step_in_lr = truth(attr(cls, N.step_in_lr).ptr());
  f.counters = counters_in_array(t, f.cyclical);
  facts = f;
  // the lookups above gave the class a version tag if it can have one; without, nothing is kept
  const bool valid = t->tp_version_tag != 0 && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG);
  type = valid ? t : nullptr;
  version = t->tp_version_tag;
  return facts;
}

// One parameter's step, as Python's walk collects it.
struct Item {
  PyObject* st;  // the storage (borrowed from the storages list, which the trainer's model holds)
  Tensor *w, *g;
  float* s[3];
  std::vector<int64_t>* rows;  // a lookup table's touched rows (sorted; one of step()'s row_lists)
  bool lookup, rowwise, clear, step;
};

// The touched rows of a lookup table, sorted, each checked against the table.
bool sorted_rows(PyObject* set, int64_t n, std::vector<int64_t>& out) {
  out.reserve(size_t(PySet_GET_SIZE(set)));
  py::object it = py::reinterpret_steal<py::object>(PyObject_GetIter(set));
  if (!it) throw py::error_already_set();
  while (PyObject* key = PyIter_Next(it.ptr())) {
    long long r = PyLong_AsLongLong(key);
    Py_DECREF(key);
    if (r == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    if (r < 0 || r >= n) return false;
    out.push_back(r);
  }
  if (PyErr_Occurred()) throw py::error_already_set();
  std::sort(out.begin(), out.end());
  return true;
}

// How a storage joins a step: skipped (nothing to do), read into its Item, or the step declines.
enum class Read { skip, ok, decline };

// A lookup table's storage x.st: its gradient, touched rows (x.clear: some), and x.rowwise.  Out
// of the step's body, as are the other cases than a dense parameter's below: a small update after
// a graph spends most of its time reading its code again from L2, and the common case's code then
// lies on fewer lines.  `idle_skip`: a table no row of which was touched is skipped.
[[gnu::noinline]] Read read_lookup(Item& x, bool sparse, bool idle_skip, std::vector<int64_t>& rows) {
  SlotTable& S = storage_slots();
  rows.clear();
  x.rows = &rows;
  PyObject* touched = S.slot_value(x.st, st_touched);
  if (!touched || !PySet_CheckExact(touched)) return Read::decline;
  x.clear = PySet_GET_SIZE(touched) > 0;
  if (!x.clear && (sparse || idle_skip)) return Read::skip;
  x.g = tensor_or_null(S.slot_value(x.st, st_grad));
  if (!x.g) return Read::decline;
  if (x.clear && !sorted_rows(touched, n_rows(*x.g), rows)) return Read::decline;
  x.rowwise = x.clear && sparse;
  return Read::ok;
}

// The hyper values as the trainer's _hyper() gives them (a rule without a C++ learning rate), in v
// by kHyperNames; false where it gives no dict.
[[gnu::noinline]] bool hyper_by_method(PyObject* tr, double* v) {
  const Names& N = names();
  py::object h = py::reinterpret_steal<py::object>(PyObject_CallMethodNoArgs(tr, N.hyper_fn));
  if (!h) throw py::error_already_set();
  if (!PyDict_Check(h.ptr())) return false;
  for (int k = 0; k < upd::kHyperKeys; ++k) {
    PyObject* x = PyDict_GetItemWithError(h.ptr(), N.hyper[k]);
    if (x) v[k] = as_double(x);
    else if (PyErr_Occurred()) throw py::error_already_set();
  }
  return true;
}

// The places of the keys the step reads by name in kHyperNames (update_rules_table.h).
int hyper_key(const char* name) {
  for (int k = 0; k < upd::kHyperKeys; ++k)
    if (std::strcmp(upd::kHyperNames[k], name) == 0) return k;
  throw std::logic_error(std::string("trainer_step: no hyper key ") + name + " in update_rules_table.h");
}
struct Keys {
  int lr = hyper_key("lr"), gscale = hyper_key("gscale"), wscale = hyper_key("wscale"), gbound = hyper_key("gbound");
  int beta_1 = hyper_key("beta_1"), beta_2 = hyper_key("beta_2");
};

// The trainer's _counts array (trainers.py's COUNTERS, int64), written in place.  The buffer of
// the last array opened stays open between steps, a reference to the array with it: the next step
// of the same trainer finds its counters with one compare instead of the buffer protocol's calls
// (~80 instructions, 5% of a small update's).  An array with an open buffer cannot be resized;
// nothing resizes _counts.
class Counters {
 public:
  enum { updates, since, clips, clips_since, it, n };
  // False where o is not a writable buffer of n int64s, or a counter this step adds to is at its
  // largest (Python's update then raises the OverflowError).
  bool open(PyObject* o) {
    if (!o) return false;
    Held& h = held();
    if (!(h.open && h.b.obj == o)) {
      py::object keep = py::reinterpret_borrow<py::object>(o);  // (the old array's release may run Python code)
      h.close();
      if (PyObject_GetBuffer(o, &h.b, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return false;
      }
      h.open = true;
      const Py_buffer& b = h.b;
      if (b.len != Py_ssize_t(n * sizeof(int64_t)) || b.itemsize != 8 || !b.format || std::strcmp(b.format, "q") != 0) {
        h.close();
        return false;
      }
    }
    c_ = static_cast<int64_t*>(h.b.buf);
    for (int k = 0; k < n; ++k)
      if (c_[k] == INT64_MAX) return false;
    return true;
  }
  int64_t& operator[](int k) { return c_[k]; }

 private:
  struct Held {
    Py_buffer b{};
    bool open = false;
    void close() {
      if (open) PyBuffer_Release(&b);
      open = false;
    }
  };
  static Held& held() {
    static Held h;  // (never freed: the last array stays at exit)
    return h;
  }
  int64_t* c_ = nullptr;
};

// v + 1 (an exact int without the generic number protocol)
py::object plus_one(PyObject* v) {
  PyObject* nv = nullptr;
  if (PyLong_CheckExact(v)) {
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (!overflow && x < (1LL << 62)) nv = PyLong_FromLongLong(x + 1);
  }
  if (!nv) nv = PyNumber_Add(v, one());
  if (!nv) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(nv);
}

// trainer.<name> += 1
void add_one(const Fields& f, int k) { f.set(k, plus_one(f[k].ptr()).ptr()); }

// floor(x), without libm's call (the baseline x86-64 build has no rounding instruction): exact,
// as a double below 2^52 in magnitude converts to an integer and back exactly.
inline double exact_floor(double x) {
  if (!(std::fabs(x) < 4503599627370496.0)) return std::floor(x);  // already whole, inf or NaN
  const double t = double(static_cast<long long>(x));  // x rounded toward zero
  return t > x ? t - 1 : t;
}

// CyclicalSGDTrainer._after_update's learning rate after this update, the same double operations in
// the same order; `it` is the counter in place, or null: read by name (next_it: it + 1).  False
// where Python's setter would refuse the rate.
[[gnu::noinline]] bool cyclical_lr(const Fields& T, const int64_t* it_in_place, double& next_lr, py::object& next_it) {
  double it = 0;
  if (it_in_place) {
    it = double(*it_in_place);
  } else {
    py::object it_o = T[tr_it];
    it = PyLong_AsDouble(it_o.ptr());
    if (it == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    next_it = plus_one(it_o.ptr());
  }
  const double ss = T.number(tr_step_size), lo = T.number(tr_e_min);
  const double hi = T.number(tr_e_max), gm = T.number(tr_gamma);
  const double cycle = exact_floor(1 + it / (2 * ss));
  const double x = std::fabs(it / ss - 2 * cycle + 1);
  // (1.0 ** it is 1.0 exactly: the default gamma skips pow)
  next_lr = lo + (1 - x > 0 ? (hi - lo) * (1 - x) * (gm == 1.0 ? 1.0 : std::pow(gm, it)) : 0.0);
  return std::isfinite(next_lr) && next_lr >= 0;
}

// o.<name k> = a new float v (the weight-decay factor after a step).
[[gnu::noinline]] void set_float(SlotTable& slots, PyObject* o, int k, double v) {
  py::object f = py::reinterpret_steal<py::object>(PyFloat_FromDouble(v));
  if (!f) throw py::error_already_set();
  slots.set(o, k, f.ptr());
}

// trainer._after_update() of a class with its own (no C++ twin).
[[gnu::noinline]] void call_after_update(PyObject* tr) {
  PyObject* r = PyObject_CallMethodNoArgs(tr, names().after_fn);
  if (!r) throw py::error_already_set();
  Py_DECREF(r);
}

// A frozen parameter's gradient (or its touched rows) cleared: it counted in the norm.
[[gnu::noinline]] void clear_frozen(Item& x) {
  if (!x.lookup) {
    std::fill_n(x.g->data(), x.g->total(), 0.0f);
    return;
  }
  const int64_t rs = row_size(*x.g);
  for (int64_t r : *x.rows) std::fill_n(x.g->data() + r * rs, rs, 0.0f);
}

// The rule's step of the touched rows of a table (x.rows).
[[gnu::noinline]] void step_rows(int rule, Item& x, int n_states, const upd::Hyper& hy) {
  static std::vector<float*> sp;  // scratch (one step at a time)
  sp.assign(x.s, x.s + n_states);
  upd::apply_update(rule, x.w->data(), x.g->data(), sp, x.w->total(), row_size(*x.w), x.rows, hy, x.clear);
}

// The counters of a class that keeps them its own way (not in _counts), by name.
[[gnu::noinline]] void count_by_name(const Fields& T, bool clipped) {
  if (clipped) {
    add_one(T, tr_clips);
    add_one(T, tr_clips_since);
  }
  add_one(T, tr_updates);
  add_one(T, tr_since);
}

bool step(PyObject* tr) {
  SlotTable& S = storage_slots();
  const Fields T(tr, trainer_slots());
  const ClassFacts C = class_facts(tr);
  py::object model_ref = T[tr_model];
  const Fields M(model_ref.ptr(), model_slots());
  // DyNet's lazy weight decay (ParameterCollection._decay_weights on a root collection): the
  // factor shrinks by 1 - lambda after the step; Python's update does the rest (a subcollection's
  // trainer, a class's own _decay, and the fold of the factor into the values below 0.25)
  const double lam = M.number(m_decay);
  py::object ws = M[m_wscale];
  const double f = Fields(ws.ptr(), scale_slots()).number(0);
  if (lam > 0) {
    if (M[m_parent].ptr() != Py_None || C.own_decay) return false;
    if (f - f * lam < 0.25) return false;
  }
  const int rule = C.rule;
  if (rule < 0) return false;
  const int n_states = upd::kRuleStates[rule];
  if (!upd::current().steps[rule]) return false;  // a whole-tensor rule: Python's update_all call
  const bool sparse = T.flag(tr_sparse);
  const bool clip = T.flag(tr_clipping);
  const bool measure = clip || upd::kRuleWantsBound[rule];  // the norm: for clipping, or as gbound
  const bool idle_moves = rule != upd::sgd;  // plain SGD leaves a weight with a zero gradient as it is

  py::object storages = M[m_storages];
  if (!PyList_Check(storages.ptr())) return false;
  Counters counts;  // C.counters: the counters in place; else read and written by name
  if (C.counters && !counts.open(T.slot_value(tr_counts))) return false;
  py::object key_ref = n_states ? T[tr_state_key] : py::object();  // the trainer's key of the storages' states
  PyObject* key = key_ref.ptr();

  // ---- read: what Python's walk collects, nothing changed yet
  const Py_ssize_t n = PyList_GET_SIZE(storages.ptr());
  static std::vector<Item> items;  // scratch (one step at a time: trainer_step_py)
  items.clear();
  // the lookup tables' row lists, kept with their capacity between steps (no allocation per table
  // and step); a deque, whose growth leaves the lists where the items point
  static std::deque<std::vector<int64_t>> row_lists;
  size_t n_lists = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* st = PyList_GET_ITEM(storages.ptr(), i);
    Item x{};
    x.st = st;
    PyObject *lookup = S.slot_value(st, st_lookup), *updated_o = S.slot_value(st, st_updated);
    if (!lookup || !updated_o) return false;
    x.lookup = truth(lookup);
    const bool updated = truth(updated_o);
    bool has = false;
    if (x.lookup) {
      if (n_lists == row_lists.size()) row_lists.emplace_back();
      const Read r = read_lookup(x, sparse, !idle_moves || !updated, row_lists[n_lists]);
      if (r == Read::decline) return false;
      if (r == Read::skip) continue;
      ++n_lists;
      has = x.clear;
    } else {
      PyObject* h = S.slot_value(st, st_has_grad);
      if (!h) return false;
      has = truth(h);
      if (!has && !(idle_moves && updated)) continue;
      x.g = tensor_or_null(S.slot_value(st, st_grad));
      if (!x.g) return false;
    }
    x.clear = has;
    x.step = updated;
    if (updated) {
      x.w = tensor_or_null(S.slot_value(st, st_value));
      if (!x.w || x.w->total() != x.g->total()) return false;
      if (n_states == 0) {  // a rule without states stores none (Trainer._states)
        items.push_back(std::move(x));
        continue;
      }
      PyObject* states = S.slot_value(st, st_states);
      if (!states || !PyDict_CheckExact(states)) return false;
      PyObject* mine = PyDict_GetItemWithError(states, key);  // borrowed
      if (!mine) {
        if (PyErr_Occurred()) throw py::error_already_set();
        return false;  // Python's update makes them
      }
      if (!PyList_CheckExact(mine) || PyList_GET_SIZE(mine) != n_states) return false;
      for (int q = 0; q < n_states; ++q) {
        Tensor* s = tensor_or_null(PyList_GET_ITEM(mine, q));
        if (!s || s->total() != x.w->total()) return false;
        x.s[q] = s->data();
      }
    }
    items.push_back(std::move(x));
  }

  // ---- the hyper values, as the trainer's _hyper() gives them
  static const Keys K;
  double v[upd::kHyperKeys];
  std::copy(upd::kHyperAbsent, upd::kHyperAbsent + upd::kHyperKeys, v);
  const int lr_t = upd::kRuleLrT[rule];
  if (lr_t < 0) {
    if (!hyper_by_method(tr, v)) return false;
  } else {
    for (int k = 0; k < upd::kHyperKeys; ++k)
      if (upd::kRuleHyper[rule] & (1u << k)) v[k] = T.number(k == K.lr ? tr_lr : tr_hyper + k);
    if (lr_t == 1) {  // _adam_lr at update t = updates + 1
      long long t = 0;
      if (C.counters) {
        t = counts[Counters::updates] + 1;
      } else {
        t = PyLong_AsLongLong(T[tr_updates].ptr()) + 1;
        if (t == 0 && PyErr_Occurred()) throw py::error_already_set();
      }
      const double b1 = v[K.beta_1], b2 = v[K.beta_2];
      v[K.lr] = v[K.lr] * std::sqrt(1 - std::pow(b2, double(t))) / (1 - std::pow(b1, double(t)));
    }
  }

  const double thr = clip ? T.number(tr_threshold) : 0.0;
  if (f != 1.0) {  // the values are the weights divided by f
    if (C.step_in_lr) v[K.lr] /= f;
    else v[K.wscale] = 1.0 / f;
  }

  // ---- what the class's _after_update will do: its C++ twin where it has one, computed now so a
  // value the Python method would refuse declines before anything changed
  const bool cyclical = C.cyclical;
  double next_lr = 0;
  py::object next_it;
  if (cyclical && !cyclical_lr(T, C.counters ? &counts[Counters::it] : nullptr, next_lr, next_it)) return false;

  // ---- the arithmetic: the norm, the clipping scale (_clip_scale), the steps and clears, under one
  // denormal flush (no Python code runs in it; the norm may still decline the step)
  bool clipped = false;
  {
    FlushDenormals ftz;
    double sq = 0;
    if (measure) {
      const upd::NormFn norm = upd::current().sq_norm;
      for (const Item& x : items) {
        if (!x.clear) continue;
        if (x.lookup) {
          const int64_t rs = row_size(*x.g);
          for (int64_t r : *x.rows) sq += norm(x.g->data() + r * rs, rs);
        } else {
          sq += norm(x.g->data(), x.g->total());
        }
      }
    }
    double gscale = 1.0;
    if (clip) {
      const double nrm = std::sqrt(sq);
      if (!(nrm <= thr)) {
        if (!std::isfinite(nrm)) return false;  // Python's update clears the gradients and raises
        gscale = thr / nrm;
        clipped = true;
      }
      v[K.gbound] = nrm * gscale;  // every |g * gscale| is at most the clipped norm
    } else if (measure) {
      v[K.gbound] = std::sqrt(sq);
    }
    v[K.gscale] = gscale;
    const upd::Hyper hy = upd::Hyper::from(v);
    // the kernel for these values (the fast build's under a small gradient bound), called directly
    // for a whole tensor; a table's touched rows through apply_update
    const upd::StepFn whole = upd::step(rule, hy);
    for (Item& x : items) {
      if (!x.step) {  // frozen: in the norm, then cleared
        clear_frozen(x);
        continue;
      }
      if (x.rowwise) step_rows(rule, x, n_states, hy);
      else whole(x.w->data(), x.g->data(), x.s, x.w->total(), hy, x.clear);
    }
  }

  // ---- the bookkeeping and the counters
  for (Item& x : items) {
    if (!x.clear) continue;
    if (x.lookup) {
      if (PySet_Clear(S.slot_value(x.st, st_touched)) < 0) throw py::error_already_set();
    } else {
      S.set(x.st, st_has_grad, Py_False);
    }
  }
  if (C.counters) {
    counts[Counters::clips] += clipped, counts[Counters::clips_since] += clipped;
    ++counts[Counters::updates], ++counts[Counters::since];
  } else {
    count_by_name(T, clipped);
  }
  if (lam > 0) set_float(scale_slots(), ws.ptr(), 0, f - f * lam);
  if (cyclical) {
    py::object lr = py::reinterpret_steal<py::object>(PyFloat_FromDouble(next_lr));
    if (!lr) throw py::error_already_set();
    T.set(tr_lr, lr.ptr());
    if (C.counters) ++counts[Counters::it];
    else T.set(tr_it, next_it.ptr());
  } else if (C.after) {
    call_after_update(tr);
  }
  return true;
}

PyObject* trainer_step_py(PyObject*, PyObject* tr) {
  // A step reached again from Python code that a step runs (a _hyper(), a property, a __float__
  // calling another trainer's update) declines, and Python's update runs it: the scratch lists
  // are the outer step's.  (The GIL makes this the only way in while a step runs.)
  static bool running = false;
  if (running) Py_RETURN_FALSE;
  struct Running {
    bool& r;
    explicit Running(bool& f) : r(f) { r = true; }
    ~Running() { r = false; }
  } guard(running);
  return guarded([&] { return PyBool_FromLong(step(tr)); });
}

PyMethodDef defs[] = {
    {"trainer_step", trainer_step_py, METH_O,
     "trainer_step(trainer) -> bool: Trainer.update() in C++ when every parameter is on this backend and "
     "no weight decay is set; False (nothing changed) otherwise."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void add_trainer_step(py::module_& m) {
  if (PyModule_AddFunctions(m.ptr(), defs) < 0) throw py::error_already_set();
}

}  // namespace dy
