"""Edge cases: random shapes and attributes must be rejected cleanly or computed at the inferred shape.

For an op, random operand dims and attributes (valid samples perturbed, or
drawn at random) go through the front end.  Acceptable outcomes: the graph
refuses the node with a ValueError (DimError), IndexError or TypeError whose
message names the op; or it builds it, and the forward value has exactly the
shape the shape rule inferred, and every input's gradient has that input's
shape.  Anything else (another exception, a crash inside a kernel after the
rule accepted, a wrong shape) is a failure.  The generator here uses NumPy;
:mod:`dynet_api.conformance.strategies` draws the same cases with hypothesis.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..backend import Backend
from ..dim import MAX_DIMS, Dim
from ..graph import _cg
from ..ops import ATTR_DOMAINS, OP_LIST, OpDef
from .opcheck import short_error
from .results import CaseResult
from .samples import domain_of, draw, samples
from .switch import using

REJECTIONS = (ValueError, IndexError, TypeError)  # DimError is a ValueError


def edge_case(be: Backend, op: OpDef, dims: list[Dim], attrs, seed: int = 0) -> str | None:
    """None when the outcome is acceptable, else a message saying what went wrong."""
    rng = np.random.default_rng(seed)
    xs = [draw(rng, d.shape, domain_of(op, k), op.kinks).astype(np.float32) for k, d in enumerate(dims)]
    shown = f"{op.name} with dims [{' '.join(map(repr, dims))}] and attrs {attrs!r}"
    with using(be):
        _cg.renew()
        try:
            ins = [F.inputTensor(x, batched=True) for x in xs]
            try:
                node = _cg.add(op, ins, attrs)
            except REJECTIONS as e:
                if op.name.lower() not in str(e).lower():
                    return f"{shown}: rejected with {type(e).__name__} that does not name the op: {e}"
                return None
            except NotImplementedError:
                return None  # the coverage check reports missing kernels
            except Exception as e:
                return f"{shown}: graph construction crashed: {short_error(e)}"
            dim = _cg.dims[node.i]
            try:
                y = _cg.value_array(node.i)
            except Exception as e:
                return f"{shown}: the shape rule accepted it (dim {dim}) but forward raised {short_error(e)}"
            if y.shape != dim.shape:
                return f"{shown}: value of shape {y.shape}, the shape rule inferred {dim} (shape {dim.shape})"
            return _grad_shapes(be, op, xs, y, attrs, dim, shown)
        finally:
            _cg.renew()


def _grad_shapes(be: Backend, op: OpDef, xs, y, attrs, dim: Dim, shown: str) -> str | None:
    bwd = be.backward_kernels.get(op.name)
    if bwd is None:
        return None
    ts = [be.from_numpy(x) for x in xs]
    yt, dy = be.from_numpy(y), be.from_numpy(np.ones(dim.shape, np.float32))
    for i in range(len(xs)):
        if i in op.nograd:
            continue
        try:
            g = be.to_numpy(bwd(ts, yt, dy, attrs, dim, i))
        except Exception as e:
            return f"{shown}: backward for input {i} raised {short_error(e)}"
        if g.shape != xs[i].shape:
            return f"{shown}: gradient of input {i} has shape {g.shape}, expected {xs[i].shape}"
    return None


# ---------------------------------------------------------------- NumPy generator


def random_dim(rng: np.random.Generator) -> Dim:
    """1 to MAX_DIMS data dims (DyNet's 7), small ones when there are more than 4."""
    nd = int(rng.integers(1, MAX_DIMS + 1))
    return Dim(tuple(int(n) for n in rng.integers(1, 5 if nd <= 4 else 3, nd)), int(rng.choice([1, 1, 2, 3])))


def mutate(v, rng: np.random.Generator):
    """A nearby, possibly invalid, attribute value of the same kind."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, np.integer)):
        return int(rng.integers(-2, 6))
    if isinstance(v, float):
        return v
    if isinstance(v, Dim):
        return random_dim(rng)
    if isinstance(v, tuple):
        if v and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            return tuple(int(x) for x in rng.integers(-1, MAX_DIMS + 2, int(rng.integers(0, 4))))
        return tuple(mutate(x, rng) for x in v)
    return v


def random_case(op: OpDef, rng: np.random.Generator) -> tuple[list[Dim], tuple | None] | None:
    """Random operand dims and attributes for op, near a valid sample half of the time."""
    base = samples(op)
    if base and rng.random() < 0.5:
        s = base[int(rng.integers(len(base)))]
        dims = list(s.dims)
        k = int(rng.integers(len(dims)))
        d = dims[k]
        nd = list(d.d)
        nd[int(rng.integers(len(nd)))] = int(rng.integers(1, 5))
        dims[k] = Dim(tuple(nd), d.bd if rng.random() < 0.7 else int(rng.integers(1, 4)))
    else:
        n = op.nargs if op.nargs >= 0 else int(rng.integers(1, 4))
        first = random_dim(rng)
        dims = [first if rng.random() < 0.5 else random_dim(rng) for _ in range(n)]
    attrs = None
    if op.attrs:
        if op.sample_attrs is None:
            return None
        try:
            opts = [tuple(a) for a in op.sample_attrs(dims)]
        except (IndexError, ValueError, TypeError):
            opts = [tuple(a) for a in op.sample_attrs(list(base[0].dims))] if base else []
        if not opts:
            return None
        attrs = opts[int(rng.integers(len(opts)))]
        if rng.random() < 0.5:
            attrs = tuple(mutate(v, rng) if rng.random() < 0.5 else v for v in attrs)
    return dims, attrs


def check_edges(be: Backend, op: OpDef, examples: int = 20, seed: int = 0) -> CaseResult:
    """``examples`` random cases of op; every unacceptable outcome is listed."""
    res = CaseResult("edge", be.name, op.name, "edge")
    if op.name not in be.forward_kernels:
        res.status = "skip"
        res.messages.append("no kernel (see coverage)")
        return res
    rng = np.random.default_rng(seed + op.id)
    for k in range(examples):
        case = random_case(op, rng)
        if case is None:
            res.status = "skip"
            res.messages.append(f"op {op.name!r} has attributes but no sample_attrs to perturb")
            return res
        msg = edge_case(be, op, case[0], case[1], seed=k)
        if msg is not None:
            res.fail(msg)
            if len(res.messages) >= 3:
                break
    return res


def attr_domain_ops() -> list[OpDef]:
    return [o for o in OP_LIST if o.attr_domains]


def check_attr_domains(be: Backend, op: OpDef) -> CaseResult:
    """Each declared attribute domain: an out-of-domain value and NaN must be refused with a
    ValueError naming the op, on this backend, before any kernel runs."""
    res = CaseResult("edge", be.name, op.name, "attr-domains")
    if op.name not in be.forward_kernels:
        res.status = "skip"
        res.messages.append("no kernel (see coverage)")
        return res
    if op.leaf:
        dim = Dim((3,), 2)
        base = [tuple(a) + (dim,) for a in op.sample_attrs([])]
        dims: list[Dim] = []
    else:
        s = samples(op)[0]
        base, dims = [s.attrs], list(s.dims)
    for attr, dom in op.attr_domains:
        k = op.attrs.index(attr)
        for bad in (ATTR_DOMAINS[dom][2], float("nan")):
            attrs = base[0][:k] + (bad,) + base[0][k + 1:]
            shown = f"{op.name} with {attr} = {bad!r}"
            with using(be):
                _cg.renew()
                try:
                    if op.leaf:
                        _cg.add_leaf(op, attrs).npvalue()
                    else:
                        rng = np.random.default_rng(0)
                        ins = [F.inputTensor(draw(rng, d.shape, domain_of(op, i), op.kinks).astype(np.float32),
                                             batched=True) for i, d in enumerate(dims)]
                        _cg.value_array(_cg.add(op, ins, attrs).i)
                    res.fail(f"{shown}: accepted; its declared domain is {ATTR_DOMAINS[dom][1]}")
                except ValueError as e:
                    if op.name not in str(e) or attr not in str(e):
                        res.fail(f"{shown}: refused with a message that does not name the op and {attr}: {e}")
                except Exception as e:
                    res.fail(f"{shown}: {short_error(e)} instead of a ValueError")
                finally:
                    _cg.renew()
    return res
