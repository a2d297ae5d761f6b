"""Write csrc/update_rules_table.h: the cpu_eigen backend's table of trainer rules, from the records.

    python scripts/gen_update_rules.py           # rewrite csrc/update_rules_table.h
    python scripts/gen_update_rules.py --check   # exit 1 if it is not current

A trainer rule is declared once, by its record in ``dynet_api/trainers.py`` (``RULES``).  The C++
kernels are registered by name (``DY_RULE(adam)`` in csrc/update_rules_impl.h,
``DY_TENSOR_RULE(eg)`` in csrc/update_rules.cpp); this header gives them the rule codes, the
number of state tensors of each rule and ``Hyper``, the ``hyper`` values every rule's kernel may
read (one field per key of any record, then ``gscale`` and ``wscale``).  tests/test_trainer_rules.py
fails when the header is stale, and the backend refuses to load when the module was built from
other records.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEADER = ROOT / "csrc" / "update_rules_table.h"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from gen_op_attrs import cxx_name, write_or_check  # noqa: E402

# What every rule gets besides its record's keys, and the value when a trainer does not send a key.
# gbound: a bound the trainer knows on every |g * gscale| of the update (the clipped gradient norm),
# inf when it knows none; the backend may pick faster, less exact kernels under a small bound.
COMMON_KEYS = ("gscale", "wscale", "gbound")
ABSENT = {"gscale": 1.0, "wscale": 1.0, "gbound": float("inf")}
# The records' lr_t functions that csrc/trainer_step.cpp computes itself, by name, and their codes in
# kRuleLrT (0: no lr_t).  A record with any other lr_t gets -1: the C++ step asks the trainer's
# ``_hyper()`` for that update's values instead.
LR_T_CODES = {"_adam_lr": 1}


def hyper_keys(rules) -> list[str]:
    """The keys of ``hyper`` the kernels may read: every record's, in order of first use, then COMMON_KEYS."""
    keys: list[str] = []
    for r in rules:
        keys += [k for k in r.hyper_keys if k not in keys and k not in COMMON_KEYS]
    return keys + list(COMMON_KEYS)


def _cxx_double(v: float) -> str:
    return "__builtin_inf()" if v == float("inf") else repr(v)


def render(rules) -> str:
    """The header's text for the records ``rules`` (``dynet_api.trainers.RULES.values()``)."""
    rules = list(rules)
    keys = hyper_keys(rules)
    names = ", ".join(f'"{r.name}"' for r in rules)
    quoted = ", ".join(f'"{k}"' for k in keys)
    fields = ", ".join(cxx_name(k) for k in keys)
    values = ", ".join(f"float(v[{i}])" for i in range(len(keys)))
    lr, gs = keys.index("lr"), keys.index("gscale")
    absent = ", ".join(_cxx_double(ABSENT.get(k, 0.0)) for k in keys)
    masks = ", ".join(str(sum(1 << keys.index(k) for k in r.hyper_keys)) for r in rules)
    bounds = ", ".join("true" if r.wants_gbound else "false" for r in rules)
    lr_ts = ", ".join(str(0 if r.lr_t is None else LR_T_CODES.get(r.lr_t.__name__, -1)) for r in rules)
    return "\n".join([
        "// Generated from the trainer records (dynet_api/trainers.py) by `python scripts/gen_update_rules.py`:",
        "// do not edit.  The rules by code, their names and state tensors, and Hyper: the values of `hyper`",
        "// the kernels read (update_rules.h registers the kernels, DY_RULE and DY_TENSOR_RULE).",
        "#pragma once",
        "",
        "namespace dy {",
        "namespace upd {",
        "",
        f"enum Rule : int {{ {', '.join(cxx_name(r.name) for r in rules)} }};",
        f"inline constexpr int kRules = {len(rules)};",
        f"inline constexpr const char* kRuleNames[kRules] = {{{names}}};",
        f"inline constexpr int kRuleStates[kRules] = {{{', '.join(str(r.n_states) for r in rules)}}};",
        "// Each rule's keys of hyper (bit i: kHyperNames[i], read from the trainer's attribute of that",
        "// name; lr from learning_rate) and its lr_t (0: none, 1: Adam's bias correction, -1: another,",
        "// computed by the trainer's _hyper() in Python).",
        f"inline constexpr unsigned kRuleHyper[kRules] = {{{masks}}};",
        f"inline constexpr int kRuleLrT[kRules] = {{{lr_ts}}};",
        "// Whether the trainer measures the gradient norm as hyper gbound even with clipping off (wants_gbound).",
        f"inline constexpr bool kRuleWantsBound[kRules] = {{{bounds}}};",
        "",
        "// The keys of hyper, in Hyper's order, and the value of a key a trainer does not send.",
        f"inline constexpr int kHyperKeys = {len(keys)};",
        f"inline constexpr const char* kHyperNames[kHyperKeys] = {{{quoted}}};",
        f"inline constexpr double kHyperAbsent[kHyperKeys] = {{{absent}}};",
        "",
        "struct Hyper {",
        f"  float {fields};",
        "  float lr_gs;  // lr * gscale, rounded once from double",
        "  // From the doubles of hyper in kHyperNames' order.",
        "  static Hyper from(const double* v) {",
        f"    return Hyper{{{values}, float(v[{lr}] * v[{gs}])}};",
        "  }",
        "};",
        "",
        "}  // namespace upd",
        "}  // namespace dy",
        "",
    ])


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from dynet_api.trainers import RULES

    return write_or_check(HEADER, render(RULES.values()), argv, "scripts/gen_update_rules.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
