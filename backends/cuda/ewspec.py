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


# Unary ops: name -> number of float attributes passed after x (elu's alpha).
UNARY = {
    "tanh": 0, "logistic": 0, "rectify": 0, "elu": 1, "selu": 0, "softsign": 0, "exp": 0, "log": 0, "sqrt": 0,
    "square": 0, "cube": 0, "abs": 0, "log_sigmoid": 0, "erf": 0, "lgamma": 0,
    "sin": 0, "cos": 0, "tan": 0, "asin": 0, "acos": 0, "atan": 0, "sinh": 0, "cosh": 0, "asinh": 0, "acosh": 0,
    "atanh": 0, "silu": 1,
}
# Unary ops whose gradient needs no kernel (zero, or passed straight through).
FORWARD_ONLY = ("round", "ceil", "floor", "sigt")


def _unary_specs() -> dict[str, EW]:
    out = {}
    for name, nattr in UNARY.items():
        attrs = [f"a{k}" for k in range(nattr)]
        extra_p = "".join(f", float32 {a}" for a in attrs)
        extra_a = "".join(f", {a}" for a in attrs)
        out[f"{name}_f"] = EW(f"float32 x{extra_p}", "float32 y", f"y = dn_{name}_f(x{extra_a})")
        out[f"{name}_b"] = EW(f"float32 x, float32 y, float32 g{extra_p}", "float32 z",
                              f"z = dn_{name}_b(x, y, g{extra_a})")
    for name in FORWARD_ONLY:
        out[f"{name}_f"] = EW("float32 x", "float32 y", f"y = dn_{name}_f(x)")
    return out


def _call(fn: str, ins: str, out: str = "float32 z") -> EW:
    names = ", ".join(p.split()[-1] for p in ins.split(","))
    return EW(ins, out, f"{out.split()[-1]} = {fn}({names})")


def _update(fn: str, ins: str, outs: str) -> EW:
    names = ", ".join(p.split()[-1] for p in (ins + ", " + outs).split(","))
    return EW(ins, outs, f"{fn}({names})")


ELEMENTWISE: dict[str, EW] = {
    **_unary_specs(),
    "cdiv_b1": _call("dn_cdiv_b1", "float32 g, float32 a, float32 b"),
    "pick_le": _call("dn_pick_le", "float32 g, float32 a, float32 b"),
    "pick_gt": _call("dn_pick_gt", "float32 g, float32 a, float32 b"),
    "pick_ge": _call("dn_pick_ge", "float32 g, float32 a, float32 b"),
    "pick_lt": _call("dn_pick_lt", "float32 g, float32 a, float32 b"),
    "pow_b0": _call("dn_pow_b0", "float32 g, float32 x, float32 e"),
    "pow_b1": _call("dn_pow_b1", "float32 g, float32 y, float32 x"),
    "moment_b": _call("dn_moment_b", "float32 g, float32 x, float32 c, float32 rm1"),
    "exp_sub": _call("dn_exp_sub", "float32 x, float32 m"),
    "softmax_b": _call("dn_softmax_b", "float32 g, float32 y, float32 s"),
    "log_softmax_b": _call("dn_log_softmax_b", "float32 g, float32 y, float32 s"),
    "exp_diff_mul": _call("dn_exp_diff_mul", "float32 x, float32 y, float32 g"),
    "bll_f": _call("dn_bll_f", "float32 x, float32 t"),
    "bll_b0": _call("dn_bll_b0", "float32 g, float32 x, float32 t"),
    "bll_b1": _call("dn_bll_b1", "float32 g, float32 x"),
    "sqd_b": _call("dn_sqd_b", "float32 a, float32 b, float32 g"),
    "l1_b": _call("dn_l1_b", "float32 a, float32 b, float32 g"),
    "huber_f": _call("dn_huber_f", "float32 a, float32 b, float32 c"),
    "huber_b": _call("dn_huber_b", "float32 a, float32 b, float32 g, float32 c"),
    "bernoulli": _call("dn_bernoulli", "float32 u, float32 p, float32 scale"),
    "gumbel": _call("dn_gumbel", "float64 u, float64 mu, float64 beta"),
    "eg_logw": _call("dn_eg_logw", "float32 w, float32 h"),
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
    "upd_eg_momentum": _update("dn_upd_eg_momentum", "float32 g, float32 mom, float32 s", "float32 h"),
}

REDUCTIONS: dict[str, RED] = {
    "sqsum": RED("float32 x", "float32 y", "x * x", "a + b", "y = a", "0", "float"),
    "dotsum": RED("float32 x, float32 w", "float32 y", "x * w", "a + b", "y = a", "0", "float"),
    "sqdist": RED("float32 x, float32 w", "float32 y", "(x - w) * (x - w)", "a + b", "y = a", "0", "float"),
    "l1dist": RED("float32 x, float32 w", "float32 y", "fabsf(x - w)", "a + b", "y = a", "0", "float"),
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
