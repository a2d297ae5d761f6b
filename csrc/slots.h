// Attributes of the front end's objects read at the offsets of their classes' object slots.
// A class that keeps what the backend reads often in __slots__ (a parameter's storage, the
// trainers, the collection, WeightScale) or in a C struct's members (the graph's node lists) has
// a member descriptor per name: its offset is learned once per class and name, and a read is a
// load instead of an attribute lookup (a dozen of those were half of a small update's cost, and
// a parameter leaf's reads most of its forward).  Data descriptors come before the instance dict
// in Python's lookup, so a slot read is what Python reads; any other name is read as Python does.
#pragma once

#include <structmember.h>

#include "pyobj.h"

namespace dy {

// The offsets, for a few classes at a time: kept while a class is unchanged (its type version
// tag, which CPython renews when an attribute of the class or of a base changes).
class SlotOffsets {
 public:
  Py_ssize_t operator()(PyTypeObject* t, PyObject* name) {
    Entry& e = entry(t);
    for (int i = 0; i < e.n; ++i)
      if (e.name[i] == name) return e.off[i];
    const Py_ssize_t off = learn(t, name);  // may run Python code (a descriptor's __get__)
    if (e.type == t && e.version == t->tp_version_tag && e.n < kNames) {  // e is still t's entry
      e.name[e.n] = name;
      e.off[e.n++] = off;
    }
    return off;
  }

 private:
  static constexpr int kTypes = 4, kNames = 24;
  struct Entry {
    PyTypeObject* type = nullptr;
    unsigned int version = 0;
    int n = 0;
    PyObject* name[kNames];
    Py_ssize_t off[kNames];
  };
  static bool current(PyTypeObject* t) {
    return t->tp_version_tag != 0 && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG);
  }
  Entry& entry(PyTypeObject* t) {
    for (Entry& e : types_)
      if (e.type == t && e.version == t->tp_version_tag && current(t)) return e;
    Entry& e = types_[next_];
    next_ = (next_ + 1) % kTypes;
    e = Entry{};
    // the lookup gives the class a version tag if it can have one; without, the entry stays unnamed
    // and is learned again on each read
    py::object probe = py::reinterpret_steal<py::object>(PyObject_GetAttr(reinterpret_cast<PyObject*>(t), names_probe()));
    if (!probe) PyErr_Clear();
    if (current(t)) {
      e.type = t;
      e.version = t->tp_version_tag;
    }
    return e;
  }
  static PyObject* names_probe() {
    static PyObject* const n = intern_name("__class__");
    return n;
  }
  // The offset of a writable object slot of that name, or -1.
  static Py_ssize_t learn(PyTypeObject* t, PyObject* name) {
    PyObject* d = PyObject_GetAttr(reinterpret_cast<PyObject*>(t), name);
    if (!d) {
      PyErr_Clear();
      return -1;
    }
    const PyMemberDef* m =
        Py_IS_TYPE(d, &PyMemberDescr_Type) ? reinterpret_cast<PyMemberDescrObject*>(d)->d_member : nullptr;
    Py_DECREF(d);
    return m && m->type == T_OBJECT_EX && !(m->flags & READONLY) ? m->offset : -1;
  }
  Entry types_[kTypes];
  int next_ = 0;
};

// o.<name>: its object slot's value when its class has one and it is set, else as Python reads it.
inline py::object slot_attr(PyObject* o, PyObject* name, SlotOffsets& offsets) {
  const Py_ssize_t off = offsets(Py_TYPE(o), name);
  if (off >= 0)
    if (PyObject* v = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + off))
      return py::reinterpret_borrow<py::object>(v);
  return attr(o, name);  // also the AttributeError of an empty slot
}

// o.<name> = v, as Python's setattr does.
inline void slot_set(PyObject* o, PyObject* name, PyObject* v, SlotOffsets& offsets) {
  const Py_ssize_t off = offsets(Py_TYPE(o), name);
  if (off < 0) {
    if (PyObject_SetAttr(o, name, v) < 0) throw py::error_already_set();
    return;
  }
  PyObject** p = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(o) + off);
  PyObject* old = *p;
  Py_INCREF(v);
  *p = v;
  Py_XDECREF(old);
}

}  // namespace dy
