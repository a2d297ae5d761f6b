// See update_rules.h: the choice of build, made once from the CPU and DYNET_CPU_EIGEN_ISA; the
// whole-tensor rules; a rule step on a dense tensor or on the rows of a table.
#include "update_rules.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace dy {
namespace upd {

namespace {

bool cpu_has(const std::string& set) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (set == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (set == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  (void)set;
  return false;
}

struct Choice {
  const Kernels* k;
  const Kernels* fast;  // null: exact kernels only
  std::string name;
};

Choice pick(const std::string& want) {
  if (want == "best" && kAvx512 && cpu_has("avx512")) return {kAvx512, kAvx512Fast, "avx512"};
  if (want != "baseline" && kAvx2 && cpu_has("avx2")) return {kAvx2, kAvx2Fast, "avx2"};
  return {kBase, nullptr, "baseline"};
}

Choice first_choice() {
  const char* env = std::getenv("DYNET_CPU_EIGEN_ISA");
  std::string e = env ? env : "";
  return pick(e == "baseline" || e == "avx2" ? e : "best");
}
// Made when the module loads (the builds' tables are constants by then): a step reads it with no
// guard of a function's static (a small update reads it three times).
Choice g_choice = first_choice();
Choice& choice() { return g_choice; }

TensorStepFn g_tensor_steps[kRules];  // DY_TENSOR_RULE's kernels by rule code

}  // namespace

const Kernels& current() { return *choice().k; }

StepFn step(int rule, const Hyper& h) {
  const Choice& c = choice();
  if (c.fast && h.gbound <= kFastBound && c.fast->steps[rule]) return c.fast->steps[rule];
  return c.k->steps[rule];
}
std::string isa() { return choice().name; }
std::string select(const std::string& name) {
  choice() = pick(name == "off" ? "baseline" : name);
  return choice().name;
}

void register_tensor_rule(int rule, TensorStepFn f) { g_tensor_steps[rule] = f; }

std::vector<std::string> rules_with_kernels() {
  std::vector<std::string> out;
  for (int r = 0; r < kRules; ++r)
    if (g_tensor_steps[r] || current().steps[r]) out.emplace_back(kRuleNames[r]);
  return out;
}

int rule_code(const std::string& name) {
  for (int r = 0; r < kRules; ++r)
    if (name == kRuleNames[r] && (g_tensor_steps[r] || current().steps[r])) return r;
  std::string known;
  for (const std::string& n : rules_with_kernels()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("cpu_eigen: unknown update rule '" + name + "'; known: " + known +
                              " (this backend has no kernel for any other trainer rule)");
}

void apply_update(int rule, float* w, float* g, const std::vector<float*>& states, int64_t n, int64_t row_size,
                  const std::vector<int64_t>* rows, const Hyper& h, bool clear) {
  const size_t ns = states.size();
  if (rule < 0 || rule >= kRules) throw std::invalid_argument("cpu_eigen: no update rule has code " + std::to_string(rule));
  if (ns != size_t(kRuleStates[rule]))
    throw std::invalid_argument(std::string("cpu_eigen: update rule '") + kRuleNames[rule] + "' takes " +
                                std::to_string(kRuleStates[rule]) + " state tensors, got " + std::to_string(ns));
  if (const TensorStepFn whole = g_tensor_steps[rule]) {
    if (!rows) {
      whole(w, g, states.data(), n, h);
      if (clear) std::memset(g, 0, size_t(n) * sizeof(float));
      return;
    }
    // the rule spans the chosen rows together: gather, step, scatter
    size_t m = rows->size() * size_t(row_size);
    std::vector<std::vector<float>> tmp(ns + 2, std::vector<float>(m));
    for (size_t j = 0; j < rows->size(); ++j) {
      size_t o = size_t((*rows)[j] * row_size), t = j * size_t(row_size);
      std::memcpy(&tmp[0][t], w + o, size_t(row_size) * sizeof(float));
      std::memcpy(&tmp[1][t], g + o, size_t(row_size) * sizeof(float));
      for (size_t q = 0; q < ns; ++q) std::memcpy(&tmp[2 + q][t], states[q] + o, size_t(row_size) * sizeof(float));
    }
    std::vector<float*> sp;
    for (size_t q = 0; q < ns; ++q) sp.push_back(tmp[2 + q].data());
    whole(tmp[0].data(), tmp[1].data(), sp.data(), int64_t(m), h);
    for (size_t j = 0; j < rows->size(); ++j) {
      size_t o = size_t((*rows)[j] * row_size), t = j * size_t(row_size);
      std::memcpy(w + o, &tmp[0][t], size_t(row_size) * sizeof(float));
      for (size_t q = 0; q < ns; ++q) std::memcpy(states[q] + o, &tmp[2 + q][t], size_t(row_size) * sizeof(float));
      if (clear) std::memset(g + o, 0, size_t(row_size) * sizeof(float));
    }
    return;
  }
  // One vectorised pass per parameter (or per touched row), the gradient cleared as it is read.
  const StepFn step = upd::step(rule, h);
  if (!step)
    throw std::invalid_argument(std::string("cpu_eigen: no kernel for the trainer rule '") + kRuleNames[rule] + "'");
  if (!rows) {
    step(w, g, states.data(), n, h, clear);
    return;
  }
  std::vector<float*> sp(ns);
  for (int64_t r : *rows) {
    int64_t o = r * row_size;
    for (size_t q = 0; q < ns; ++q) sp[q] = states[q] + o;
    step(w + o, g + o, sp.data(), row_size, h, clear);
  }
}

// ---------------------------------------------------------------- the whole-tensor rules

namespace {

// Exponentiated gradient with momentum over n contiguous elements: w stays a softmax of log-weights.
void eg_step(float* w, const float* g0, float* const* s, int64_t n, const Hyper& h) {
  const float c = h.lr_gs, m = h.mom, ws = h.wscale;
  std::vector<float> lw(static_cast<size_t>(n));
  float mx = -INFINITY;
  for (int64_t k = 0; k < n; ++k) {
    s[0][k] = s[0][k] * m - c * g0[k];
    lw[size_t(k)] = std::log(std::max(w[k], 1e-30f)) + s[0][k] * ws;
    mx = std::max(mx, lw[size_t(k)]);
  }
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += (lw[size_t(k)] = std::exp(lw[size_t(k)] - mx));
  for (int64_t k = 0; k < n; ++k) w[k] = float(lw[size_t(k)] / sum);
}
DY_TENSOR_RULE(eg, eg_step);

}  // namespace

}  // namespace upd
}  // namespace dy
