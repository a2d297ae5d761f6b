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

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

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

    # A backend may also run a whole ``Trainer.update()`` itself: ``trainer_step(trainer) -> bool``
    # does what the trainer's own update does (dynet_api.trainers) and returns True, or returns
    # False with nothing changed, and the trainer's update runs.  Left None, trainers always walk
    # their parameters in Python (a few microseconds per update, which a small step feels).
    trainer_step: Callable[[Any], bool] | None = None

    # --- randomness ----------------------------------------------------
    def seed(self, seed: int) -> None:
        raise NotImplementedError

    # --- optional whole-graph execution ---------------------------------
    def make_executor(self, graph) -> Any:
        """Return an object with ``forward(a, b)`` and ``backward(i, full)``, or None."""
        return None

    # --- automatic batching (dynet_api.autobatch) ------------------------
    # True: the backend's executor groups nodes itself and keeps receiving whole graphs; the graph
    # tells it the strategy (set_autobatch) and the front end's scheduler stays out of its way.
    batches_itself: bool = False
    # Front-end autobatching when the program does not set it (``--dynet-autobatch``).
    autobatch_default: bool = False

    def set_autobatch(self, strategy: int) -> None:
        """The autobatching strategy of the graphs to come (0 off; DyNet's numbers), for a backend that
        ``batches_itself``; called when a graph's strategy differs from the last one told."""

    def join_batches(self, parts: Sequence[Any], dim: Any) -> Any:
        """The tensors joined along the batch axis (one operand of a batched kernel call); ``dim``
        is the joined Dim.  The default runs the ``concatenate_to_batch`` kernel."""
        return self.forward_kernels["concatenate_to_batch"](list(parts), (), dim)

    def batch_slice(self, t: Any, start: int, stop: int, dim: Any) -> Any:
        """Batch elements ``start`` to ``stop - 1`` of ``t`` (of Dim ``dim``), read-only: a view where
        the backend has them.  The default runs the ``pick_batch_elems`` kernel (a copy)."""
        return self.forward_kernels["pick_batch_elems"]([t], (tuple(range(start, stop)),), dim)


# ------------------------------------------------------------------ the contract as Protocols
#
# What the front end calls, stated once so that a backend can be checked against it (tests/test_contract.py
# does so for every first-party backend and the plugin templates) and so that a type checker sees it.


@runtime_checkable
class GraphExecutor(Protocol):
    """The optional whole-graph executor (``Backend.make_executor(graph)``): every method the graph calls.

    Node ``j`` of the graph is ``graph.nodes[j] == (op, input ids, attrs)`` with output ``graph.dims[j]``
    and ``graph.ng[j]`` (does it need a gradient); an executor may read those lists and
    ``graph.check_validity``, and nothing else of the graph.  Of ``op`` (an ``OpDef``) it reads
    ``name`` and ``nograd``; of a leaf's ``attrs``, an input's host
    array or a :class:`ParamStorageView`.  (``csrc/contract.h`` is the same reading in C++.)
    With the C accelerator, the graph keeps its nodes in flat arrays until ``graph.nodes`` is first
    read, which makes the tuples then; the list is complete whenever an executor is called (one
    may keep the list object across graphs, as before).  An executor in C may read the arrays
    themselves (``csrc/packed_nodes.h``) and say so with a true ``reads_packed_nodes`` attribute: the
    graph then never makes the tuples for it.
    """

    def reset(self) -> None:
        """A new graph (``renew_cg``): forget every value and gradient."""

    def truncate(self, n: int) -> None:
        """Nodes from ``n`` on were removed (``cg_revert``, or a node that failed): drop their values."""

    def invalidate(self, i: int) -> None:
        """Values from node ``i`` on are stale (an input was ``set``): recompute them on the next forward."""

    def forward(self, a: int, b: int) -> None:
        """Compute the values of nodes ``a`` to ``b - 1`` (earlier ones are computed already)."""

    def backward(self, i: int, full: bool) -> None:
        """Reverse mode from the scalar node ``i``; accumulate parameter gradients into their storage;
        ``full`` keeps every node's gradient for ``gradient(j)``."""

    def value(self, i: int) -> Any:
        """Node ``i``'s value as a backend tensor."""

    def gradient(self, i: int) -> Any:
        """Node ``i``'s gradient after ``backward(..., full=True)``, or None.

        Optional, not part of the checked set: ``scalar(i) -> float``, node ``i``'s first value
        without a tensor copy (the graph uses it for one-element values, i.e. losses)."""


class ParamStorageView(Protocol):
    """The parameter storage a leaf kernel or an executor may read (``attrs[0]`` of a parameter or lookup node).

    An executor's backward that adds into ``grad`` sets ``has_grad``; one that adds into rows of a lookup
    table's ``grad`` adds those rows to ``touched`` (as the graph's own node-by-node executor does)."""

    value: Any  # the backend tensor of the weights (Dim.shape layout; a lookup table's rows are the batch axis)
    # divided by wscale.factor: DyNet's lazy weight decay (usually 1); the weights are value * factor
    wscale: Any
    grad: Any  # the gradient tensor, same shape
    has_grad: bool  # a dense parameter's gradient is not all zero
    touched: set  # the rows of a lookup table whose gradient is not zero


EXECUTOR_METHODS: tuple[str, ...] = ("reset", "truncate", "invalidate", "forward", "backward", "value", "gradient")


def missing_executor_methods(executor: Any) -> list[str]:
    """The GraphExecutor methods an executor object lacks (not callable)."""
    return [m for m in EXECUTOR_METHODS if not callable(getattr(executor, m, None))]


def contract_methods() -> dict[str, inspect.Signature]:
    """The Backend methods of the contract with their signatures (what a backend may override)."""
    out = {}
    for name, f in vars(Backend).items():
        if inspect.isfunction(f) and not name.startswith("_"):
            out[name] = inspect.signature(f)
    return out


def signature_mismatches(obj: Any, protocol: dict[str, inspect.Signature]) -> list[str]:
    """Methods of ``obj`` whose Python signature does not accept the contract's arguments by position.

    Extra parameters with defaults are fine; a method implemented in C (no signature) is checked by name."""
    bad = []
    for name, want in protocol.items():
        f = getattr(obj, name, None)
        if not callable(f):
            bad.append(f"{name}: missing")
            continue
        try:
            got = inspect.signature(f)
        except (TypeError, ValueError):
            continue
        want_params = [p for p in want.parameters.values() if p.name != "self"]
        params = list(got.parameters.values())
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            continue
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is p.empty]
        if len(positional) < len(want_params) or len(required) > len(want_params):
            bad.append(f"{name}{got}: the contract calls it as {name}({', '.join(p.name for p in want_params)})")
    return bad
