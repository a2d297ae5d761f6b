"""The NumPy reference backend, registered through the ``dynet_api.backends`` entry point
exactly as a third-party plugin would be."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dynet_api.backend import Backend
from dynet_api.hookspecs import BackendSpec, hookimpl

from . import kernels
from .memory import BudgetedExecutor, MemoryBudget
from .updates import Updates

F32 = np.float32


class ReferenceNumpyBackend(Backend):
    name = "reference_numpy"
    devices = ("CPU",)
    dtype = F32
    forward_kernels = kernels.FWD
    backward_kernels = kernels.BWD
    # Front-end autobatching (DyNet's agenda) unless the program says otherwise: it never lost on the
    # single-instance benchmark tasks and wins 2-5x on many instances per graph (README).
    autobatch_default = True

    _budget: MemoryBudget | None = None

    @property
    def budget(self) -> MemoryBudget:
        """The ``--dynet-mem`` budget, made on first use (subclasses need not call __init__)."""
        b = self._budget
        if b is None:
            b = self._budget = MemoryBudget(self.name)
            b.configure()
        return b

    def configure(self) -> None:
        """Apply the ``mem`` setting (``--dynet-mem``)."""
        self.budget.configure()

    def make_executor(self, graph):
        self.configure()
        return BudgetedExecutor(graph, self)

    def join_batches(self, parts, dim):
        return np.concatenate(parts, axis=-1)

    def batch_slice(self, t, start, stop, dim):
        return t[..., start:stop]

    def from_numpy(self, a):
        return self.budget.track(np.array(a, dtype=self.dtype))

    def to_numpy(self, t):
        return np.array(t, dtype=self.dtype)

    def zeros(self, shape):
        return self.budget.track(np.zeros(shape, self.dtype))

    def ones(self, shape):
        return self.budget.track(np.ones(shape, self.dtype))

    def add(self, a, b):
        return a + b

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
            dst *= s
        else:
            dst[..., list(rows)] *= s

    def clip(self, dst, left, right):
        np.clip(dst, left, right, out=dst)

    def gather_batch(self, table, rows):
        return table[..., list(rows)]

    def scatter_add_batch(self, dst, rows, src):
        rows = list(rows)
        if len(set(rows)) == len(rows):  # no repeats: one fancy-indexed add (np.add.at is slow)
            dst[..., rows] += src
        else:
            np.add.at(dst, (Ellipsis, rows), src)

    def sq_norm(self, t, rows=None):
        v = t if rows is None else t[..., list(rows)]
        v = v.astype(np.float64)
        return float((v * v).sum())

    _updates = Updates(np, "reference_numpy")

    def update(self, rule: str, w, g, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        self._updates.apply(rule, w, g, states, rows, hyper)

    def seed(self, seed: int) -> None:
        kernels.RANDOM.seed(seed)


@hookimpl
def dynet_api_backends():
    return [BackendSpec("reference_numpy", ReferenceNumpyBackend, priority=0,
                        description="NumPy reference: the executable specification of every op")]
