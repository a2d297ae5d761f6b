"""``--dynet-mem`` for the NumPy reference: a byte budget over parameters, graph values and gradients.

NumPy allocates on its own, so the budget counts what the backend hands out: parameter
and trainer storage (released when the array is collected) and the graph's node values
and gradients (released on ``renew_cg``).  Going over the cap raises MemoryError with
the same text as the compiled backend's arena.
"""

from __future__ import annotations

import weakref

import numpy as np

from dynet_api import config
from dynet_api.graph import PyExecutor


class MemoryBudget:
    """Bytes in use against the ``mem`` setting (0: no limit)."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.limit = 0
        self.used = 0

    def configure(self) -> None:
        self.limit = config.mem_limit_bytes()

    def reserve(self, n: int) -> None:
        if self.limit and self.used + n > self.limit:
            raise MemoryError(
                f"{self.who}: out of memory: the memory limit (--dynet-mem / mem) of {self.limit >> 20} MB "
                f"is exhausted ({self.used >> 20} MB in use, {n} bytes more requested)")
        self.used += n

    def release(self, n: int) -> None:
        self.used -= n

    def track(self, a: np.ndarray) -> np.ndarray:
        """Count a long-lived array (parameter, gradient, trainer state) until it is collected."""
        n = a.nbytes
        self.reserve(n)
        weakref.finalize(a, self.release, n)
        return a


class BudgetedExecutor(PyExecutor):
    """The node-by-node executor, reserving each node's value (and the backward pass's
    gradients) before computing it."""

    def __init__(self, cg, backend) -> None:
        super().__init__(cg, backend)
        self.budget: MemoryBudget = backend.budget
        self.held: list[int] = []  # bytes reserved per node value
        self.grad_bytes = 0

    def _drop(self, n: int) -> None:
        self.budget.release(sum(self.held[n:]) + self.grad_bytes)
        del self.held[n:]
        self.grad_bytes = 0

    def reset(self) -> None:
        self._drop(0)
        super().reset()

    def truncate(self, n: int) -> None:
        self._drop(n)
        super().truncate(n)

    def forward(self, a: int, b: int) -> None:
        if not self.budget.limit and not self.held:  # no --dynet-mem cap: nothing to count
            super().forward(a, b)
            return
        held, dims = self.held, self.cg.dims
        if len(held) < b:
            held.extend([0] * (b - len(held)))
        for j in range(a, b):
            n = dims[j].total() * 4
            if held[j] != n:
                self.budget.reserve(n - held[j])
                held[j] = n
        super().forward(a, b)

    def backward(self, i: int, full: bool) -> None:
        if not self.budget.limit and not self.held:
            super().backward(i, full)
            return
        cg = self.cg
        self.budget.release(self.grad_bytes)
        self.grad_bytes = 0
        n = sum(cg.dims[j].total() for j in range(i + 1) if full or cg.ng[j]) * 4
        self.budget.reserve(n)
        self.grad_bytes = n
        super().backward(i, full)
