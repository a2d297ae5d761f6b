"""A dynet_api backend written from scratch, as a device vendor would start one.

Nothing is inherited from the reference: every method of the contract
(``dynet_api.backend.Backend``) that the front end calls is implemented below,
over plain NumPy float32 arrays standing in for device memory. Replace the
NumPy calls by your device's and keep ``python -m dynet_api verify --backend
minimal_numpy`` passing.

* **Tensors** cross to NumPy in one layout: the data dims, then the batch as the
  last axis (``Dim.shape``). A lookup table is a tensor whose last axis runs over
  its rows.
* **Op kernels** are ``f(xs, a, dim) -> y`` and ``b(xs, y, dy, a, dim, i)
  -> dx_i`` (dx_i shaped like ``xs[i]``). The tables go through
  ``dynet_api.ops.kernels_by_name``, so ``a`` holds the node's attributes by the
  names of the op record (``dynet_api/ops.py``): ``a.c`` for ``scalar_mult``,
  ``a.dims`` and ``a.b`` for ``sum_dim``.
* **Leaf kernels** get their data in the attributes: ``input`` ``a.data`` (an
  array), ``constant`` ``a.value``, ``parameter`` ``a.storage`` and ``lookup``
  ``a.storage`` and ``a.indices`` (its rows), where ``storage.value`` is the
  tensor this backend made; ``a.dim`` is the output's ``Dim``.
* **Trainer rules** arrive through ``update(rule, w, g, states, rows, hyper)``;
  ``hyper`` holds ``lr`` (the step size, Adam's bias correction included),
  ``gscale`` (the clipping scale, multiply g by it) and the rule's constants
  (Adam: ``beta_1``, ``beta_2``, ``eps``).

Everything else of the op table is declared in ``unsupported`` with a reason:
graphs using it fail at construction naming the op and this backend, and
``verify`` lists it as a declared gap instead of a failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dynet_api.backend import Backend
from dynet_api.hookspecs import BackendSpec, hookimpl
from dynet_api.ops import OP_LIST, kernels_by_name
from dynet_api.trainers import RULES as TRAINER_RULES

__version__ = "0.1.0"

F32 = np.float32


def _bc(dy: np.ndarray, nd: int) -> np.ndarray:
    """A per-batch value of shape (1, B) viewed to broadcast over ``nd`` data dims."""
    return dy.reshape((1,) * nd + dy.shape[-1:])


def _unary(f, df):
    """Elementwise op from f(x) and its derivative df(x, y)."""
    return (lambda xs, a, d: f(xs[0]).astype(F32),
            lambda xs, y, dy, a, d, i: (dy * df(xs[0], y)).astype(F32))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _pnls_fwd(xs, a, d):
    x = xs[0].reshape(xs[0].shape[0], -1)  # (classes, batch)
    m = x.max(axis=0, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=0, keepdims=True))
    cols = np.arange(x.shape[1])
    return (lse - x[list(a.indices), cols]).reshape(d.shape).astype(F32)


def _pnls_bwd(xs, y, dy, a, d, i):
    x = xs[0].reshape(xs[0].shape[0], -1)
    m = x.max(axis=0, keepdims=True)
    p = np.exp(x - m)
    p /= p.sum(axis=0, keepdims=True)
    g = p * dy.reshape(1, -1)
    g[list(a.indices), np.arange(x.shape[1])] -= dy.reshape(-1)
    return g.reshape(xs[0].shape).astype(F32)


def _sqnorm_fwd(xs, a, d):
    x = xs[0]
    return (x.reshape(-1, x.shape[-1]).astype(np.float64) ** 2).sum(axis=0).reshape(d.shape).astype(F32)


def _dot_fwd(xs, a, d):
    p = xs[0].astype(np.float64) * xs[1]  # a batch of 1 broadcasts over the other's batch
    return p.reshape(-1, p.shape[-1]).sum(axis=0).reshape(d.shape).astype(F32)


def _dot_bwd(xs, y, dy, a, d, i):
    g = xs[1 - i] * _bc(dy, xs[i].ndim - 1)
    if xs[i].shape[-1] == 1 and g.shape[-1] > 1:  # this operand was broadcast over the batch
        g = g.sum(axis=-1, keepdims=True)
    return g.astype(F32)


def _as_out(x: np.ndarray, d) -> np.ndarray:
    """x with as many data dims as the output (missing ones are 1), for NumPy's broadcasting."""
    nd = len(d.d)
    return x.reshape(x.shape[:-1] + (1,) * (nd - (x.ndim - 1)) + x.shape[-1:])


def _unbroadcast(g: np.ndarray, x: np.ndarray, d) -> np.ndarray:
    """g summed over the axes along which x was broadcast, in x's shape."""
    xo = _as_out(x, d)
    axes = tuple(k for k in range(g.ndim) if xo.shape[k] == 1 and g.shape[k] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(x.shape).astype(F32)


def _add_bwd(xs, y, dy, a, d, i):
    return _unbroadcast(dy, xs[i], d)


def _cmult_bwd(xs, y, dy, a, d, i):
    return _unbroadcast(dy * _as_out(xs[1 - i], d), xs[i], d)


def _sum_dim_keep(x: np.ndarray, a) -> tuple[int, ...]:
    axes = set(a.dims) | ({x.ndim - 1} if a.b else set())
    return tuple(1 if k in axes else n for k, n in enumerate(x.shape))


def _sum_dim_fwd(xs, a, d):
    x = xs[0]
    axes = tuple(a.dims) + ((x.ndim - 1,) if a.b else ())
    return x.astype(np.float64).sum(axis=axes, keepdims=True).reshape(d.shape).astype(F32)


def _sum_dim_bwd(xs, y, dy, a, d, i):
    return np.broadcast_to(dy.reshape(_sum_dim_keep(xs[0], a)), xs[0].shape).astype(F32)


KERNELS = {
    "add": (lambda xs, a, d: (_as_out(xs[0], d) + _as_out(xs[1], d)).reshape(d.shape).astype(F32), _add_bwd),
    "cmult": (lambda xs, a, d: (_as_out(xs[0], d) * _as_out(xs[1], d)).reshape(d.shape).astype(F32), _cmult_bwd),
    "sum_dim": (_sum_dim_fwd, _sum_dim_bwd),
    "dot_product": (_dot_fwd, _dot_bwd),
    "negate": _unary(lambda x: -x, lambda x, y: -1.0),
    "tanh": _unary(np.tanh, lambda x, y: 1.0 - y * y),
    "logistic": _unary(_sigmoid, lambda x, y: y * (1.0 - y)),
    "rectify": _unary(lambda x: np.maximum(x, 0.0), lambda x, y: (x > 0).astype(F32)),  # maximum keeps a NaN
    "exp": _unary(np.exp, lambda x, y: y),
    "log": _unary(np.log, lambda x, y: 1.0 / x),
    "square": _unary(np.square, lambda x, y: 2.0 * x),
    "sqrt": _unary(np.sqrt, lambda x, y: 0.5 / y),
    "scalar_mult": (lambda xs, a, d: (xs[0] * F32(a.c)).astype(F32),
                    lambda xs, y, dy, a, d, i: (dy * F32(a.c)).astype(F32)),
    "squared_norm": (_sqnorm_fwd, lambda xs, y, dy, a, d, i: (2.0 * xs[0] * _bc(dy, xs[0].ndim - 1)).astype(F32)),
    "pickneglogsoftmax": (_pnls_fwd, _pnls_bwd),
}

LEAVES = {
    "input": lambda xs, a, d: np.array(a.data, F32).reshape(d.shape),
    "constant": lambda xs, a, d: np.full(d.shape, a.value, F32),
    # the weights are the stored values times the collection's weight-decay factor
    "parameter": lambda xs, a, d: a.storage.value * a.storage.wscale.factor,
    "lookup": lambda xs, a, d: a.storage.value[..., list(a.indices)] * a.storage.wscale.factor,
}

RULES = ("sgd", "adam")


class MinimalBackend(Backend):
    """Plain NumPy, every contract method written out."""

    name = "minimal_numpy"
    devices = ("CPU",)
    dtype = F32
    # attributes by name: each kernel of an op with attributes receives them as the op's named tuple
    forward_kernels = kernels_by_name({**LEAVES, **{k: f for k, (f, _) in KERNELS.items()}})
    backward_kernels = kernels_by_name({k: b for k, (_, b) in KERNELS.items()}, backward=True)
    unsupported = {
        **{o.name: "not in the minimal template" for o in OP_LIST if o.name not in LEAVES and o.name not in KERNELS},
        # every other trainer rule of the front end's records (a new one is declared here by itself)
        **{f"update:{r}": "the minimal template implements sgd and adam only" for r in TRAINER_RULES if r not in RULES},
    }

    # ---- tensors
    def from_numpy(self, a):
        return np.array(a, dtype=F32)

    def to_numpy(self, t):
        return np.array(t, dtype=F32)

    def zeros(self, shape):
        return np.zeros(shape, F32)

    def ones(self, shape):
        return np.ones(shape, F32)

    def add(self, a, b):
        return a + b

    # ---- automatic batching: operands joined along the batch (last) axis, results sliced back
    def join_batches(self, parts, dim):
        return np.concatenate(parts, axis=-1)

    def batch_slice(self, t, start, stop, dim):
        return t[..., start:stop]

    # ---- parameter storage, in place
    def iadd(self, dst, src):
        dst += src

    def assign(self, dst, a):
        dst[...] = a

    def fill(self, dst, value):
        dst.fill(value)

    def clear_rows(self, dst, rows):
        dst[..., list(rows)] = 0.0

    def scale(self, dst, s, rows=None):
        if rows is None:
            dst *= F32(s)
        else:
            dst[..., list(rows)] *= F32(s)

    def clip(self, dst, left, right):
        np.clip(dst, left, right, out=dst)

    def gather_batch(self, table, rows):
        return table[..., list(rows)]

    def scatter_add_batch(self, dst, rows, src):
        np.add.at(dst, (Ellipsis, list(rows)), src)  # repeated rows add up

    def sq_norm(self, t, rows=None):
        v = (t if rows is None else t[..., list(rows)]).astype(np.float64)
        return float((v * v).sum())

    # ---- trainers
    def update(self, rule: str, w, g, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        sel = (Ellipsis,) if rows is None else (Ellipsis, list(rows))
        grad = g[sel] * F32(hyper["gscale"])
        if rule == "sgd":
            w[sel] -= F32(hyper["lr"]) * grad
        elif rule == "adam":
            m, v = states
            b1, b2 = F32(hyper["beta_1"]), F32(hyper["beta_2"])
            m[sel] = b1 * m[sel] + (1 - b1) * grad
            v[sel] = b2 * v[sel] + (1 - b2) * grad * grad
            w[sel] -= F32(hyper["lr"]) * m[sel] / (np.sqrt(v[sel]) + F32(hyper["eps"]))
        else:
            raise NotImplementedError(f"{self.name}: trainer rule {rule!r} is not implemented")

    def seed(self, seed: int) -> None:
        """No random ops here; a device backend reseeds its generator."""


@hookimpl
def dynet_api_backends():
    return [BackendSpec("minimal_numpy", MinimalBackend, priority=-10,
                        description="minimal from-scratch NumPy backend (plugin template)")]
