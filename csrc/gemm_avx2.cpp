// The matrix products of cpu_eigen compiled for a wider instruction set (AVX2+FMA), as
// a module of its own (dynet_backends.cpu_eigen._gemm_avx2) so that nothing built with
// those flags can be picked by the baseline module.  The backend loads it only when the
// CPU has those instructions; the functions are handed over as capsules.  DY_GEMM_NAME
// and DY_GEMM_INIT name the module (CMake can build it for other flags under other names).
#include <Python.h>

#ifndef DY_GEMM_NAME
#define DY_GEMM_NAME "_gemm_avx2"
#define DY_GEMM_INIT PyInit__gemm_avx2
#endif

#include "gemm_impl.h"

namespace {

void sgemm_acc(int ta, int tb, int64_t m, int64_t n, int64_t k, const float* A, const float* B, float* C) {
  dy::gemm_acc_impl(ta != 0, tb != 0, m, n, k, A, B, C);
}

void set_threads(int n) { Eigen::setNbThreads(n < 1 ? 1 : n); }

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, DY_GEMM_NAME,
                          "cpu_eigen's matrix products built for a wider instruction set (loaded when the CPU has it)", -1,
                          nullptr, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC DY_GEMM_INIT(void) {
  PyObject* m = PyModule_Create(&module_def);
  if (!m) return nullptr;
  PyObject* g = PyCapsule_New(reinterpret_cast<void*>(&sgemm_acc), "dynet_cpu_eigen.gemm", nullptr);
  PyObject* t = PyCapsule_New(reinterpret_cast<void*>(&set_threads), "dynet_cpu_eigen.threads", nullptr);
  if (!g || !t || PyModule_AddObject(m, "sgemm_acc", g) < 0 || PyModule_AddObject(m, "set_threads", t) < 0) {
    Py_XDECREF(g);
    Py_XDECREF(t);
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
