// Trainer rule steps on contiguous floats, compiled once per vector instruction set
// (update_rules_isa.cpp, like the thin products) and picked at run time from the CPU;
// DYNET_CPU_EIGEN_ISA=avx2 caps the choice, =baseline keeps the portable build.
#pragma once

#include <cstdint>
#include <string>

namespace dy {
namespace upd {

enum Rule : int { sgd, momentum, adagrad, adadelta, rmsprop, adam, amsgrad };

struct Hyper {
  float lr, gs, lr_gs, mom, eps, rho, b1, b2;  // lr_gs: lr * gs rounded once from double
  float ws;  // momentum and adadelta: the step's factor, 1 / the lazy weight-decay scale (else 1)
};

// One rule step over n elements (w, g and the states at the same offset); with clear, each
// gradient element is zeroed as it is read, so the clear costs no pass of its own.
using StepFn = void (*)(int rule, float* w, float* g, float* const* s, int64_t n, const Hyper& h, bool clear);
// sum of p[k]^2 over n elements, accumulated in double.
using NormFn = double (*)(const float* p, int64_t n);

struct Kernels {
  StepFn step;
  NormFn sq_norm;
};

// The per-instruction-set builds (update_rules_isa.cpp); absent ones are null.
extern const Kernels* const kBase;
extern const Kernels* const kAvx512;
extern const Kernels* const kAvx2;

const Kernels& current();
std::string isa();                       // "avx512", "avx2" or "baseline"
std::string select(const std::string&);  // "best", "avx2" or "baseline"; returns what it got

}  // namespace upd
}  // namespace dy
