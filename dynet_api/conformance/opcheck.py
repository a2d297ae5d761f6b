"""One op sample on one backend: forward value and every input's gradient against the reference.

The backend under test runs the sample twice: its kernels called directly
(``forward_kernels[op](xs, attrs, dim)``, ``backward_kernels[op](..., i)``) and
through the public front end (input leaves, ``cg.add``, a loss
``sum(C * y)`` whose upstream gradient C is random, ``backward(full=True)``).
The reference's kernels give the expected numbers.  When the backend *is* the
reference, the comparison becomes: graph path against kernel path, float32
against float64, and float64 gradients against central finite differences
(the reference's kernels take NumPy float64 arrays directly).
"""

from __future__ import annotations

import traceback

import numpy as np

from .. import functions as F
from ..backend import Backend
from ..graph import _cg
from .compare import FD_STEP, FD_TOL, compare, tolerance
from .results import FAIL, UNSUPPORTED, CaseResult
from .samples import Sample
from .switch import using


def short_error(e: BaseException) -> str:
    """The exception and where it was raised, in one line for a report."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def grad_inputs(sample: Sample) -> list[int]:
    return [i for i in range(len(sample.dims)) if i not in sample.op.nograd]


def run_kernels(be: Backend, sample: Sample, xs: list[np.ndarray], upstream: np.ndarray | None, grads: list[int]):
    """Forward (and backward for ``grads``) through the backend's kernels; NumPy in, NumPy out."""
    op = sample.op
    dim = op.shape(op, list(sample.dims), sample.attrs)
    ts = [be.from_numpy(x) for x in xs]
    y = be.forward_kernels[op.name](ts, sample.attrs, dim)
    out = {"y": be.to_numpy(y)}
    if upstream is not None:
        dy = be.from_numpy(upstream)
        for i in grads:
            out[i] = be.to_numpy(be.backward_kernels[op.name](ts, y, dy, sample.attrs, dim, i))
    return out


def run_graph(be: Backend, sample: Sample, xs: list[np.ndarray], upstream: np.ndarray | None, grads: list[int]):
    """The same through the front end: input leaves, ``cg.add``, loss = sum(C * y), backward."""
    op = sample.op
    with using(be):
        _cg.renew()
        ins = [F.inputTensor(x, batched=True) for x in xs]
        node = _cg.add(op, ins, sample.attrs)
        out = {"y": _cg.value_array(node.i)}
        if upstream is not None and grads and np.isfinite(out["y"]).all() \
                and {"cmult", "sum_dim"} <= be.supported_ops():
            c = F.inputTensor(upstream, batched=True)
            nd = len(_cg.dims[node.i].d)
            loss = F.sum_dim(F.cmult(node, c), list(range(nd)), b=True)
            _cg.backward(loss.i, full=True)
            for i in grads:
                g = _cg.executor.gradient(ins[i].i)
                out[i] = np.zeros(xs[i].shape) if g is None else be.to_numpy(g)
        _cg.renew()
    return out


def finite_differences(ref: Backend, sample: Sample, xs64: list[np.ndarray], upstream: np.ndarray,
                       mask: np.ndarray, i: int) -> np.ndarray:
    """Central differences of sum(C * y) with respect to input i, in float64."""
    op = sample.op
    dim = op.shape(op, list(sample.dims), sample.attrs)
    f = ref.forward_kernels[op.name]

    def loss(args) -> float:
        y = np.asarray(f(args, sample.attrs, dim), dtype=np.float64)
        return float((np.where(mask, y, 0.0) * upstream).sum())

    x = xs64[i]
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        h = FD_STEP * max(1.0, abs(x[idx]))
        args = list(xs64)
        xp = x.copy()
        xp[idx] += h
        args[i] = xp
        fp = loss(args)
        xm = x.copy()
        xm[idx] -= h
        args[i] = xm
        g[idx] = (fp - loss(args)) / (2 * h)
    return g


def coverage(be: Backend, op_name: str, needs_backward: bool) -> tuple[str | None, str]:
    """(None, "") if the backend has the kernels; else (status, message) for the report."""
    missing = []
    if op_name not in be.forward_kernels:
        missing.append("forward")
    if needs_backward and op_name not in be.backward_kernels:
        missing.append("backward")
    if not missing:
        return None, ""
    declared = be.unsupported.get(op_name)
    if declared is not None:
        return UNSUPPORTED, f"declared unsupported by {be.name}: {declared}"
    return FAIL, (f"coverage: backend {be.name!r} has no {' or '.join(missing)} kernel for op {op_name!r} "
                  f"(declare it in {type(be).__name__}.unsupported if the gap is intended)")


def check_sample(be: Backend, ref: Backend, sample: Sample, *, fd: bool | None = None,
                 graph: bool = True) -> CaseResult:
    """Check one op sample on ``be`` against ``ref``; ``fd`` defaults to on when ``be`` is ``ref``."""
    op = sample.op
    res = CaseResult("op", be.name, op.name, sample.label, repro=sample.repro())
    grads = grad_inputs(sample)
    status, msg = coverage(be, op.name, bool(grads))
    if status is not None:
        res.status = status
        res.messages.append(msg)
        return res
    same = be is ref
    fd = same if fd is None else fd
    xs64 = sample.inputs()
    xs32 = [x.astype(np.float32) for x in xs64]
    dim = op.shape(op, list(sample.dims), sample.attrs)

    # Expected values: the reference's kernels in float32.
    try:
        want = run_kernels(ref, sample, xs32, None, [])
        mask = np.isfinite(want["y"])
        upstream = np.where(mask, sample.upstream(dim), 0.0)
        want = run_kernels(ref, sample, xs32, upstream.astype(np.float32), grads)
    except Exception as e:  # the reference itself failed: report it against the reference
        res.fail(f"reference {ref.name!r} failed on this sample: {short_error(e)}")
        return res
    if want["y"].shape != dim.shape:
        res.fail(f"reference forward returned shape {want['y'].shape}, the shape rule says {dim.shape}")
    tol = tolerance(be.dtype, ref.dtype)

    def record(path: str, got: dict) -> None:
        for key, w in [("y", want["y"])] + [(i, want[i]) for i in grads]:
            if key not in got:
                continue
            err = compare(got[key], w, tol)
            what = "value" if key == "y" else f"gradient of input {key}"
            if key == "y":
                res.value = err.worst(res.value)
            else:
                res.grads[f"x{key}"] = err.worst(res.grads.get(f"x{key}"))
            if not err.ok:
                res.fail(f"{op.name} ({sample.label}): {what} off on the {path} path: max abs err {err.abs:.3g}, "
                         f"max rel err {err.rel:.3g} (tolerance {tol}){'; ' + err.note if err.note else ''}")

    up32 = upstream.astype(np.float32)
    if not same:
        try:
            record("kernel", run_kernels(be, sample, xs32, up32, grads))
        except Exception as e:
            res.fail(f"{op.name} ({sample.label}): kernel raised {short_error(e)}")
    if graph:
        try:
            record("graph", run_graph(be, sample, xs32, up32, grads))
        except Exception as e:
            res.fail(f"{op.name} ({sample.label}): front-end graph raised {short_error(e)}")
    if fd:
        _check_float64(ref, sample, xs64, upstream, mask, grads, res)
    return res


def _check_float64(ref: Backend, sample: Sample, xs64, upstream, mask, grads, res: CaseResult) -> None:
    """The reference in float64: its float32 results agree, its gradients match finite differences."""
    op = sample.op
    try:
        f64 = run_kernels_f64(ref, sample, xs64, upstream, grads)
    except Exception as e:
        res.fail(f"{op.name} ({sample.label}): reference kernels failed on float64 input: {short_error(e)}")
        return
    tol32 = tolerance(np.float32)
    f32 = run_kernels(ref, sample, [x.astype(np.float32) for x in xs64], upstream.astype(np.float32), grads)
    for key in ["y"] + grads:
        err = compare(f32[key], f64[key], tol32)
        name = "value" if key == "y" else f"gradient of input {key}"
        if key == "y":
            res.value = err.worst(res.value)
        else:
            res.grads[f"x{key}"] = err.worst(res.grads.get(f"x{key}"))
        if not err.ok:
            res.fail(f"{op.name} ({sample.label}): float32 {name} loses precision against float64: "
                     f"max abs err {err.abs:.3g}, max rel err {err.rel:.3g}")
    if not op.smooth:
        return
    for i in grads:
        num = finite_differences(ref, sample, xs64, upstream, mask, i)
        err = compare(f64[i], num, FD_TOL)
        res.fd[f"x{i}"] = err
        if not err.ok:
            res.fail(f"{op.name} ({sample.label}): gradient of input {i} disagrees with central finite differences: "
                     f"max abs err {err.abs:.3g}, max rel err {err.rel:.3g} (tolerance {FD_TOL})")


def run_kernels_f64(ref: Backend, sample: Sample, xs64, upstream, grads) -> dict:
    """The reference's kernels called on float64 NumPy arrays (no conversion to its dtype)."""
    op = sample.op
    dim = op.shape(op, list(sample.dims), sample.attrs)
    xs = [np.array(x, dtype=np.float64) for x in xs64]
    y = ref.forward_kernels[op.name](xs, sample.attrs, dim)
    out = {"y": np.asarray(y, dtype=np.float64)}
    up = np.asarray(upstream, dtype=np.float64)
    for i in grads:
        out[i] = np.asarray(ref.backward_kernels[op.name](xs, y, up, sample.attrs, dim, i), dtype=np.float64)
    return out


