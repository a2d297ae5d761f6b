// The cpu_eigen tensor as Python sees it (_cpu_eigen.Tensor) and the checked ways to take one
// from a Python object; shared by the bindings (module.cpp), the contract reader (contract.cpp)
// and the executor, so that all three name the same type.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "pycall.h"

namespace dy {

namespace py = pybind11;

// The number of values of a NumPy-layout shape; a negative extent raises.
inline int64_t count_of(const std::vector<int64_t>& s) {
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
  explicit Tensor(std::vector<int64_t> sh) : shape(std::move(sh)), buf(size_t(count_of(shape))), s(shape_from(shape)) {}
  float* data() { return buf.data(); }
  int64_t total() const { return int64_t(buf.size()); }
  View view() { return {buf.data(), s}; }
  CView cview() const { return {buf.data(), s}; }
};

using FArray = py::array_t<float, py::array::f_style | py::array::forcecast>;

// `o` as a Tensor, or null for anything else (read from its instance: a parameter leaf and a
// trainer step read several).
inline Tensor* tensor_or_null(PyObject* o) { return instance_or_null<Tensor>(o); }

// `h` as a Tensor, or a TypeError naming the caller (`what`) and the type it got.
inline Tensor& as_tensor(py::handle h, const char* what) {
  if (Tensor* t = tensor_or_null(h.ptr())) return *t;
  throw py::type_error(std::string("cpu_eigen.") + what + ": expected a cpu_eigen Tensor, got " +
                       std::string(py::str(py::type::handle_of(h).attr("__name__"))));
}

// A lookup table's rows are its batch elements (the last axis).
inline int64_t row_size(const Tensor& t) { return t.shape.size() > 1 ? t.total() / t.shape.back() : 1; }
inline int64_t n_rows(const Tensor& t) { return t.shape.size() > 1 ? t.shape.back() : t.total(); }

}  // namespace dy
