"""The cuda backend's ElementwiseKernels and ReductionKernels, as data.

Each elementwise kernel is one call of a function of ``kernels/elementwise.cuh``
(its preamble), so all the CUDA C lives in ``kernels/`` and the same table
builds CuPy kernels on a GPU (:mod:`.device`), CUDA C kernels for the nvcc
check, and host code for the CPU emulation (:mod:`.cusrc`, :mod:`.hostemu`).
Parameter lists use CuPy's syntax (``"float32 x, float32 y"``); output
parameters are references, so update kernels write the tensors they are given.
"""

from __future__ import annotations

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


def _update(fn: str, ins: str, outs: str) -> EW:
    names = ", ".join(p.split()[-1] for p in (ins + ", " + outs).split(","))
    return EW(ins, outs, f"{fn}({names})")


ELEMENTWISE: dict[str, EW] = {
    **_unary_specs(),
    # Trainer rules, in place on the outputs.
    "upd_sgd": _update("dn_upd_sgd", "float32 g, float32 s", "float32 w"),
    "upd_momentum": _update("dn_upd_momentum", "float32 g, float32 mom, float32 s", "float32 w, float32 v"),
    "upd_adagrad": _update("dn_upd_adagrad", "float32 g, float32 gs, float32 lr, float32 eps", "float32 w, float32 h"),
    "upd_adadelta": _update("dn_upd_adadelta", "float32 g, float32 gs, float32 rho, float32 omr, float32 eps",
                            "float32 w, float32 hg, float32 hd"),
    "upd_rmsprop": _update("dn_upd_rmsprop", "float32 g, float32 gs, float32 rho, float32 omr, float32 lr, float32 eps",
                           "float32 w, float32 h"),
    "upd_adam": _update("dn_upd_adam", "float32 g, float32 gs, float32 b1, float32 omb1, float32 b2, float32 omb2, "
                        "float32 lr, float32 eps", "float32 w, float32 m, float32 v"),
    "upd_amsgrad": _update("dn_upd_amsgrad", "float32 g, float32 gs, float32 b1, float32 omb1, float32 b2, "
                           "float32 omb2, float32 lr, float32 eps", "float32 w, float32 m, float32 v, float32 vmax"),
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
