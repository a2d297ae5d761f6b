"""Autobatching: a forest of independent instances gives the same numbers batched and unbatched.

Per op, several instances share one graph: each applies the op to its own operands (values
drawn per instance, so a wrong split shows), the instances cycle through the op's samples
(different dims and attributes, which must never merge), and a second run makes operand 0 a
parameter shared by the instances of one sample (one weight for the group, its gradient the
sum).  The loss is the sum over instances of ``sum(C_t * y_t)``.  Each instance's value, each
operand's gradient and the shared parameter's gradient must agree between
``renew_cg(autobatching=True)`` and ``False`` on the same backend, within its tolerance.

A mixed forest draws instances from the whole table (seeded): chains of shape-keeping ops over
lookups of repeated rows, inputs, batched beside unbatched operands, shared and distinct
parameters.  A backend that batches by itself is checked the same way (its own switch).
"""

from __future__ import annotations

import numpy as np

from ..backend import Backend
from ..graph import _cg
from ..ops import OP_LIST, OpDef
from .compare import compare, tolerance
from .opcheck import grad_inputs, short_error
from .results import SKIP, UNSUPPORTED, CaseResult
from .samples import Sample, domain_of, draw, samples
from .switch import using

INSTANCES = 6  # instances per forest
SAMPLES = 3  # the op's first samples the instances cycle through
MIXED_SEEDS = tuple(range(6))  # the mixed forests every run checks


def _values(s: Sample, t: int) -> list[np.ndarray]:
    """Instance ``t``'s operands for sample ``s``: drawn in the op's domains, different per instance."""
    rng = np.random.default_rng(s.seed() + 7919 * (t + 1))
    return [draw(rng, d.shape, domain_of(s.op, k), s.op.kinks).astype(np.float32) for k, d in enumerate(s.dims)]


def _upstream(s: Sample, t: int, out) -> np.ndarray:
    rng = np.random.default_rng(s.seed() + 104729 * (t + 1))
    return rng.uniform(-1.0, 1.0, out.shape).astype(np.float32)


def _total(terms: list):
    """The terms' sum with ``+`` (the add op: every backend has it, not every one has esum)."""
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    return loss


def _loss_term(F, y, c):
    """sum(C * y) over every element and the batch: a scalar of batch 1."""
    nd = len(_cg.dims[y.i].d)
    return F.sum_dim(F.cmult(y, F.inputTensor(c, batched=True)), list(range(nd)), b=True)


def _shared_operands(op: OpDef) -> tuple[int, ...]:
    """The operands made parameters shared by the instances: the op's weights, else operand 0."""
    return op.batch_shared or (0,)


def run_forest(be: Backend, cases: list[tuple[Sample, int]], batching: bool, shared: bool) -> dict:
    """Build the forest on ``be`` and return each instance's value and gradients (NumPy); ``shared``
    makes the op's weights (or operand 0) parameters shared by the instances of one sample."""
    from .. import functions as F
    from ..params import ParameterCollection

    out: dict = {}
    with using(be):
        m = ParameterCollection()
        params: dict = {}
        _cg.renew(autobatching=batching)
        ins_all, terms, nodes = [], [], []
        for t, (s, _) in enumerate(cases):
            xs = _values(s, t)
            ins = [F.inputTensor(x, batched=True) for x in xs]
            for k in (_shared_operands(s.op) if shared else ()):
                if (s.id, k) not in params:
                    p = params[(s.id, k)] = m.add_parameters(s.dims[k].d)
                    p.set_value(xs[k].reshape(s.dims[k].d))
                ins[k] = params[(s.id, k)]
            y = _cg.add(s.op, ins, s.attrs)
            nodes.append(y)
            ins_all.append(ins)
            terms.append(_loss_term(F, y, _upstream(s, t, _cg.dims[y.i])))
        loss = _total(terms)
        out["loss"] = np.array(loss.value())
        for t, y in enumerate(nodes):
            out[f"y{t}"] = _cg.value_array(y.i)
        _cg.backward(loss.i, full=True)
        for t, (s, _) in enumerate(cases):
            for k in grad_inputs(s):
                if shared and k in _shared_operands(s.op):
                    continue
                g = _cg.executor.gradient(ins_all[t][k].i)
                out[f"d{t}.x{k}"] = np.zeros(s.dims[k].shape, np.float32) if g is None else be.to_numpy(g)
        for sid, p in params.items():
            out[f"dW[{sid}]"] = p.grad_as_array()
        _cg.renew()
    return out


def _compare(res: CaseResult, on: dict, off: dict, tol, what: str) -> None:
    for key, want in off.items():
        got = on.get(key)
        if got is None:
            res.fail(f"{what}: {key} missing with autobatching on")
            continue
        err = compare(got, want, tol)
        if key.startswith("y") or key == "loss":
            res.value = err.worst(res.value)
        else:
            res.grads[key] = err.worst(res.grads.get(key))
        if not err.ok:
            res.fail(f"{what}: {key} differs with autobatching on: max abs err {err.abs:.3g}, max rel err "
                     f"{err.rel:.3g} (tolerance {tol}){'; ' + err.note if err.note else ''}")


def forest_samples(op: OpDef) -> list[Sample]:
    """The op's first sample, one with the same dims and other attributes (which must not merge
    with it), and ones with other dims."""
    ss = samples(op)
    if not ss:
        return []
    first = ss[0]
    other_attrs = [s for s in ss if s.dims == first.dims and s.attrs != first.attrs][:1]
    other_dims = [s for s in ss if s.dims != first.dims][:SAMPLES - 1 - len(other_attrs)]
    return [first] + other_attrs + other_dims


def forest_cases(op: OpDef) -> list[tuple[Sample, int]]:
    """The instances of an op's forest: its forest samples in turn."""
    ss = forest_samples(op)
    return [(ss[t % len(ss)], t) for t in range(INSTANCES)] if ss else []


def check_autobatch(be: Backend, op: OpDef) -> CaseResult:
    """One op's forests (distinct operands; a shared parameter) batched against unbatched."""
    res = CaseResult("autobatch", be.name, op.name, "forest")
    if not {"add", "cmult", "sum_dim"} <= be.supported_ops():
        res.status = UNSUPPORTED
        res.messages.append("the forest's loss needs add, cmult and sum_dim")
        return res
    if op.name not in be.forward_kernels or op.name not in be.backward_kernels and any(
            grad_inputs(s) for s, _ in forest_cases(op)):
        res.status = UNSUPPORTED
        res.messages.append(f"no kernels for op {op.name!r}")
        return res
    cases = forest_cases(op)
    if not cases:
        res.status = SKIP
        res.messages.append("no samples")
        return res
    res.repro = "; ".join(dict.fromkeys(s.repro() for s, _ in cases))
    tol = tolerance(be.dtype)
    variants = [False]
    if not op.nograd and all(s.dims[k].bd == 1 and len(s.dims[k].d) <= 2
                             for s, _ in cases for k in _shared_operands(op)):
        variants.append(True)
    for shared in variants:
        what = f"{op.name} forest{' with a shared parameter' if shared else ''}"
        try:
            with np.errstate(all="ignore"):
                off = run_forest(be, cases, False, shared)
                on = run_forest(be, cases, True, shared)
        except Exception as e:
            res.fail(f"{what}: raised {short_error(e)}")
            continue
        _compare(res, on, off, tol, what)
    return res


def _chain_ops(be: Backend) -> list[OpDef]:
    """Shape-keeping one-operand ops of the backend with a sample over a plain vector: the links of
    mixed chains."""
    out = []
    for op in OP_LIST:
        if op.nargs == 1 and not op.leaf and op.batch == "map" and op.name in be.backward_kernels:
            s = next((s for s in samples(op) if s.label == "vector"), None)
            if s is not None and op.shape(op, list(s.dims), s.attrs) == s.dims[0]:
                out.append(op)
    return out


def run_mixed(be: Backend, seed: int, batching: bool, n: int = 8) -> dict:
    """A forest of ``n`` instances drawn from the table: lookups of repeated rows, batched and
    unbatched inputs, a shared parameter and distinct ones, then chains of shape-keeping ops.
    Besides the loss and the parameters' gradients, the gradients of the chains' nodes that lead
    to a parameter (read after a plain backward, as a program reads ``e.gradient()``)."""
    from .. import functions as F
    from ..params import ParameterCollection

    rng = np.random.default_rng(seed)
    links = _chain_ops(be)
    vec = {op.name: next(s for s in samples(op) if s.label == "vector") for op in links}
    plan = []
    for _ in range(n):
        start = int(rng.integers(4))
        bd = int(rng.choice([1, 1, 2]))
        chain = [links[int(k)] for k in rng.integers(len(links), size=int(rng.integers(1, 4)))]
        plan.append((start, bd, chain, int(rng.integers(5)), rng.normal(size=(3, bd)).astype(np.float32)))
    out: dict = {}
    with using(be):
        m = ParameterCollection()
        E = m.add_lookup_parameters((5, 3))
        E.init_from_array(np.random.default_rng(seed + 1).normal(size=(5, 3)).astype(np.float32))
        W = m.add_parameters((3, 3))
        W.set_value(np.random.default_rng(seed + 2).normal(size=(3, 3)).astype(np.float32) * 0.5)
        own = [m.add_parameters(3) for _ in range(n)]
        for k, p in enumerate(own):
            p.set_value(np.random.default_rng(seed + 10 + k).normal(size=3).astype(np.float32))
        _cg.renew(autobatching=batching)
        terms = []
        inner = []  # nodes on a path to a parameter: their gradients after a plain backward
        for t, (start, bd, chain, row, xv) in enumerate(plan):
            if start == 0:
                h = F.lookup(E, row) if bd == 1 else F.lookup_batch(E, [row, (row + 1) % 5])
            elif start == 1:
                h = F.inputTensor(xv, batched=True)
            elif start == 2:
                h = W * F.inputTensor(xv, batched=True)
            else:
                h = F.cmult(own[t], F.inputTensor(xv, batched=True))
            for op in chain:
                s = vec[op.name]
                h = _cg.add(op, [h], s.attrs)
                if start != 1:
                    inner.append((f"dh{t}.{len(inner)}", h))
                if op.name in ("exp", "cosh", "sinh"):
                    h = F.tanh(h)  # keep values in the next link's domain and finite
                if domain_of(op, 0) != "any":
                    break
            terms.append(_loss_term(F, h, np.random.default_rng(seed + 100 + t).uniform(
                -1, 1, _cg.dims[h.i].shape).astype(np.float32)))
        loss = _total(terms)
        out["loss"] = np.array(loss.value())
        _cg.backward(loss.i)
        for key, h in inner:  # a batched node's gradient is its part of its group's
            g = _cg.executor.gradient(h.i)
            out[key] = np.zeros(_cg.dims[h.i].shape, np.float32) if g is None else be.to_numpy(g)
        out["dE"] = E.grad_as_array()
        out["dW"] = W.grad_as_array()
        for k, p in enumerate(own):
            out[f"dp{k}"] = p.grad_as_array()
        _cg.renew()
    return out


def check_mixed(be: Backend, seed: int) -> CaseResult:
    """A mixed forest batched against unbatched."""
    res = CaseResult("autobatch", be.name, "mixed", f"seed{seed}")
    need = {"lookup", "matmul", "cmult", "sum_dim", "add", "tanh"}
    if not need <= be.supported_ops():
        res.status = UNSUPPORTED
        res.messages.append(f"the mixed forest needs {sorted(need - be.supported_ops())}")
        return res
    try:
        with np.errstate(all="ignore"):
            off = run_mixed(be, seed, False)
            on = run_mixed(be, seed, True)
    except Exception as e:
        res.fail(f"mixed forest (seed {seed}): raised {short_error(e)}")
        return res
    _compare(res, on, off, tolerance(be.dtype), f"mixed forest (seed {seed})")
    return res


__all__ = ["check_autobatch", "check_mixed", "run_forest", "run_mixed", "MIXED_SEEDS"]
