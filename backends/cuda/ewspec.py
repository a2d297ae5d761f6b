"""The cuda backend's ElementwiseKernels and ReductionKernels, as data.

Each elementwise kernel is one call of a function of ``kernels/elementwise.cuh``
(its preamble), so all the CUDA C lives in ``kernels/`` and the same table
builds CuPy kernels on a GPU (:mod:`.device`), CUDA C kernels for the nvcc
check, and host code for the CPU emulation (:mod:`.cusrc`, :mod:`.hostemu`).
Parameter lists use CuPy's syntax (``"float32 x, float32 y"``); output
parameters are references, so update kernels write the tensors they are given.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from dynet_api.ops import OPS


class EW(NamedTuple):
    ins: str
    outs: str
    op: str


class RED(NamedTuple):
    ins: str
    outs: str
    map: str
    reduce: str
    post: str
    identity: str
    rtype: str  # the C type of the running value


# Unary ops with a CUDA C kernel; an op's attributes (elu's alpha) follow x as float32 parameters
# named and ordered as in its record (dynet_api/ops.py).
UNARY = (
    "tanh", "logistic", "rectify", "elu", "selu", "softsign", "exp", "log", "sqrt",
    "square", "cube", "abs", "log_sigmoid", "erf", "lgamma",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
    "atanh", "silu",
)


def _unary_specs() -> dict[str, EW]:
    out = {}
    for name in UNARY:
        attrs = OPS[name].attrs
        extra_p = "".join(f", float32 {a}" for a in attrs)
        extra_a = "".join(f", {a}" for a in attrs)
        out[f"{name}_f"] = EW(f"float32 x{extra_p}", "float32 y", f"y = dn_{name}_f(x{extra_a})")
        out[f"{name}_b"] = EW(f"float32 x, float32 y, float32 g{extra_p}", "float32 z",
                              f"z = dn_{name}_b(x, y, g{extra_a})")
    return out


_RULE_KERNEL = re.compile(r"DN_F\s+void\s+dn_upd_(\w+)\s*\(([^)]*)\)")


def update_specs(text: str) -> dict[str, EW]:
    """The trainer rules' fused kernels, ``upd_<rule>``: one per ``dn_upd_<rule>`` function of
    ``text`` (``kernels/elementwise.cuh``), its ``float`` parameters the inputs and its ``float&``
    ones the outputs, updated in place (w, then the rule's states)."""
    out = {}
    for rule, plist in _RULE_KERNEL.findall(text):
        ins, outs = [], []
        for p in plist.split(","):
            words = p.replace("&", " & ").split()
            if len(words) not in (2, 3) or words[0] != "float" or (len(words) == 3 and words[1] != "&"):
                raise ValueError(f"cuda backend: dn_upd_{rule}: parameter {p.strip()!r} is not 'float x' or 'float& x'")
            (outs if "&" in words else ins).append(f"float32 {words[-1]}")
        names = ", ".join(q.split()[-1] for q in ins + outs)
        out[f"upd_{rule}"] = EW(", ".join(ins), ", ".join(outs), f"dn_upd_{rule}({names})")
    return out


ELEMENTWISE: dict[str, EW] = {
    **_unary_specs(),
    # Trainer rules, in place on the outputs: every dn_upd_<rule> of the preamble.
    **update_specs((Path(__file__).resolve().parent / "kernels" / "elementwise.cuh").read_text()),
}

REDUCTIONS: dict[str, RED] = {
    # Squared norm in double, for gradient clipping over whole collections.
    "sqnorm64": RED("float32 x", "float64 y", "(double)x * (double)x", "a + b", "y = a", "0", "double"),
}

# CuPy's type names -> C types and NumPy dtype names.
CTYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long"}


def params(spec: str) -> list[tuple[str, str]]:
    """``"float32 x, float64 u"`` -> ``[("float32", "x"), ("float64", "u")]``."""
    out = []
    for p in spec.split(","):
        t, n = p.split()
        if t not in CTYPES:
            raise ValueError(f"unsupported parameter type {t!r} in {spec!r}")
        out.append((t, n))
    return out
