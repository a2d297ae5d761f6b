"""Leaf ops through the front end: inputs, constants, parameters and lookups.

Leaves have no kernel of their own to compare in isolation: their values come
from host data or parameter storage and their gradients land in storage
(``Backend.iadd``, ``Backend.scatter_add_batch``).  Each scenario below runs
on the backend under test and returns what it read back next to what NumPy
says it must be.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import functions as F
from ..backend import Backend
from ..graph import _cg
from ..params import ParameterCollection
from .compare import compare, tolerance
from .opcheck import coverage, short_error
from .results import CaseResult
from .switch import using

Scenario = Callable[[np.random.Generator], list[tuple[str, np.ndarray, np.ndarray]]]


def _input(rng) -> list:
    a = rng.uniform(-2, 2, (3, 4, 2)).astype(np.float32)
    m = rng.uniform(-2, 2, (2, 3)).astype(np.float32)
    e, u = F.inputTensor(a, batched=True), F.inputTensor(m)
    return [("batched input", _cg.value_array(e.i), a), ("unbatched input", _cg.value_array(u.i), m[..., None])]


def _constant(rng) -> list:
    c = F.constant((3, 2), 0.25, batch_size=2)
    z, o = F.zeros(4), F.ones((1, 3))
    return [("constant", _cg.value_array(c.i), np.full((3, 2, 2), 0.25)),
            ("zeros", _cg.value_array(z.i), np.zeros((4, 1))), ("ones", _cg.value_array(o.i), np.ones((1, 3, 1)))]


def _parameter(rng) -> list:
    w = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
    c = rng.uniform(-1, 1, (3, 4)).astype(np.float32)
    pc = ParameterCollection()
    p, q = pc.parameters_from_numpy(w), pc.parameters_from_numpy(w)
    loss = F.sum_elems(F.cmult(p, F.inputTensor(c))) + F.sum_elems(F.cmult(q.expr(update=False), F.inputTensor(c)))
    value = _cg.value_array(p._check())
    loss.backward()
    return [("parameter value", value, w[..., None]), ("parameter gradient", p.grad_as_array(), c),
            ("constant parameter gradient", q.grad_as_array(), np.zeros_like(c))]


def _lookup(rng) -> list:
    table = rng.uniform(-1, 1, (5, 3)).astype(np.float32)
    c = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
    rows = [2, 0, 2]
    pc = ParameterCollection()
    lp, lq = pc.lookup_parameters_from_numpy(table), pc.lookup_parameters_from_numpy(table)
    e = F.lookup_batch(lp, rows)
    const = F.lookup_batch(lq, rows, update=False)
    loss = F.sum_batches(F.dot_product(e, F.inputTensor(c, batched=True)))
    loss = loss + F.sum_batches(F.dot_product(const, F.inputTensor(c, batched=True)))
    value = _cg.value_array(e.i)
    loss.backward()
    want = np.zeros_like(table)
    for k, r in enumerate(rows):
        want[r] += c[:, k]
    return [("looked-up rows", value, table[rows].T), ("row gradients (repeated row summed)", lp.grad_as_array(), want),
            ("constant lookup gradient", lq.grad_as_array(), np.zeros_like(table))]


SCENARIOS: dict[str, Scenario] = {"input": _input, "constant": _constant, "parameter": _parameter, "lookup": _lookup}
# Ops each scenario needs besides the leaf itself.
NEEDS = {"parameter": ("cmult", "sum_dim", "add"), "lookup": ("dot_product", "sum_dim", "add")}


def check_leaf(be: Backend, name: str) -> CaseResult:
    """Run one leaf scenario on ``be`` and compare what it reads back with the host-side expectation."""
    res = CaseResult("leaf", be.name, name, "front-end")
    for op in (name,) + NEEDS.get(name, ()):
        status, msg = coverage(be, op, False)
        if status is not None:
            res.status = status
            res.messages.append(msg if op == name else f"needs op {op!r}: {msg}")
            return res
    tol = tolerance(be.dtype)
    try:
        with using(be):
            _cg.renew()
            checks = SCENARIOS[name](np.random.default_rng(17))
            _cg.renew()
    except Exception as e:
        res.fail(f"{name}: front-end scenario raised {short_error(e)}")
        return res
    for what, got, want in checks:
        err = compare(got, want, tol)
        res.value = err.worst(res.value)
        if not err.ok:
            note = f"; {err.note}" if err.note else ""
            res.fail(f"{name}: {what} off: max abs err {err.abs:.3g} (tolerance {tol}){note}")
    return res
