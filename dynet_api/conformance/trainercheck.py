"""One trainer's updates on a backend against the same updates on the reference.

The same parameters (a matrix, a vector and a lookup table) and the same
gradients (from a loss linear in the parameters, so the gradients are known
constants; rows looked up with a repetition) go through two ``update()`` calls:
the first under the clipping threshold, the second over it and with other
rows, so that a sparse update must leave the first step's rows alone.  Sparse lookup
updates are checked on their own case, dense updates with weight decay on
another.  Then a gradient with an Inf in it must be refused (RuntimeError) and
cleared by the backend, so that a third, finite update gives the reference's values.
"""

from __future__ import annotations

import inspect

import numpy as np

from .. import functions as F
from .. import trainers as T
from ..backend import Backend
from ..graph import _cg
from ..params import ParameterCollection
from .compare import TRAINER_TOL, compare, tolerance
from .opcheck import short_error
from .results import UNSUPPORTED, CaseResult
from .switch import using

ROWS = ([1, 3, 1], [0, 3, 0])  # looked up in update 1, in update 2 (row 1 must then stay put if sparse)
VARIANTS = ("sparse", "dense")


def trainer_classes() -> list[type]:
    """Every concrete trainer of :mod:`dynet_api.trainers` (Trainer subclasses, recursively)."""
    out, todo = [], [T.Trainer]
    while todo:
        cls = todo.pop(0)
        for sub in cls.__subclasses__():
            if sub.__module__ == T.__name__ and not inspect.isabstract(sub) and sub not in out:
                out.append(sub)
                todo.append(sub)
    return out


def _data():
    rng = np.random.default_rng(99)
    f = np.float32
    return {
        "W": rng.uniform(0.2, 1.0, (3, 4)).astype(f), "b": rng.uniform(0.2, 1.0, (3,)).astype(f),
        "L": rng.uniform(0.2, 1.0, (5, 3)).astype(f),
        "cW": rng.uniform(-1, 1, (3, 4)).astype(f), "cb": rng.uniform(-1, 1, (3,)).astype(f),
        "cL": rng.uniform(-1, 1, (3, 3)).astype(f),
    }


def run_trainer(cls: type, variant: str) -> dict[str, np.ndarray]:
    """Two updates of ``cls`` on the process's backend (config); parameter values after each."""
    d = _data()
    pc = ParameterCollection()
    W, b = pc.parameters_from_numpy(d["W"]), pc.parameters_from_numpy(d["b"])
    L = pc.lookup_parameters_from_numpy(d["L"])
    if variant == "dense":
        pc.set_weight_decay(1e-3)
    tr = cls(pc)
    tr.set_sparse_updates(variant == "sparse")
    out = {}
    for step, scale in enumerate((0.5, 4.0)):  # gradient norm about 1.5, then about 12 (> threshold 5: clipped)
        _cg.renew()
        loss = F.dot_product(W, F.inputTensor(d["cW"] * scale)) + F.dot_product(b, F.inputTensor(d["cb"] * scale))
        rows = F.lookup_batch(L, ROWS[step])
        loss = loss + F.sum_batches(F.dot_product(rows, F.inputTensor(d["cL"] * scale, batched=True)))
        loss.backward()
        tr.update()
        out[f"W after update {step + 1}"] = W.as_array()
        out[f"b after update {step + 1}"] = b.as_array()
        out[f"lookup table after update {step + 1}"] = L.as_array()
    _cg.renew()
    bad = d["cW"] * 0.5
    bad[0, 0] = np.inf
    loss = F.dot_product(W, F.inputTensor(bad)) + F.sum_batches(
        F.dot_product(F.lookup_batch(L, ROWS[0]), F.inputTensor(d["cL"], batched=True)))
    loss.backward()
    try:
        tr.update()
    except RuntimeError:
        pass
    else:
        raise AssertionError("an update with an Inf gradient was not refused")
    _cg.renew()  # the refused gradients must be gone: this update sees only b's
    F.dot_product(b, F.inputTensor(d["cb"])).backward()
    tr.update()
    out["W after a refused then a finite update"] = W.as_array()
    out["b after a refused then a finite update"] = b.as_array()
    out["lookup table after a refused then a finite update"] = L.as_array()
    _cg.renew()
    return out


def check_trainer(be: Backend, ref: Backend, cls: type, variant: str) -> CaseResult:
    res = CaseResult("trainer", be.name, cls.__name__, variant)
    rule = getattr(cls, "rule", "?")
    declared = be.unsupported.get(f"update:{rule}")
    if declared is not None:
        res.status = UNSUPPORTED
        res.messages.append(f"declared unsupported by {be.name}: {declared}")
        return res
    try:
        with using(ref):
            want = run_trainer(cls, variant)
    except Exception as e:
        res.fail(f"{cls.__name__} ({variant}) failed on the reference {ref.name!r}: {short_error(e)}")
        return res
    try:
        with using(be):
            got = run_trainer(cls, variant)
    except Exception as e:
        res.fail(f"{cls.__name__} (rule {rule!r}, {variant}) raised {short_error(e)}")
        return res
    tol = tolerance(be.dtype, ref.dtype)
    tol = type(tol)(max(tol.atol, TRAINER_TOL.atol), max(tol.rtol, TRAINER_TOL.rtol))
    if variant == "sparse":  # rows never looked up keep their initial values
        untouched = [r for r in range(len(_data()["L"])) if r not in ROWS[0] + ROWS[1]]
        for key in [k for k in got if k.startswith("lookup")]:
            if not np.array_equal(got[key][untouched], _data()["L"][untouched]):
                res.fail(f"{cls.__name__} (rule {rule!r}, sparse): {key}: rows {untouched}, never looked up, changed")
    for key, w in want.items():
        err = compare(got[key], w, tol)
        res.value = err.worst(res.value)
        if not err.ok:
            res.fail(f"{cls.__name__} (rule {rule!r}, {variant}): {key} off: max abs err {err.abs:.3g}, "
                     f"max rel err {err.rel:.3g} (tolerance {tol})")
    return res
