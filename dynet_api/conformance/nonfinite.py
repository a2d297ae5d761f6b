"""Non-finite inputs: a backend must give the reference's NaN and Inf pattern.

For each op's first sample, one element of each operand in turn is made NaN,
+Inf or -Inf.  With a NaN input, the backend's forward kernel must put NaN,
+Inf and -Inf exactly where the reference does.  With an infinite input, it
must be non-finite exactly where the reference is (whether a sum of infinities
of both signs reads NaN or Inf depends on the order of evaluation, which
backends may choose).  Finite values agree within the usual tolerance.  This
catches a kernel that hides a NaN (``max(0, NaN)`` is 0 in C++, NaN in NumPy)
or makes one where the reference has none.
"""

from __future__ import annotations

import numpy as np

from ..backend import Backend
from .compare import compare, tolerance
from .opcheck import run_kernels, short_error
from .results import FAIL, UNSUPPORTED, CaseResult
from .samples import Sample, samples

SPECIALS = (("nan", np.nan), ("+inf", np.inf), ("-inf", -np.inf))


def _pattern(y: np.ndarray) -> np.ndarray:
    """0 finite, 1 NaN, 2 +Inf, 3 -Inf, elementwise."""
    return np.select([np.isnan(y), y == np.inf, y == -np.inf], [1, 2, 3], 0)


def _positions(p: np.ndarray, code: int) -> list:
    return [tuple(int(v) for v in ix) for ix in np.argwhere(p == code)[:4]]


def nonfinite_samples(op) -> list[tuple[Sample, int, str, float]]:
    """(sample, operand, label, special value) for the op's first sample."""
    ss = samples(op)
    if not ss:
        return []
    s = ss[0]
    return [(s, k, name, v) for k in range(len(s.dims)) for name, v in SPECIALS]


def check_nonfinite(be: Backend, ref: Backend, op) -> CaseResult:
    """Every (operand, special) case of one op; one result per op."""
    res = CaseResult("nonfinite", be.name, op.name, "nonfinite")
    if op.name not in be.forward_kernels:
        declared = be.unsupported.get(op.name)
        res.status = UNSUPPORTED if declared is not None else FAIL
        res.messages.append(f"no forward kernel for op {op.name!r}" + (f" ({declared})" if declared else ""))
        return res
    tol = tolerance(be.dtype, ref.dtype)
    for s, k, name, v in nonfinite_samples(op):
        xs = [x.astype(np.float32) for x in s.inputs()]
        xs[k].flat[0] = v
        where = f"{op.name} ({s.label}, operand {k}[0] = {name})"
        with np.errstate(all="ignore"):
            try:
                want = run_kernels(ref, s, xs, None, [])["y"]
            except Exception:  # the reference refuses this input: nothing to compare
                continue
            try:
                got = run_kernels(be, s, [x.copy() for x in xs], None, [])["y"]
            except Exception as e:
                res.fail(f"{where}: the reference computes a value, the backend raised {short_error(e)}")
                continue
        pw, pg = _pattern(want), _pattern(got)
        if name != "nan":  # only finite vs non-finite counts (see the module's docstring)
            pw, pg = np.minimum(pw, 1), np.minimum(pg, 1)
        if pw.shape != pg.shape:
            res.fail(f"{where}: shape {pg.shape}, the reference's {pw.shape}")
            continue
        if (pw != pg).any():
            parts = []
            kinds = ((1, "NaN"), (2, "+Inf"), (3, "-Inf")) if name == "nan" else ((1, "a non-finite value"),)
            for code, what in kinds:
                if ((pw == code) != (pg == code)).any():
                    parts.append(f"{what} at {_positions(pg, code)} where the reference has it at "
                                 f"{_positions(pw, code)}")
            res.fail(f"{where}: non-finite pattern differs: " + "; ".join(parts))
            continue
        finite = pw == 0
        if finite.any():
            err = compare(got[finite], want[finite], tol)
            if not err.ok:
                res.fail(f"{where}: finite values off: max abs err {err.abs:.3g}, max rel err {err.rel:.3g}")
    return res
