"""The contract a backend implements.

A backend owns tensors (opaque objects of its own kind) and kernels.  Tensors
cross to NumPy in one layout only: the data dims followed by the batch as the
last axis (``Dim.shape``), values as they look in NumPy (DyNet's column-major
storage is the backend's business).  A lookup table is a tensor whose batch
axis runs over the rows, so a lookup is a gather of batch elements.

Per op of :mod:`dynet_api.ops`, keyed by the op's name:

* ``forward_kernels[name](xs, attrs, dim) -> y`` where ``xs`` are the input
  tensors, ``attrs`` the node's attribute tuple and ``dim`` the output ``Dim``;
* ``backward_kernels[name](xs, y, dy, attrs, dim, i) -> dx_i``: the gradient
  with respect to input ``i``, in the shape of ``xs[i]`` (reduced over any
  broadcast dims).

Leaf ops (inputs, constants, random tensors, parameters, lookups) have
forward kernels only; the graph routes their gradients into parameter storage
with :meth:`Backend.iadd` and :meth:`Backend.scatter_add_batch`.

Trainers call :meth:`Backend.update_all` (its default: :meth:`Backend.update`
per parameter, then the gradient clear) with a rule name and hyperparameters;
the rules and their formulas are listed in :mod:`dynet_api.trainers`.

A backend may also run whole graph ranges itself (``make_executor``); the
default executor in :mod:`dynet_api.graph` calls the kernels one node at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class BackendUnavailable(RuntimeError):
    """Raised by a backend factory when it cannot run on this machine."""


class Backend:
    """Base class of every backend; subclasses fill in the kernel tables."""

    name: str = "?"
    devices: tuple[str, ...] = ("CPU",)
    dtype = np.float32
    forward_kernels: dict[str, Callable] = {}
    backward_kernels: dict[str, Callable] = {}
    # Ops the backend knowingly lacks, listed by the coverage report.
    unsupported: dict[str, str] = {}

    def supported_ops(self) -> frozenset[str]:
        return frozenset(self.forward_kernels)

    # --- tensors -------------------------------------------------------
    def from_numpy(self, a: np.ndarray) -> Any:
        raise NotImplementedError

    def to_numpy(self, t: Any) -> np.ndarray:
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self.from_numpy(np.zeros(shape, self.dtype))

    def ones(self, shape: tuple[int, ...]) -> Any:
        return self.from_numpy(np.ones(shape, self.dtype))

    def add(self, a: Any, b: Any) -> Any:
        """a + b for two tensors of the same shape (gradient accumulation)."""
        raise NotImplementedError

    # --- parameter storage (in place) ---------------------------------
    def iadd(self, dst: Any, src: Any) -> None:
        raise NotImplementedError

    def assign(self, dst: Any, a: np.ndarray) -> None:
        """Overwrite ``dst`` with host values of the same shape."""
        raise NotImplementedError

    def fill(self, dst: Any, value: float) -> None:
        raise NotImplementedError

    def clear_rows(self, dst: Any, rows: Sequence[int]) -> None:
        """Zero the given batch rows of a lookup gradient whose other rows are already zero.

        Called after every update with the rows a sparse update touched, so a backend
        should override it: the default zeroes the whole table, O(vocabulary) per update.
        """
        self.fill(dst, 0.0)

    def scale(self, dst: Any, s: float, rows: Sequence[int] | None = None) -> None:
        raise NotImplementedError

    def clip(self, dst: Any, left: float, right: float) -> None:
        raise NotImplementedError

    def gather_batch(self, table: Any, rows: Sequence[int]) -> Any:
        raise NotImplementedError

    def scatter_add_batch(self, dst: Any, rows: Sequence[int], src: Any) -> None:
        raise NotImplementedError

    def sq_norm(self, t: Any, rows: Sequence[int] | None = None) -> float:
        raise NotImplementedError

    def sq_norm_all(self, parts: Sequence[tuple]) -> float:
        """Sum of :meth:`sq_norm` over ``(t, rows)`` pairs: the clipping norm of one update.

        Trainers make one call per update; a backend may override it to read every
        gradient in one call (and one pass) instead of one call per parameter.
        """
        return sum(self.sq_norm(t, rows) for t, rows in parts)

    def update(self, rule: str, w: Any, g: Any, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        """Apply one trainer step in place (see dynet_api.trainers for rules)."""
        raise NotImplementedError

    def update_all(self, rule: str, items: Sequence[tuple], hyper: dict) -> None:
        """One trainer step over several parameters, clearing their gradients as it goes.

        ``items`` are ``(w, g, states, rows, clear)``: :meth:`update` arguments plus
        ``clear``, which asks for ``g`` to be zeroed where the step read it (all of it
        when ``rows`` is None; the other rows of a sparse ``g`` are zero already).
        Trainers make one call per update; a backend should override it to do the
        step and the clear in one pass and one call.
        """
        for w, g, states, rows, clear in items:
            self.update(rule, w, g, states, rows, hyper)
            if clear:
                if rows is None:
                    self.fill(g, 0.0)
                else:
                    self.clear_rows(g, rows)

    # --- randomness ----------------------------------------------------
    def seed(self, seed: int) -> None:
        raise NotImplementedError

    # --- optional whole-graph execution ---------------------------------
    def make_executor(self, graph) -> Any:
        """Return an object with ``forward(a, b)`` and ``backward(i, full)``, or None."""
        return None
