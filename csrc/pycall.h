// Functions that Python calls straight, not through pybind11's dispatcher (a training step's
// executor calls, the trainer step), and the pybind11 objects they are handed: what they share.
#pragma once

#include <pybind11/pybind11.h>

#include <climits>
#include <new>
#include <stdexcept>

#include "common.h"

namespace dy {

namespace py = pybind11;

// In a catch (...) block of a function called straight from Python (not through pybind11's
// dispatcher): the Python error pybind11 would set for the exception in flight.  Its mapping:
// a Python error restored, pybind11's Python exceptions as themselves, std::bad_alloc
// MemoryError, std::out_of_range IndexError, std::overflow_error OverflowError, the other logic
// and range errors ValueError, any other exception RuntimeError.  (cpu_eigen's MemoryLimitError is
// a std::runtime_error that its module's translator makes a MemoryError: so it is here.)
inline void set_python_error() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const MemoryLimitError& e) {
    PyErr_SetString(PyExc_MemoryError, e.what());
  } catch (const std::bad_alloc& e) {
    PyErr_SetString(PyExc_MemoryError, e.what());
  } catch (const std::out_of_range& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const std::overflow_error& e) {
    PyErr_SetString(PyExc_OverflowError, e.what());
  } catch (const std::domain_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::length_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::range_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "Caught an unknown exception!");
  }
}

// f()'s result, or null with the Python error for the C++ exception it threw (set_python_error).
template <class F>
PyObject* guarded(F&& f) {
  try {
    return f();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// An int argument of a method called straight from Python, or false with the TypeError or
// OverflowError set.
inline bool int_arg(PyObject* o, int& out) {
  const long v = PyLong_AsLong(o);
  if (v == -1 && PyErr_Occurred()) return false;
  if (v < INT_MIN || v > INT_MAX) {
    PyErr_SetString(PyExc_OverflowError, "cpu_eigen: an index out of the int range");
    return false;
  }
  out = int(v);
  return true;
}

// The object of pybind11 class T that `o` is (exactly that class, read from its instance without
// the caster's search of the type registry; a subclass through the caster), or null.
template <class T>
T* instance_or_null(PyObject* o) {
  static PyTypeObject* const exact = [] {
    const py::detail::type_info* t = py::detail::get_type_info(typeid(T));
    return t ? t->type : nullptr;
  }();
  if (Py_TYPE(o) == exact) {
    auto* inst = reinterpret_cast<py::detail::instance*>(o);
    if (inst->simple_layout && inst->simple_holder_constructed) return static_cast<T*>(inst->simple_value_holder[0]);
  }
  py::detail::make_caster<T> c;
  if (!c.load(o, false)) return nullptr;
  return &py::detail::cast_op<T&>(c);
}

}  // namespace dy
