// Trainer rule steps on contiguous floats.  The rules, their state counts and Hyper come from the
// trainer records (update_rules_table.h, generated); each rule's kernel is registered next to its
// body: an elementwise rule with DY_RULE (update_rules_impl.h, compiled once per vector
// instruction set, like the thin products, and picked at run time from the CPU;
// DYNET_CPU_EIGEN_ISA=avx2 caps the choice, =baseline keeps the portable build), a rule over the
// whole tensor with DY_TENSOR_RULE (update_rules.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "update_rules_table.h"

namespace dy {
namespace upd {

// One elementwise rule's step over n elements (w, g and the states at the same offset); with
// clear, each gradient element is zeroed as it is read, so the clear costs no pass of its own.
using StepFn = void (*)(float* w, float* g, float* const* s, int64_t n, const Hyper& h, bool clear);
// A whole-tensor rule's step over n elements (the rows of a sparse update gathered together).
using TensorStepFn = void (*)(float* w, const float* g, float* const* s, int64_t n, const Hyper& h);
// sum of p[k]^2 over n elements: float partial sums of a few dozen squares, added in double.
using NormFn = double (*)(const float* p, int64_t n);

struct Kernels {
  const StepFn* steps;  // by rule code; null: no elementwise kernel for that rule
  NormFn sq_norm;
};

// The per-instruction-set builds (update_rules_isa.cpp); absent ones are null.  The Fast builds
// take square roots and quotients from reciprocal estimates (within 2 ulp) and assume finite
// values: step() uses them only while every |g * gscale| is at most kFastBound (hyper gbound),
// which keeps every state of the rules far from overflow.
extern const Kernels* const kBase;
extern const Kernels* const kAvx512;
extern const Kernels* const kAvx2;
extern const Kernels* const kAvx512Fast;
extern const Kernels* const kAvx2Fast;
inline constexpr double kFastBound = 1e9;

const Kernels& current();
// The elementwise kernel of `rule` for an update with these hyper values: the current build's
// fast one under a small gradient bound, else its exact one (null: the rule has none).
StepFn step(int rule, const Hyper& h);
std::string isa();                       // "avx512", "avx2" or "baseline"
std::string select(const std::string&);  // "best", "avx2" or "baseline"; returns what it got

// DY_TENSOR_RULE's registrations (update_rules.cpp).
void register_tensor_rule(int rule, TensorStepFn f);
struct TensorRuleRegistration {
  TensorRuleRegistration(int rule, TensorStepFn f) { register_tensor_rule(rule, f); }
};
// Registers a whole-tensor rule's kernel, written right after it: DY_TENSOR_RULE(eg, eg_step);
#define DY_TENSOR_RULE(NAME, FN) const ::dy::upd::TensorRuleRegistration dy_tensor_rule_##NAME(::dy::upd::NAME, FN)

// The code of the rule called `name` if this backend has a kernel for it; otherwise
// std::invalid_argument naming the rule, the backend and the rules it has.
int rule_code(const std::string& name);
// The rules with a kernel (in the current build for the elementwise ones), in code order.
std::vector<std::string> rules_with_kernels();

// One rule step on raw buffers (dense when rows is null; else the rows of row_size elements).
// With clear, the gradient is zeroed over the stepped elements in the same pass (all of it when
// dense).  states must hold the rule's number of state tensors (std::invalid_argument otherwise).
void apply_update(int rule, float* w, float* g, const std::vector<float*>& states, int64_t n, int64_t row_size,
                  const std::vector<int64_t>* rows, const Hyper& h, bool clear);

}  // namespace upd
}  // namespace dy
