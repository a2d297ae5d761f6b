"""The computation graph and the Expression handle.

A graph is three parallel lists (nodes, dims, needs-gradient flags); adding a
node is a shape-rule call and three appends.  (With the C accelerator the node
records stay in flat arrays until ``nodes`` is first read, which makes the
``(op, ids, attrs)`` tuples then: the graph's own paths use ``n_nodes``,
``op_of`` and ``append_node``, which never make them.)  Evaluation is lazy and
incremental: ``forward_to(i)`` runs the nodes not yet evaluated up to ``i``.
Execution belongs to an executor: the backend's own (a whole-graph fast path)
or :class:`PyExecutor`, which calls the backend's kernels node by node.

There is one graph per process, as in DyNet; ``renew_cg`` empties it and bumps
its version, and an Expression from an older version raises
:class:`StaleExpressionError` wherever it is used.

Threading model: the graph belongs to the thread that last called ``renew_cg``.
Another thread that renews, evaluates or backpropagates it while that thread is
alive gets :class:`GraphThreadError` (a RuntimeError); once the owner has
exited, the next ``renew_cg`` from any thread takes the graph over.  The check
is one thread-identity comparison per renew/forward/backward, none per node.
Run concurrent models in separate processes, as with DyNet.
"""

from __future__ import annotations

import threading
import time
from numbers import Number
from typing import TYPE_CHECKING, Any

import numpy as np

from . import autobatch, config, profiling
from .accelerator import fastgraph as _fastgraph  # the optional C twin of the hot path below, or None
from .backend import Backend, missing_executor_methods
from .dim import Dim
from .ops import OP_LIST, OPS, check_attrs
from .tensor import Tensor

# list.clear(), or the accelerator's, which fetches each item ahead of its release (a graph's node
# tuples are out of cache by the next renew_cg: a miss per node in a plain clear)
_clear_list = getattr(_fastgraph, "clear_list", list.clear)


class StaleExpressionError(ValueError, RuntimeError):
    """An expression from a graph that ``renew_cg()`` has discarded."""


class GraphThreadError(RuntimeError):
    """The graph was used from a thread other than the live thread that owns it (see the module doc)."""


_get_ident = threading.get_ident


_ADD, _NEG, _PLUS_C = OPS["add"], OPS["negate"], OPS["plus_const"]
_C_MINUS, _SMUL = OPS["const_minus"], OPS["scalar_mult"]
_MATMUL, _CMULT, _CDIV, _POW = OPS["matmul"], OPS["cmult"], OPS["cdiv"], OPS["pow"]
_PARAM, _LOOKUP, _INPUT = OPS["parameter"], OPS["lookup"], OPS["input"]
_SCALAR_DIMS = ((1,), (1, 1))
_SCALAR_DIM = Dim((1,))
_NODES, _CALLS, _SECONDS = profiling.NODES, profiling.CALLS, profiling.SECONDS
_new = object.__new__  # Expression(n, v) without the __init__ call: ~35 ns less per node


class PyExecutor:
    """Runs a graph through the backend's kernel tables: node by node, or in batched groups when
    the graph's ``autobatch`` strategy is on (:mod:`dynet_api.autobatch`)."""

    def __init__(self, cg: ComputationGraph, backend) -> None:
        self.cg = cg
        self.backend = backend
        self.fwd = [backend.forward_kernels.get(o.name) for o in OP_LIST]
        self.bwd = [backend.backward_kernels.get(o.name) for o in OP_LIST]
        self.vals: list = []
        self.grads: list | None = None
        # Autobatching: the executed plan (node ids and autobatch.Group records, in execution
        # order; None when nodes ran in graph order) and, per node, the group that made its value.
        self.plan: list | None = None
        self.home: list = []
        # A group member's value is its slice of the group's output, cut only when something reads
        # it alone (``_val``): ``vals`` holds None for it until then, ``pos`` its offset there.
        self.pos: list = []
        self.lazy = False  # some values are uncut group slices
        self.can_batch = backend_can_batch(backend)
        profiling.cover_ops()
        autobatch.cover_ops()

    def timed(self) -> None:
        """Time every kernel call into the profiling counters (``--dynet-profiling``)."""
        self.fwd = [f and _timed(f, k) for k, f in enumerate(self.fwd)]
        self.bwd = [f and _timed(f, k) for k, f in enumerate(self.bwd)]

    def reset(self) -> None:
        self.vals = []
        self.grads = None
        self.plan = None
        self.home = []
        self.pos = []
        self.lazy = False

    def truncate(self, n: int) -> None:
        del self.vals[n:]
        self.grads = None
        if self.plan is not None:
            autobatch.trim(self, n)

    def invalidate(self, i: int) -> None:
        if self.plan is not None:
            autobatch.trim(self, i)

    def forward(self, a: int, b: int) -> None:
        cg = self.cg
        strategy = cg.autobatch
        if strategy and self.can_batch and not self.backend.batches_itself:
            if self.plan is None:
                self.plan = list(range(a))  # nodes computed before batching was on: replayed one by one
            autobatch.forward(self, a, b, strategy)
            return
        vals = self.vals
        if len(vals) < b:
            vals.extend([None] * (b - len(vals)))
        run = self._run_node
        for j in range(a, b):
            run(j)
        if self.plan is not None:
            self.plan.extend(range(a, b))

    def _val(self, k: int):
        """Node ``k``'s value, cut from its group's output on first use (see ``pos``)."""
        v = self.vals[k]
        if v is None:
            g = self.home[k]
            d = self.cg.dims[k]
            v = self.vals[k] = self.backend.batch_slice(g.y, self.pos[k], self.pos[k] + d.bd, d)
        return v

    def _inputs(self, ids) -> list:
        vals = self.vals
        xs = [vals[k] for k in ids]
        if self.lazy:
            xs = [x if x is not None else self._val(k) for x, k in zip(xs, ids)]
        return xs

    def _run_node(self, j: int) -> None:
        """Node ``j`` alone: one forward kernel call."""
        cg = self.cg
        op, ids, attrs = cg.nodes[j]
        self.vals[j] = self.fwd[op.id](self._inputs(ids) if self.lazy else [self.vals[k] for k in ids], attrs,
                                       cg.dims[j])
        _NODES[op.id] += 1
        _CALLS[op.id] += 1
        if cg.check_validity:
            cg.check_value(j)

    def backward(self, i: int, full: bool) -> None:
        if self.plan is not None:
            autobatch.backward(self, i, full)
            return
        be = self.backend
        grads: list = [None] * (i + 1)
        grads[i] = be.ones(self.cg.dims[i].shape)
        owned: set = set()  # accumulators created here by add(), safe to add into in place
        step = self._node_backward
        for j in range(i, -1, -1):
            g = grads[j]
            if g is not None:
                step(j, g, grads, owned, full)
        self.grads = grads

    def _node_backward(self, j: int, g, grads: list, owned: set, full: bool) -> None:
        """Node ``j``'s gradient ``g`` handed to its operands (or into parameter storage for a leaf)."""
        cg = self.cg
        be = self.backend
        op, ids, attrs = cg.nodes[j]
        if not ids:
            if op is _PARAM:
                if attrs[1]:
                    st = attrs[0]
                    be.iadd(st.grad, g)
                    st.has_grad = True
                    _CALLS[op.id] += 1
            elif op is _LOOKUP and attrs[2]:
                st = attrs[0]
                be.scatter_add_batch(st.grad, attrs[1], g)
                st.touched.update(attrs[1])
                _CALLS[op.id] += 1
            return
        ng = cg.ng
        xs = y = None
        for k, a in enumerate(ids):
            if not (ng[a] or full) or k in op.nograd:
                continue
            if xs is None:
                xs, y = self._inputs(ids), self._val(j)
            dx = self.bwd[op.id](xs, y, g, attrs, cg.dims[j], k)
            _CALLS[op.id] += 1
            self._accumulate(grads, owned, a, dx)

    def _accumulate(self, grads: list, owned: set, a: int, dx) -> None:
        """Add ``dx`` into node ``a``'s gradient."""
        ga = grads[a]
        if ga is None:
            grads[a] = dx  # may alias a kernel's input or output: never modified in place
        elif a in owned:
            self.backend.iadd(ga, dx)
        else:
            grads[a] = self.backend.add(ga, dx)
            owned.add(a)

    def value(self, i: int):
        return self._val(i)

    def gradient(self, i: int):
        if self.grads is None:
            return None
        g = self.home[i] if i < len(self.home) else None
        if g is not None and g.live and g.dy is not None:  # a group member: its slice of the group's gradient
            d = self.cg.dims[i]
            return self.backend.batch_slice(g.dy, self.pos[i], self.pos[i] + d.bd, d)
        return self.grads[i] if i < len(self.grads) else None


def backend_can_batch(backend) -> bool:
    """Whether the front end can batch for ``backend``: it joins and slices batches itself, or has
    the two kernels the defaults of ``Backend.join_batches`` / ``batch_slice`` use."""
    k = backend.forward_kernels
    return ("concatenate_to_batch" in k and "pick_batch_elems" in k) or (
        type(backend).join_batches is not Backend.join_batches
        and type(backend).batch_slice is not Backend.batch_slice)


def _timed(f, k: int):
    """``f`` with its time added to op ``k``'s profiling seconds."""
    clock = time.perf_counter

    def timed(*args):
        t = clock()
        try:
            return f(*args)
        finally:
            _SECONDS[k] += clock() - t

    return timed


class _PyGraphOps:
    """The graph's add methods in pure Python; ``_fastgraph.GraphBase`` implements the same
    in C (same lists, same shape-cache keys, the same Python calls on a miss or a stale operand).

    Naming: ``add`` takes a sequence of expressions, ``add1``/``add2`` one/two expressions, and
    the ``_ids`` suffix (``add2_ids``) takes node indices already resolved in this graph."""

    # The graph's state, set by ComputationGraph (declared here for the type checker).
    ver: int
    nodes: list
    dims: list
    ng: list
    immediate: bool
    _shapes: dict

    if TYPE_CHECKING:

        def forward_to(self, i: int) -> None: ...

        def _shape(self, op, key, dims, attrs) -> Dim: ...

    def _reset_nodes(self) -> None:
        """Empties the node list (renew_cg)."""
        _clear_list(self.nodes)

    def append_node(self, op, ids: tuple, attrs) -> None:
        """Appends node ``(op, ids, attrs)`` where the graph keeps its nodes (the caller appends its
        ``dims`` and ``ng`` entries).  The C graph keeps them packed until ``nodes`` is read."""
        if type(ids) is not tuple:
            raise TypeError("append_node(op, ids, attrs): ids must be a tuple of node indices")
        self.nodes.append((op, ids, attrs))

    def n_nodes(self) -> int:
        """The number of nodes (``len(cg.nodes)``, without making the C graph's node tuples)."""
        return len(self.nodes)

    def op_of(self, j: int):
        """Node ``j``'s op (``cg.nodes[j][0]``, without making the C graph's node tuples)."""
        return self.nodes[j][0]

    def add(self, op, args, attrs=None) -> Expression:
        """Appends a node of ``op``; validates the operands and the shape before touching the graph.

        Args:
            op (OpDef): the op record.
            args (tuple[Expression, ...]): the operands.
            attrs (tuple or None): the op's attributes.
        """
        ver = self.ver
        ids: list = []
        push = ids.append
        for x in args:
            try:
                push(x.i if x.v == ver else x._node(self))
            except AttributeError:
                raise TypeError(f"{op.name}: expected an Expression, got {type(x).__name__} {x!r}") from None
        ids = tuple(ids)  # type: ignore[assignment]
        dims = self.dims
        ind = [dims[k] for k in ids]
        key = (op, attrs, *ind)
        d = self._shapes.get(key)
        if d is None:
            d = self._shape(op, key, ind, attrs)
        ng = self.ng
        n = len(dims)
        self.nodes.append((op, ids, attrs))
        dims.append(d)
        if op.nograd:
            ng.append(False)
        else:
            for k in ids:
                if ng[k]:
                    ng.append(True)
                    break
            else:
                ng.append(False)
        if self.immediate:
            self.forward_to(n)
        e = _new(Expression)
        e.i = n
        e.v = ver
        return e

    def add1(self, op, x, attrs=None) -> Expression:
        """``add`` for one operand: the hot path of elementwise ops.

        Args:
            op (OpDef): the op record.
            x (Expression): the operand.
            attrs (tuple or None): the op's attributes.
        """
        ver = self.ver
        try:
            k = x.i if x.v == ver else x._node(self)
        except AttributeError:
            raise TypeError(f"{op.name}: expected an Expression, got {type(x).__name__} {x!r}") from None
        dims = self.dims
        dk = dims[k]
        key = (op, attrs, dk)
        d = self._shapes.get(key)
        if d is None:
            d = self._shape(op, key, (dk,), attrs)
        n = len(dims)
        self.nodes.append((op, (k,), attrs))
        dims.append(d)
        ng = self.ng
        ng.append(ng[k] and not op.nograd)
        if self.immediate:
            self.forward_to(n)
        e = _new(Expression)
        e.i = n
        e.v = ver
        return e

    def add2_ids(self, op, i: int, j: int, attrs=None) -> Expression:
        """Appends a node of two operands given as node indices of this graph (the operators' path).

        Args:
            op (OpDef): the op record.
            i (int): the first operand's node.
            j (int): the second operand's node.
            attrs (tuple or None): the op's attributes.
        """
        dims = self.dims
        di, dj = dims[i], dims[j]
        key = (op, attrs, di, dj)
        d = self._shapes.get(key)
        if d is None:
            d = self._shape(op, key, (di, dj), attrs)
        n = len(dims)
        self.nodes.append((op, (i, j), attrs))
        dims.append(d)
        ng = self.ng
        ng.append(ng[i] or ng[j])
        if self.immediate:
            self.forward_to(n)
        e = _new(Expression)
        e.i = n
        e.v = self.ver
        return e

    def add2(self, op, x, y, attrs=None) -> Expression:
        """``add`` for two operands (cmult, dot_product...) without building a tuple.

        Args:
            op (OpDef): the op record.
            x (Expression): the first operand.
            y (Expression): the second operand.
            attrs (tuple or None): the op's attributes.
        """
        ver = self.ver
        try:
            i = x.i if x.v == ver else x._node(self)
        except AttributeError:
            raise TypeError(f"{op.name}: expected an Expression, got {type(x).__name__} {x!r}") from None
        try:
            j = y.i if y.v == ver else y._node(self)
        except AttributeError:
            raise TypeError(f"{op.name}: expected an Expression, got {type(y).__name__} {y!r}") from None
        dims = self.dims
        di, dj = dims[i], dims[j]
        key = (op, attrs, di, dj)
        d = self._shapes.get(key)
        if d is None:
            d = self._shape(op, key, [di, dj], attrs)
        n = len(dims)
        self.nodes.append((op, (i, j), attrs))
        dims.append(d)
        ng = self.ng
        ng.append(False if op.nograd else (ng[i] or ng[j]))
        if self.immediate:
            self.forward_to(n)
        e = _new(Expression)
        e.i = n
        e.v = ver
        return e


if TYPE_CHECKING:  # the type checker reads the pure-Python twin of the C base
    _GraphBase = _PyGraphOps
else:
    _GraphBase = _fastgraph.GraphBase if _fastgraph is not None else _PyGraphOps


class ComputationGraph(_GraphBase):
    """DyNet's single global graph of expressions; get it with ``dy.cg()`` or ``dy.renew_cg()``, never
    the constructor.
    """

    def __init__(self) -> None:
        self.ver = 0
        self.immediate = False
        self.check_validity = False
        self.backend: Any = None
        self.executor: Any = None
        self.supported: frozenset | None = None
        self._shapes: dict = {}
        self.nodes: list = []
        self.dims: list = []
        self.ng: list = []
        self.n_eval = 0
        self.backward_done = False
        self._checkpoints: list[int] = []
        self._owner_id: int | None = None  # threading.get_ident() of the owning thread
        self._owner: threading.Thread | None = None
        self.autobatch = 0  # the autobatching strategy of this graph (0: off; see _apply_autobatch)
        self._autobatch_asked: Any = None  # renew_cg(autobatching=...), None: the process setting
        self._autobatch_told: Any = None  # (backend, strategy) last told to a self-batching backend
        self.profiling = 0
        # whether the executor reads only graph.nodes as the contract states it, a complete list
        # (made before each call), or the C graph's packed arrays too (reads_packed_nodes)
        self._nodes_for_executor = True

    # ------------------------------------------------------------ threads
    def _claim(self, what: str) -> None:
        """Make the calling thread the owner, unless another live thread owns the graph."""
        me = _get_ident()
        if self._owner_id != me:
            t = self._owner
            if t is not None and t.is_alive():
                raise self._thread_error(what)
            self._owner_id = me
            self._owner = threading.current_thread()

    def _thread_error(self, what: str) -> GraphThreadError:
        return GraphThreadError(
            f"{what}: the computation graph belongs to thread "
            f"{self._owner.name if self._owner is not None else '?'!r} (it called renew_cg "
            f"last and is still running), not to thread {threading.current_thread().name!r}; there is "
            "one graph per process, used by one thread at a time (run concurrent models in separate "
            "processes)")

    # ------------------------------------------------------------ lifecycle
    def _bind(self) -> frozenset:
        be = config.backend()
        if self.executor is None or self.backend is not be:
            if self.executor is not None:
                self.executor.reset()
            self.backend = be
            ex = be.make_executor(self)
            if ex is not None:
                missing = missing_executor_methods(ex)
                if missing:
                    raise TypeError(f"backend {be.name!r}: its executor {type(ex).__name__} lacks "
                                    f"{', '.join(missing)} (see dynet_api.backend.GraphExecutor)")
            self.executor = ex or PyExecutor(self, be)
            self._nodes_for_executor = not getattr(self.executor, "reads_packed_nodes", False)
            self._shapes = {}
            self.profiling = int(config.settings.get("profiling") or 0)
            profiling.watch(be)
            if self.profiling and hasattr(self.executor, "timed"):
                self.executor.timed()
        self._apply_autobatch(be)
        self.supported = be.supported_ops()
        return self.supported

    def _apply_autobatch(self, be) -> None:
        """The strategy this graph runs with: DyNet's number (0 off, 1 agenda, 2 depth by depth; any
        other non-zero value runs as 1) from ``renew_cg(autobatching=...)``, else from the process
        setting when the program gave one, else the backend's ``autobatch_default``.  A backend that
        batches by itself (``batches_itself``) is told the strategy (``set_autobatch``) when it changes."""
        asked = self._autobatch_asked
        if asked is None:
            asked = config.given_value("autobatch", getattr(be, "autobatch_default", False))
        strategy = int(asked or 0)
        if strategy not in (0, 1, 2):
            strategy = 1
        if be.batches_itself and self._autobatch_told != (be, strategy):
            be.set_autobatch(strategy)
            self._autobatch_told = (be, strategy)
        self.autobatch = strategy

    def renew(self, immediate_compute: bool = False, check_validity: bool = False,
              autobatching=None) -> ComputationGraph:
        """Empties the graph for a new one (as :func:`renew_cg`).

        Args:
            immediate_compute (bool): compute each node as it is added.
            check_validity (bool): with immediate_compute, check each value for NaN and Inf.
            autobatching: automatic batching for this graph (True/False or DyNet's strategy number);
                None: the process setting (``--dynet-autobatch``, ``dynet_config.set(autobatch=...)``).

        The calling thread becomes the graph's owner (see the module doc on threads).
        """
        if self._owner_id != _get_ident():  # the thread check (as forward_to: one comparison)
            self._claim("renew_cg")
        self.ver += 1
        # emptied in place, not replaced: lists that live on are old to the garbage collector, so
        # its young-generation passes (about one per graph) do not walk the new graph's nodes
        self._reset_nodes()
        self.dims.clear()
        self.ng.clear()
        self.n_eval = 0
        self.backward_done = False
        self._checkpoints = []
        self.immediate = bool(immediate_compute)
        self._autobatch_asked = autobatching
        current = config.current()
        be = self.backend or current
        if be is not None:
            self._apply_autobatch(be)
        # Checked on every forward, lazy or immediate (DyNet checks only with immediate_compute).
        self.check_validity = bool(check_validity)
        if self.executor is not None:
            self.executor.reset()  # also when it is dropped below: it gives back its memory
        if self.backend is not None and self.backend is not current:
            self.backend = None
            self.executor = None
            self.supported = None
            self._shapes = {}
        return self

    def checkpoint(self) -> None:
        """Remembers the current size of the graph (see :meth:`revert`)."""
        self._checkpoints.append(len(self.dims))

    def revert(self) -> None:
        """Drops the nodes added since the last :meth:`checkpoint`."""
        self._claim("cg_revert")
        if not self._checkpoints:
            raise RuntimeError("cg_revert: no checkpoint to revert to (call cg_checkpoint first)")
        n = self._checkpoints.pop()
        del self.nodes[n:], self.dims[n:], self.ng[n:]
        self.n_eval = min(self.n_eval, n)
        if self.executor is not None:
            self.executor.truncate(n)

    # ------------------------------------------------------------ building
    # The hot path of every program.  Shape rules are memoised per (op, input
    # Dims, attrs): Dims are interned, so the key hashes at C speed, and a hit
    # skips the rule.  Only successful, supported combinations are cached.

    def _shape(self, op, key, dims, attrs):
        d = self._shapes.get(key)
        if d is None:
            if self.supported is None:
                self._bind()
            d = op.shape(op, dims, attrs)
            if op.name not in self.supported:
                raise NotImplementedError(f"{op.name}: not supported by backend {self.backend.name!r}")
            if len(self._shapes) > 100_000:
                self._shapes.clear()
            try:
                self._shapes[key] = d
            except TypeError:  # unhashable attrs: no memo
                pass
        return d

    def _index(self, op, x) -> int:
        try:
            return x.i if x.v == self.ver else x._node(self)
        except AttributeError:
            raise TypeError(f"{op.name}: expected an Expression, got {type(x).__name__} {x!r}") from None

    def add_leaf(self, op, attrs, needs_grad: bool = False) -> Expression:
        """Appends a leaf node (input, constant, parameter, random tensor).

        Args:
            op (OpDef): the leaf's op record.
            attrs (tuple): its attributes, its Dim last.
            needs_grad (bool): whether a gradient flows into it.
        """
        if op.attr_domains:
            check_attrs(op, attrs)
        sup = self.supported if self.supported is not None else self._bind()
        if op.name not in sup:
            raise NotImplementedError(f"{op.name}: not supported by backend {self.backend.name!r}")
        n = len(self.dims)
        self.append_node(op, (), attrs)
        self.dims.append(attrs[-1])
        self.ng.append(needs_grad)
        e = _new(Expression)
        e.i = n
        e.v = self.ver
        if self.immediate:
            self.forward_to(n)
        return e

    # ------------------------------------------------------------ evaluation
    def forward_to(self, i: int) -> None:
        """Computes the values of every node up to node ``i``.

        Args:
            i (int): the node index.
        """
        if self._owner_id != _get_ident():  # the thread check: one comparison per evaluation
            self._claim("forward")
        if i >= self.n_eval:
            if self.supported is None:
                self._bind()
            if self._nodes_for_executor:
                _ = self.nodes  # the C graph's packed nodes made into the list this executor reads
            if self.immediate and self.n_eval == i == len(self.dims) - 1:
                try:
                    self.executor.forward(i, i + 1)
                except Exception:
                    # The node just added failed (e.g. check_validity): it leaves the graph, as a
                    # failed shape check would; otherwise every later node would re-raise its error.
                    del self.nodes[i:], self.dims[i:], self.ng[i:]
                    self.executor.truncate(i)
                    raise
            elif self.profiling:
                since = profiling.counts()
                self.executor.forward(self.n_eval, i + 1)
                profiling.print_report(f"forward of nodes {self.n_eval}..{i}", since)
            else:
                self.executor.forward(self.n_eval, i + 1)
            self.n_eval = i + 1

    def invalidate(self, i: int = 0) -> None:
        """Marks the values from node ``i`` on for recomputation (an input was ``set``).

        Args:
            i (int): the first node to recompute.
        """
        if i < self.n_eval:
            self.n_eval = i
        if self.executor is not None:
            self.executor.invalidate(i)

    def backward(self, i: int, full: bool = False) -> None:
        """Backpropagates from node ``i``, which must be a scalar of batch size 1.

        Args:
            i (int): the node index.
            full (bool): compute gradients for every node, not only those that lead to parameters.
        """
        d = self.dims[i]
        if d.d != (1,) or d.bd != 1:
            raise ValueError(
                f"backward: the expression must be a scalar of batch size 1, got {d}"
                + (" (sum a batched loss with sum_batches first)" if d.bd > 1 else "")
            )
        if self._owner_id != _get_ident():
            self._claim("backward")
        if i >= self.n_eval:
            self.forward_to(i)
        if self.profiling:
            since = profiling.counts()
            self.executor.backward(i, full)
            profiling.print_report(f"backward from node {i}", since)
        else:
            self.executor.backward(i, full)
        self.backward_done = True

    def check_value(self, j: int) -> None:
        """Raises if node ``j``'s value holds NaN or Inf.

        Args:
            j (int): the node index.
        """
        a = self.backend.to_numpy(self.executor.value(j))
        if not np.isfinite(a).all():
            op = self.op_of(j)
            raise RuntimeError(f"check_validity: {op.name} (node {j}) produced NaN or Inf")

    def value_array(self, i: int) -> np.ndarray:
        """Node ``i``'s value as a NumPy array (computed if needed).

        Args:
            i (int): the node index.
        """
        self.forward_to(i)
        return self.backend.to_numpy(self.executor.value(i))

    def scalar(self, i: int) -> float:
        """Node ``i``'s first value as a float (computed if needed): through the executor's optional
        ``scalar(i)`` where it has one (no tensor copy for a loss), else through NumPy.

        Args:
            i (int): the node index.
        """
        self.forward_to(i)
        ex = self.executor
        try:
            return ex.scalar(i)
        except AttributeError:
            return float(self.backend.to_numpy(ex.value(i)).reshape(-1)[0])

    def version(self) -> int:
        """DyNet's ``cg().version()``: how many times the graph was renewed."""
        return self.ver

    # DyNet's ComputationGraph methods --------------------------------------
    def forward(self, e=None):
        """Computes the graph up to ``e``.

        Args:
            e (Expression or None): the expression; None: the last node.
        """
        i = len(self.dims) - 1 if e is None else _index(e)
        self.forward_to(i)

    def inc_forward(self, e=None):
        """Computes the graph up to ``e``, reusing the values already computed.

        Args:
            e (Expression or None): the expression; None: the last node.
        """
        self.forward(e)

    def forward_scalar(self, e=None) -> float:
        """Computes the graph up to ``e`` and returns its first value as a float.

        Args:
            e (Expression or None): the expression; None: the last node.
        """
        i = len(self.dims) - 1 if e is None else _index(e)
        return self.scalar(i)

    def forward_vec(self, e=None) -> list[float]:
        """Computes the graph up to ``e`` and returns its values as a flat list (column-major).

        Args:
            e (Expression or None): the expression; None: the last node.
        """
        i = len(self.dims) - 1 if e is None else _index(e)
        return self.value_array(i).reshape(-1, order="F").tolist()

    inc_forward_scalar = forward_scalar
    inc_forward_vec = forward_vec

    def print_graphviz(self) -> None:
        """Prints the graph in Graphviz's dot format."""
        print(graphviz_text(self))

    def __repr__(self) -> str:
        return f"<ComputationGraph version {self.ver}, {len(self.dims)} nodes>"


def _index(e) -> int:
    if isinstance(e, Expression):
        return e.i
    return int(e)


def graphviz_text(cg: ComputationGraph) -> str:
    lines = ["digraph G {", "  rankdir=BT;", "  nodesep=.05;"]
    for j, (op, ids, _attrs) in enumerate(cg.nodes):
        lines.append(f'  N{j} [label="v{j} = {op.name}({", ".join("v%d" % k for k in ids)}) {cg.dims[j]}"];')
        for k in ids:
            lines.append(f"  N{k} -> N{j};")
    lines.append("}")
    return "\n".join(lines)


_cg = ComputationGraph()


def cg() -> ComputationGraph:
    return _cg


def unary(op):
    """A one-operand, attribute-free function for ``op`` (dy.tanh, dy.logistic...): the C
    accelerator's callable where it is built, else a call of ``add1``."""
    cg = _cg
    if _fastgraph is not None:
        return _fastgraph.Unary(cg, op)
    add1 = cg.add1

    def f(x):
        return add1(op, x)

    return f


# ============================================================== Expression


def _stale(e) -> StaleExpressionError:
    return StaleExpressionError(
        f"Attempt to use a stale expression (node {e.i} of graph version {e.v}; the current graph is "
        f"version {_cg.ver}). Expressions cannot be used after renew_cg()."
    )


class _PyExpressionOps:
    """Expression's operators in pure Python (DyNet: ``*`` of two expressions is a matrix
    product).  ``_fastgraph.ExpressionBase`` implements them in C and calls these for operand
    types it does not handle itself, so both paths share their semantics."""

    __slots__ = ()

    def __add__(self, other):
        cg = _cg
        v = cg.ver
        try:
            j = other.i if other.v == v else other._node(cg)
        except AttributeError:
            if isinstance(other, Number):
                return cg.add1(_PLUS_C, self, (float(other),))
            return NotImplemented
        return cg.add2_ids(_ADD, self.i if self.v == v else self._node(cg), j)

    def __radd__(self, other):
        if isinstance(other, Number):
            return _cg.add1(_PLUS_C, self, (float(other),))
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, Number):
            return _cg.add1(_PLUS_C, self, (-float(other),))
        if not isinstance(other, Expression):
            return NotImplemented
        cg = _cg
        v = cg.ver
        i = self.i if self.v == v else self._node(cg)
        j = other.i if other.v == v else other._node(cg)
        dims = cg.dims
        di, dj = dims[i], dims[j]
        key = (_ADD, None, di, dj)
        if cg._shapes.get(key) is None:
            cg._shape(_ADD, key, (di, dj), None)  # a mismatch raises before -other is added
        return cg.add2_ids(_ADD, i, cg.add1(_NEG, other).i)

    def __rsub__(self, other):
        if isinstance(other, Number):
            return _cg.add1(_C_MINUS, self, (float(other),))
        return NotImplemented

    def __neg__(self):
        return _cg.add1(_NEG, self)

    def __mul__(self, other):
        cg = _cg
        v = cg.ver
        try:
            j = other.i if other.v == v else other._node(cg)
        except AttributeError:
            if isinstance(other, Number):
                return cg.add1(_SMUL, self, (float(other),))
            return NotImplemented
        i = self.i if self.v == v else self._node(cg)
        dims = cg.dims
        di, dj = dims[i], dims[j]
        op = _CMULT if di.d in _SCALAR_DIMS or dj.d in _SCALAR_DIMS else _MATMUL  # DyNet: a 1x1 operand scales
        return cg.add2_ids(op, i, j)

    def __rmul__(self, other):
        if isinstance(other, Number):
            return _cg.add1(_SMUL, self, (float(other),))
        return NotImplemented


class _PyExpressionBase(_PyExpressionOps):
    __slots__ = ("i", "v")

    def __init__(self, i: int, v: int) -> None:
        self.i = i
        self.v = v


if TYPE_CHECKING:
    _ExpressionBase = _PyExpressionBase
else:
    _ExpressionBase = _fastgraph.ExpressionBase if _fastgraph is not None else _PyExpressionBase


class Expression(_ExpressionBase):
    """A node of the current computation graph, made by the ``dy.*`` functions and the operators
    (``+``, ``-``, ``*`` (matrix product), ``/`` by a number or elementwise, ``**``, indexing).
    It becomes stale, and unusable, after :func:`renew_cg`.  Internally it is the pair
    ``(i, v)``: ``i`` the node's index, ``v`` the version of the graph it belongs to.
    """

    __slots__ = ()

    def _node(self, cg: ComputationGraph) -> int:
        raise _stale(self)

    def _check(self) -> int:
        if self.v != _cg.ver:
            return self._node(_cg)
        return self.i

    # ---- shape and values
    def dim(self) -> tuple[tuple[int, ...], int]:
        """The expression's dims as ``((d1, d2, ...), batch_size)``."""
        return _cg.dims[self._check()].as_tuple()

    def _array(self, recalculate: bool) -> tuple[np.ndarray, Dim]:
        i = self._check()
        if recalculate:
            _cg.invalidate(0)
        d = _cg.dims[i]
        return _cg.value_array(i), d

    def npvalue(self, recalculate: bool = False) -> np.ndarray:
        """The value as a NumPy array of the expression's dims (the batch as a last axis when batched).

        Args:
            recalculate (bool): recompute the graph's values instead of reusing them.
        """
        a, d = self._array(recalculate)
        return a.reshape(d.d) if d.bd == 1 else a

    def value(self, recalculate: bool = False):
        """The value: a float for a single value, a list for a vector, else a NumPy array.

        Args:
            recalculate (bool): recompute the graph's values instead of reusing them.
        """
        i = self._check()
        d = _cg.dims[i]
        if len(d.d) == 1 and d.d[0] * d.bd == 1:  # a loss: a float without an array in between
            if recalculate:
                _cg.invalidate(0)
            return _cg.scalar(i)
        a, d = self._array(recalculate)
        if len(d.d) == 1:
            return a.reshape(-1, order="F").tolist()
        return a.reshape(d.d) if d.bd == 1 else a

    def scalar_value(self, recalculate: bool = False) -> float:
        """The value of a one-element expression as a float.

        Args:
            recalculate (bool): recompute the graph's values instead of reusing them.
        """
        a, d = self._array(recalculate)
        if a.size != 1:
            raise ValueError(f"scalar_value: the expression has {a.size} values (dim {d}); use npvalue()")
        return float(a.reshape(-1)[0])

    def vec_value(self, recalculate: bool = False) -> list[float]:
        """All values as a flat list in column-major order (batch elements one after another).

        Args:
            recalculate (bool): recompute the graph's values instead of reusing them.
        """
        a, _ = self._array(recalculate)
        return a.reshape(-1, order="F").tolist()

    def tensor_value(self, recalculate: bool = False):
        """The value as a :class:`Tensor`.

        Args:
            recalculate (bool): recompute the graph's values instead of reusing them.
        """
        return Tensor(self.npvalue(recalculate))

    def forward(self, recalculate: bool = False) -> None:
        """Computes the graph up to this expression.

        Args:
            recalculate (bool): recompute the graph's values instead of reusing them.
        """
        i = self._check()
        if recalculate:
            _cg.invalidate(0)
        _cg.forward_to(i)

    def incremental_forward(self) -> None:
        """Computes the graph up to this expression, reusing the values already computed."""
        _cg.forward_to(self._check())

    def backward(self, full: bool = False) -> None:
        """Backpropagates from this expression, a scalar of batch size 1 (a loss), filling the
        parameters' gradients.

        Args:
            full (bool): also keep gradients of every intermediate node (read with :meth:`gradient`).
        """
        _cg.backward(self._check(), full)

    def gradient(self) -> np.ndarray:
        """The gradient of the last ``backward()``'s loss with respect to this expression, as a NumPy array."""
        i = self._check()
        if _cg._owner_id != _get_ident():
            _cg._claim("gradient")
        if not _cg.backward_done:
            raise RuntimeError(f"Requested gradient for node {i}, but backward() was not run on this graph")
        d = _cg.dims[i]
        g = _cg.executor.gradient(i)
        a = np.zeros(d.shape, np.float32) if g is None else _cg.backend.to_numpy(g)
        return a.reshape(d.d) if d.bd == 1 else a

    def __truediv__(self, other):
        if isinstance(other, Number):
            if other == 0:
                raise ZeroDivisionError("Expression / 0")
            return _cg.add1(_SMUL, self, (1.0 / float(other),))
        if isinstance(other, Expression):
            return _cg.add(_CDIV, (self, other))
        return NotImplemented

    def __rtruediv__(self, other):
        raise NotImplementedError("number / Expression is not supported (as in DyNet); use cdiv")

    def __pow__(self, other):
        if isinstance(other, Number):
            other = _cg.add_leaf(_INPUT, (np.full((1, 1), float(other), np.float32), _SCALAR_DIM))
        return _cg.add(_POW, (self, other))

    # ``e[i]``, ``e[i:j]``...: the functions layer sets ``__getitem__`` at import (see register_indexing).

    def __str__(self) -> str:
        return f"expression {self.i}/{self.v}"

    __repr__ = __str__

    # Python must not treat an expression as a sequence by accident.
    __iter__ = None


def register_indexing(getitem) -> None:
    """``Expression.__getitem__`` (``e[i]``, slices, strides): the functions layer, which builds the
    pick and slice nodes, registers it at import."""
    setattr(Expression, "__getitem__", getitem)  # noqa: B010 - assigned after the class, by a higher layer


def register_leaf_types(parameters: type, mutable: type, row_dims: dict) -> None:
    """The parameter and mutable-input classes, which live in higher layers, registered at their
    import: with the accelerator a parameter's first use per graph and ``E[w]`` append their
    leaves in C.  ``row_dims`` is the lookup's cache of a table's Dim -> one row's Dim."""
    if _fastgraph is not None:
        _fastgraph.configure_leaves(parameters, mutable, _PARAM, _LOOKUP, row_dims)


config.on_backend_change(_cg.renew)  # set_backend(): expressions of the old backend go stale

if _fastgraph is not None:
    _fastgraph.configure(
        Expression,
        _cg,
        OPS,
        {
            "add": _PyExpressionOps.__add__,
            "radd": _PyExpressionOps.__radd__,
            "sub": _PyExpressionOps.__sub__,
            "rsub": _PyExpressionOps.__rsub__,
            "mul": _PyExpressionOps.__mul__,
            "rmul": _PyExpressionOps.__rmul__,
        },
    )
