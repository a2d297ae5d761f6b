"""Random leaf ops: seed determinism, fresh draws, and mean/variance within statistical bounds.

The expected moments come from the op table (``OpDef.moments``); a backend's
samples must match them within ``SIGMAS`` standard errors, the standard error
of the variance being estimated from the sample's own fourth moment.
"""

from __future__ import annotations

import numpy as np

from ..backend import Backend
from ..dim import Dim
from ..ops import OpDef
from .compare import Err
from .opcheck import coverage, short_error
from .results import CaseResult

SIGMAS = 6.0
DIM = Dim((50, 40), 10)  # 20000 draws


def _draw(be: Backend, op: OpDef, attrs: tuple, dim: Dim) -> np.ndarray:
    full = attrs + (dim,)
    return np.asarray(be.to_numpy(be.forward_kernels[op.name]([], full, dim)), dtype=np.float64)


def check_random(be: Backend, op: OpDef, seed: int = 1234) -> CaseResult:
    res = CaseResult("random", be.name, op.name, "seed-moments")
    status, msg = coverage(be, op.name, False)
    if status is not None:
        res.status = status
        res.messages.append(msg)
        return res
    if op.sample_attrs is None or op.moments is None:
        res.fail(f"random op {op.name!r} has no sample_attrs/moments in its op-table entry; add "
                 "sample_attrs=lambda dims: [(attrs without the dim,)] and moments=lambda attrs: (mean, variance)")
        return res
    for attrs in op.sample_attrs([]):
        attrs = tuple(attrs)
        try:
            be.seed(seed)
            a, b = _draw(be, op, attrs, DIM), _draw(be, op, attrs, DIM)
            be.seed(seed)
            a2 = _draw(be, op, attrs, DIM)
            be.seed(seed + 1)
            c = _draw(be, op, attrs, DIM)
        except Exception as e:
            res.fail(f"{op.name}{attrs}: drawing raised {short_error(e)}")
            continue
        if a.shape != DIM.shape:
            res.fail(f"{op.name}{attrs}: value of shape {a.shape}, expected {DIM.shape}")
            continue
        if not np.array_equal(a, a2):
            res.fail(f"{op.name}{attrs}: the same seed gave different values")
        if np.array_equal(a, b):
            res.fail(f"{op.name}{attrs}: two draws after one seed were identical")
        if np.array_equal(a, c):
            res.fail(f"{op.name}{attrs}: different seeds gave identical values")
        mean, var = (float(v) for v in op.moments(attrs))
        n = a.size
        m_hat, v_hat = float(a.mean()), float(a.var())
        m4 = float(((a - m_hat) ** 4).mean())
        se_mean = np.sqrt(var / n)
        se_var = np.sqrt(max(m4 - v_hat * v_hat, 0.0) / n)

        err = Err(max(abs(m_hat - mean), abs(v_hat - var)), abs(v_hat - var) / var if var else 0.0, True)
        if abs(m_hat - mean) > SIGMAS * se_mean + 1e-12:
            err.ok = False
            res.fail(f"{op.name}{attrs}: sample mean {m_hat:.5g}, expected {mean:.5g} (more than {SIGMAS:g} "
                     f"standard errors of {se_mean:.3g} away over {n} draws)")
        if abs(v_hat - var) > SIGMAS * se_var + 1e-12:
            err.ok = False
            res.fail(f"{op.name}{attrs}: sample variance {v_hat:.5g}, expected {var:.5g} (more than {SIGMAS:g} "
                     f"standard errors of {se_var:.3g} away over {n} draws)")
        res.value = err.worst(res.value)
    return res
