// Small helpers for reading the front end's Python objects with the C API (contract.cpp and
// trainer_step.cpp, the two readers of those objects).
#pragma once

#include <pybind11/pybind11.h>

namespace dy {

namespace py = pybind11;

// An interned name, made once by the caller and kept (never freed: it may outlive the
// interpreter's teardown).
inline PyObject* intern_name(const char* s) {
  PyObject* o = PyUnicode_InternFromString(s);
  if (!o) throw py::error_already_set();
  return o;
}

// o.<name>, or the Python error raised.
inline py::object attr(PyObject* o, PyObject* name) {
  PyObject* v = PyObject_GetAttr(o, name);
  if (!v) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(v);
}

}  // namespace dy
