// Generated from the trainer records (dynet_api/trainers.py) by `python scripts/gen_update_rules.py`:
// do not edit.  The rules by code, their names and state tensors, and Hyper: the values of `hyper`
// the kernels read (update_rules.h registers the kernels, DY_RULE and DY_TENSOR_RULE).
#pragma once

namespace dy {
namespace upd {

enum Rule : int { sgd, momentum, adagrad, adadelta, rmsprop, adam, amsgrad, eg };
inline constexpr int kRules = 8;
inline constexpr const char* kRuleNames[kRules] = {"sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "amsgrad", "eg"};
inline constexpr int kRuleStates[kRules] = {0, 1, 1, 2, 1, 2, 3, 1};
// Each rule's keys of hyper (bit i: kHyperNames[i], read from the trainer's attribute of that
// name; lr from learning_rate) and its lr_t (0: none, 1: Adam's bias correction, -1: another,
// computed by the trainer's _hyper() in Python).
inline constexpr unsigned kRuleHyper[kRules] = {1, 3, 5, 13, 13, 53, 53, 3};
inline constexpr int kRuleLrT[kRules] = {0, 0, 0, 0, 0, 1, 1, 0};
// Whether the trainer measures the gradient norm as hyper gbound even with clipping off (wants_gbound).
inline constexpr bool kRuleWantsBound[kRules] = {false, false, true, true, true, true, true, false};

// The keys of hyper, in Hyper's order, and the value of a key a trainer does not send.
inline constexpr int kHyperKeys = 9;
inline constexpr const char* kHyperNames[kHyperKeys] = {"lr", "mom", "eps", "rho", "beta_1", "beta_2", "gscale", "wscale", "gbound"};
inline constexpr double kHyperAbsent[kHyperKeys] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, __builtin_inf()};

struct Hyper {
  float lr, mom, eps, rho, beta_1, beta_2, gscale, wscale, gbound;
  float lr_gs;  // lr * gscale, rounded once from double
  // From the doubles of hyper in kHyperNames' order.
  static Hyper from(const double* v) {
    return Hyper{float(v[0]), float(v[1]), float(v[2]), float(v[3]), float(v[4]), float(v[5]), float(v[6]), float(v[7]), float(v[8]), float(v[0] * v[6])};
  }
};

}  // namespace upd
}  // namespace dy
