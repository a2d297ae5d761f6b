// Attributes of the front end's objects read at the offsets of their classes' object slots.
// A class that keeps what the backend reads often in __slots__ (a parameter's storage, the
// trainers, the collection, WeightScale) or in a C struct's members (the graph's node lists) has
// a member descriptor per name: its offset is learned once per class, and a read is a load
// instead of an attribute lookup (a dozen of those were half of a small update's cost, and a
// parameter leaf's reads most of its forward).  Data descriptors come before the instance dict
// in Python's lookup, so a slot read is what Python reads; any other name, and every name of a
// class that reads or writes its attributes its own way (__getattribute__, __setattr__), is read
// and written as Python does.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <vector>

#include <structmember.h>

#include "pyobj.h"

namespace dy {

// One reader's names (fixed when it is made: a read names its place in the list), with their
// offsets in the last few classes read, each kept while its class is unchanged (its type version
// tag, which CPython renews when an attribute of the class or of a base changes).
class SlotTable {
 public:
  SlotTable(std::initializer_list<const char*> names) {
    for (const char* s : names) names_.push_back(intern_name(s));
    check_size();
  }
  explicit SlotTable(std::vector<PyObject*> names) : names_(std::move(names)) { check_size(); }

  PyObject* name(int k) const { return names_[size_t(k)]; }

  // The place of o's slot k, or null where o's class has no writable object slot of that name.
  [[gnu::always_inline]] PyObject** place(PyObject* o, int k) {
    const Py_ssize_t off = offsets(Py_TYPE(o))[k];
    return off < 0 ? nullptr : reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + off);
  }
  // The value in o's slot k (borrowed), or null when it is not a slot or not set.
  [[gnu::always_inline]] PyObject* slot_value(PyObject* o, int k) {
    PyObject** p = place(o, k);
    return p ? *p : nullptr;
  }
  // o.<name k>: its slot's value when it has one and it is set, else as Python reads it (which
  // also raises the AttributeError of an empty slot).
  [[gnu::always_inline]] py::object get(PyObject* o, int k) {
    if (PyObject* v = slot_value(o, k)) return py::reinterpret_borrow<py::object>(v);
    return attr(o, names_[size_t(k)]);
  }
  // o.<name k> = v, as Python's setattr does.
  void set(PyObject* o, int k, PyObject* v) {
    PyObject** p = place(o, k);
    if (!p) {
      if (PyObject_SetAttr(o, names_[size_t(k)], v) < 0) throw py::error_already_set();
      return;
    }
    PyObject* old = *p;
    Py_INCREF(v);
    *p = v;
    Py_XDECREF(old);
  }

 private:
  static constexpr int kTypes = 4, kNames = 32;
  struct Entry {
    PyTypeObject* type = nullptr;
    unsigned int version = 0;
    int32_t off[kNames];  // in the entry: one cache line fewer to read than a separate array
  };
  void check_size() const {
    if (names_.size() > size_t(kNames)) throw std::logic_error("SlotTable: more than 32 names");
  }
  static bool current(PyTypeObject* t) {
    return t->tp_version_tag != 0 && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG);
  }
  // Class t's offset of every name, -1 where it has no writable object slot of that name.
  [[gnu::always_inline]] const int32_t* offsets(PyTypeObject* t) {
    const Entry& hit = types_[last_];
    if (hit.type == t && hit.version == t->tp_version_tag && current(t)) return hit.off;
    return find(t);
  }
  // offsets() past the last class read: another kept class, or t learned now
  [[gnu::noinline]] const int32_t* find(PyTypeObject* t) {
    for (int i = 0; i < kTypes; ++i) {
      const Entry& e = types_[i];
      if (e.type == t && e.version == t->tp_version_tag && current(t)) {
        last_ = i;
        return e.off;
      }
    }
    last_ = next_;
    next_ = (next_ + 1) % kTypes;
    Entry& e = types_[last_];
    learn(t, e);
    return e.off;
  }
  // Looks each name up in t's MRO as Python's attribute read does, without calling anything
  // (_PyType_Lookup runs no Python code).  The lookup gives the class a version tag if it can have
  // one; without, the entry stays unnamed and is learned again on the next read.
  void learn(PyTypeObject* t, Entry& e) const {
    e.type = nullptr;
    std::fill_n(e.off, kNames, -1);
    const bool generic = t->tp_getattro == PyObject_GenericGetAttr && t->tp_setattro == PyObject_GenericSetAttr;
    for (size_t k = 0; generic && k < names_.size(); ++k) {
      PyObject* d = _PyType_Lookup(t, names_[k]);  // borrowed
      const PyMemberDef* m =
          d && Py_IS_TYPE(d, &PyMemberDescr_Type) ? reinterpret_cast<PyMemberDescrObject*>(d)->d_member : nullptr;
      if (m && m->type == T_OBJECT_EX && !(m->flags & READONLY)) e.off[k] = int32_t(m->offset);
    }
    if (current(t)) {
      e.type = t;
      e.version = t->tp_version_tag;
    }
  }
  std::vector<PyObject*> names_;
  Entry types_[kTypes];
  int last_ = 0, next_ = 0;
};

}  // namespace dy
