"""DyNet's expression functions: thin wrappers that turn Python arguments into op
attributes and add one node (primitives) or a few (composites)."""

from __future__ import annotations

import builtins
import inspect
import operator
from collections.abc import Sequence
from numbers import Number

import numpy as np

from . import graph as _graph
from .dim import Dim
from .graph import Expression, _cg
from .graph import unary as _make_unary
from .ops import OPS, check_attr

_add = _cg.add
_add1 = _cg.add1
_add_xy = _cg.add_xy
_leaf = _cg.add_leaf
_floats32 = getattr(_graph._fastgraph, "floats32", None)  # C conversion of a list for inputVector
_O = OPS
_LOOKUP = OPS["lookup"]
_new_expr = object.__new__


def _dim(x, what: str) -> Dim:
    """The Dim of an operand; a non-expression is a TypeError naming the function."""
    try:
        return _cg.dims[x._check()]
    except AttributeError:
        raise TypeError(f"{what}: expected an Expression, got {type(x).__name__} {x!r}") from None


# ============================================================ mutable inputs


class MutableExpression(Expression):
    """An input whose value can be changed with ``set`` and the same graph re-run (made by the input
    functions, lookups and picks; ``i`` and ``v`` as for :class:`Expression`)."""

    __slots__ = ("_kind",)
    _kind: str

    def set(self, value) -> None:
        """Replace the input's value with ``value`` (same number of values; for a lookup or pick: the new
        index or indices) and mark the graph from here on for recomputation.
        """
        i = self._check()
        op, ids, attrs = _cg.nodes[i]
        _cg.nodes[i] = (op, ids, _SETTERS[self._kind](attrs, value))
        _cg.invalidate(i)

    def set_index(self, value) -> None:
        """Alias of :meth:`set` for lookups and picks: ``value`` is the new index (or list of indices)."""
        self.set(value)


def _mutable(e: Expression, kind: str) -> MutableExpression:
    m = MutableExpression(e.i, e.v)
    m._kind = kind
    return m


def _set_data(attrs, value):
    data, d = attrs[0], attrs[-1]
    a = np.asarray(value, dtype=np.float32).reshape(-1)
    if a.size != data.size:
        raise ValueError(f"set: {a.size} values for an input of dim {d} ({data.size} values)")
    return (a.reshape(data.shape, order="F"), d)


def _set_scalar(attrs, value):
    return (np.full((1, 1), float(value), np.float32), attrs[-1])


def _set_lookup(attrs, value):
    st, old, update, d = attrs
    idx = _int_or_ints(value, "set")
    if len(idx) != len(old):
        raise ValueError(f"set: {len(idx)} indices for a lookup of {len(old)}")
    _check_rows(st, idx)
    return (st, idx, update, d)


def _set_pick(attrs, value):
    idx = _int_or_ints(value, "set_index")
    if len(idx) != len(attrs[0]):
        raise ValueError(f"set_index: {len(idx)} indices where the pick has {len(attrs[0])}")
    return (idx,) + tuple(attrs[1:])


def _set_sparse(attrs, value):
    raise ValueError("set: a sparse input tensor cannot be set")


def _set_not_reusable(attrs, value):
    raise ValueError("set: this input was not created with reusable_expr=True")


_SETTERS = {"data": _set_data, "scalar": _set_scalar, "lookup": _set_lookup, "pick": _set_pick,
            "sparse": _set_sparse, "fixed": _set_not_reusable}


def _input(data: np.ndarray, d: Dim, kind: str = "data") -> MutableExpression:
    return _mutable(_leaf(_O["input"], (data, d)), kind)


# ============================================================ inputs


def scalarInput(s: float, device: str = "") -> MutableExpression:
    """A 1-element input holding the number ``s``; ``set`` changes it later.

    Args:
        s (float): the value.
        device (str): accepted for DyNet compatibility; the value lives on the current backend.
    """
    return _input(np.full((1, 1), float(s), np.float32), Dim((1,)), "scalar")


def vecInput(dim: int, device: str = "") -> MutableExpression:
    """A zero vector input of ``dim`` elements, to be filled with ``set``.

    Args:
        dim (int): the number of elements.
        device (str): accepted for DyNet compatibility.
    """
    d = Dim.of(dim, what="vecInput")
    return _input(np.zeros(d.shape, np.float32), d)


def inputVector(v, device: str = "") -> MutableExpression:
    """A vector input from a list of numbers (unbatched, dims ``{len(v)}``).

    Args:
        v (list[float]): the values; must not be empty.
        device (str): accepted for DyNet compatibility.
    """
    a = None
    if _floats32 is not None and type(v) is list:
        # a flat list of floats/ints, the usual case: converted in C (a quarter of numpy's work for it),
        # into a fresh array; anything else takes numpy's path (its conversions and errors)
        try:
            a = np.frombuffer(_floats32(v), np.float32)
        except (TypeError, OverflowError):
            pass
    if a is None:
        a = np.asarray(v, dtype=np.float32).reshape(-1).copy()
    if a.size == 0:
        raise ValueError("inputVector: empty vector")
    return _input(a.reshape(a.size, 1), Dim((a.size,)))


def matInput(d1: int, d2: int) -> MutableExpression:
    """A zero matrix input of dims ``{d1, d2}`` whose value is set later (deprecated in DyNet).

    Args:
        d1 (int): rows.
        d2 (int): columns.
    """
    d = Dim.of((d1, d2), what="matInput")
    return _input(np.zeros(d.shape, np.float32), d)


def inputMatrix(v, d) -> MutableExpression:
    """A matrix input from flat values in column-major order (deprecated in DyNet).

    Args:
        v (list[float]): ``d1 * d2`` values, column by column.
        d (tuple[int, int]): the dims ``(d1, d2)``.
    """
    dim = Dim.of(d, what="inputMatrix")
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    if a.size != dim.size():
        raise ValueError(f"inputMatrix: {a.size} values for dim {dim}")
    return _input(a.reshape(dim.shape, order="F"), dim)


def inputTensor(arr, batched: bool = False, device: str = "", reusable_expr: bool = False) -> MutableExpression:
    """An input expression from a NumPy array or nested list.

    Args:
        arr: the values; a list of arrays is stacked as a batch (one array per batch element).
        batched (bool): if True the last axis of ``arr`` is the batch, so an array of
            shape ``(3, 4, 10)`` gives dims ``{3, 4}`` with batch size 10.
        device (str): accepted for DyNet compatibility.
        reusable_expr (bool): if True the input can be changed with ``set`` and the graph re-run.
    """
    if isinstance(arr, (list, tuple)) and arr and isinstance(arr[0], np.ndarray):
        a = np.stack([np.asarray(x, dtype=np.float32) for x in arr], axis=-1)
        batched = True
    else:
        try:
            a = np.asarray(arr, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"inputTensor: expected an array or nested list of numbers ({e})") from None
    if a.dtype == object:
        raise TypeError("inputTensor: expected an array or nested list of numbers")
    if batched:
        if a.ndim < 1:
            raise ValueError("inputTensor(batched=True): needs at least one axis (the batch)")
        d = Dim.of(a.shape[:-1] or (1,), a.shape[-1], what="inputTensor")
        data = a.reshape(d.shape)
    else:
        d = Dim.of(a.shape or (1,), what="inputTensor")
        data = a.reshape(d.shape)
    return _input(np.array(data, dtype=np.float32), d, "data" if reusable_expr else "fixed")


def inputTensorTranspose(val, dim=None, batch_size: int = 1, device: str = "") -> MutableExpression:
    """An input from values already in DyNet's column-major order (no transposition).

    Args:
        val: the values, flat in column-major order, batch elements one after the other.
        dim: the data dims (default: a vector of all the values).
        batch_size (int): the number of batch elements.
        device (str): accepted for DyNet compatibility.
    """
    a = np.asarray(val, dtype=np.float32).reshape(-1)
    d = Dim.of(dim if dim is not None else a.size, batch_size, what="inputTensorTranspose")
    if a.size != d.total():
        raise ValueError(f"inputTensorTranspose: {a.size} values for dim {d}")
    return _input(a.reshape(d.shape, order="F"), d)


def sparse_inputTensor(idxs, values, shape, batched: bool = False, defval: float = 0,
                       device: str = "") -> MutableExpression:
    """An input tensor given by its non-default entries (stored dense).

    Args:
        idxs: one index array per axis of ``shape``, all as long as ``values``.
        values: the values at those coordinates.
        shape (tuple[int, ...]): the full shape; with ``batched`` its last entry is the batch size.
        batched (bool): the last axis of ``shape`` is the batch.
        defval (float): the value of every entry not listed.
        device (str): accepted for DyNet compatibility.
    """
    shape = tuple(shape)
    if batched:
        d = Dim.of(shape[:-1] or (1,), shape[-1], what="sparse_inputTensor")
    else:
        d = Dim.of(shape, what="sparse_inputTensor")
    dense = np.full(d.shape, float(defval), np.float32)
    idxs = [np.asarray(ix, dtype=np.int64) for ix in idxs]
    vals = np.asarray(values, dtype=np.float32)
    nax = len(shape)
    if len(idxs) != nax:
        raise ValueError(f"sparse_inputTensor: {len(idxs)} index arrays for a shape of {nax} axes")
    for ax, ix in enumerate(idxs):
        if ix.size != vals.size:
            raise ValueError(f"sparse_inputTensor: index array {ax} has {ix.size} entries for {vals.size} values")
        if ix.size and (ix.min() < 0 or ix.max() >= shape[ax]):
            raise IndexError(f"sparse_inputTensor: index out of range on axis {ax} (size {shape[ax]})")
    view = dense.reshape(shape)
    view[tuple(idxs)] = vals
    return _input(dense, d, "sparse")


def one_hot(d: int, idx, device: str = "") -> MutableExpression:
    """A one-hot vector of size ``d`` (a batch of them for a list of indices).

    Args:
        d (int): the vector size.
        idx (int or list[int]): the position of the 1; a list gives one batch element per index.
        device (str): accepted for DyNet compatibility.
    """
    ids = _int_or_ints(idx, "one_hot")
    for i in ids:
        if not 0 <= i < d:
            raise IndexError(f"one_hot: index {i} out of range for size {d}")
    dim = Dim.of(d, len(ids), what="one_hot")
    a = np.zeros(dim.shape, np.float32)
    a[ids, range(len(ids))] = 1.0
    return _input(a, dim)


def _const(dim, value: float, batch_size: int, what: str) -> Expression:
    d = Dim.of(dim, batch_size, what=what)
    return _leaf(_O["constant"], (float(value), d))


def zeros(dim, batch_size: int = 1) -> Expression:
    """A constant expression of zeros.

    Args:
        dim (int or tuple): the data dims.
        batch_size (int): the number of batch elements.
    """
    return _const(dim, 0.0, batch_size, "zeros")


zeroes = zeros


def ones(dim, batch_size: int = 1) -> Expression:
    """A constant expression of ones.

    Args:
        dim (int or tuple): the data dims.
        batch_size (int): the number of batch elements.
    """
    return _const(dim, 1.0, batch_size, "ones")


def constant(dim, x: float, batch_size: int = 1) -> Expression:
    """A constant expression with every element equal to ``x``.

    Args:
        dim (int or tuple): the data dims.
        x (float): the value.
        batch_size (int): the number of batch elements.
    """
    return _const(dim, x, batch_size, "constant")


def random_normal(dim, mean: float = 0.0, stddev: float = 1.0, batch_size: int = 1) -> Expression:
    """Samples from a normal distribution, drawn when the graph runs.

    Args:
        dim (int or tuple): the data dims.
        mean (float): the mean.
        stddev (float): the standard deviation.
        batch_size (int): the number of batch elements (each drawn independently).
    """
    return _leaf(_O["random_normal"], (float(mean), float(stddev), Dim.of(dim, batch_size, what="random_normal")))


def random_bernoulli(dim, p: float, scale: float = 1.0, batch_size: int = 1) -> Expression:
    """Bernoulli samples times ``scale``: each element is ``scale`` with probability ``p``, else 0.

    Args:
        dim (int or tuple): the data dims.
        p (float): the probability of a 1, in [0, 1].
        scale (float): the value of a drawn 1.
        batch_size (int): the number of batch elements.
    """
    return _leaf(_O["random_bernoulli"], (float(p), float(scale), Dim.of(dim, batch_size, what="random_bernoulli")))


def random_uniform(dim, left: float, right: float, batch_size: int = 1) -> Expression:
    """Samples from the uniform distribution on [left, right).

    Args:
        dim (int or tuple): the data dims.
        left (float): the lower bound.
        right (float): the upper bound.
        batch_size (int): the number of batch elements.
    """
    return _leaf(_O["random_uniform"], (float(left), float(right), Dim.of(dim, batch_size, what="random_uniform")))


def random_gumbel(dim, mu: float = 0.0, beta: float = 1.0, batch_size: int = 1) -> Expression:
    """Samples from a Gumbel distribution (DyNet supports only mu=0, beta=1).

    Args:
        dim (int or tuple): the data dims.
        mu (float): the location.
        beta (float): the scale.
        batch_size (int): the number of batch elements.
    """
    return _leaf(_O["random_gumbel"], (float(mu), float(beta), Dim.of(dim, batch_size, what="random_gumbel")))


# ============================================================ parameters in the graph

_notice_shown = False


def parameter(*args):
    """Deprecated in DyNet: parameters join the graph when they are used. Prints a notice once
    and returns its arguments (``args``: Parameters or LookupParameters) unchanged.
    """
    global _notice_shown
    if not _notice_shown:
        import sys

        print("The dy.parameter(...) call is now DEPRECATED.\n"
              "        There is no longer need to explicitly add parameters to the computation graph.\n"
              "        Any used parameter will be added automatically.", file=sys.stderr)
        _notice_shown = True
    for a in args:
        a._check()
    return args[0] if len(args) == 1 else list(args)


def const_parameter(*args):
    """The given parameters as constants: their values enter the graph but receive no gradient.

    Args:
        args: Parameters, LookupParameters or expressions; one in, one out, else a list.
    """
    out = [a.expr(update=False) if hasattr(a, "_st") and not hasattr(a, "batch") else nobackprop(a) for a in args]
    return out[0] if len(out) == 1 else out


def _check_rows(st, idx) -> None:
    n = st.dim.bd
    for i in idx:
        if not 0 <= i < n:
            raise IndexError(f"lookup: index {i} out of range for lookup parameter {st.name} with {n} rows")


def _lookup(p, idx: tuple, update: bool) -> MutableExpression:
    st = p._st
    _check_rows(st, idx)
    from .params import _check_backend

    _check_backend(st, _cg)
    d = Dim(st.dim.d, len(idx))
    return _mutable(_leaf(_O["lookup"], (st, idx, bool(update), d), bool(update)), "lookup")


_ROW_DIMS: dict = {}  # a table's Dim -> the Dim of one of its rows (Dims are interned, hashed by id)


def lookup(p, index: int = 0, update: bool = True) -> MutableExpression:
    # The common case (E[w] in a loop) appends the leaf directly, with the same checks as _lookup.
    """Row ``index`` of a lookup table, as an expression of the table's row dims.

    Args:
        p (LookupParameters): the table.
        index (int): the row, ``0 <= index < number of rows``.
        update (bool): if False, the row receives no gradient (see :func:`const_lookup`).

    ``set(i)`` on the result changes the row looked up.
    """
    st = p._st
    cg = _cg
    sup = cg.supported
    if type(index) is int and update is True and sup is not None and st.backend is cg.backend and "lookup" in sup:
        td = st.dim
        if not 0 <= index < td.bd:
            _check_rows(st, (index,))
        d = _ROW_DIMS.get(td)
        if d is None:
            d = _ROW_DIMS[td] = Dim(td.d, 1)
        n = len(cg.nodes)
        cg.nodes.append((_LOOKUP, (), (st, (index,), True, d)))
        cg.dims.append(d)
        cg.ng.append(True)
        m = _new_expr(MutableExpression)
        m.i = n
        m.v = cg.ver
        m._kind = "lookup"
        if cg.immediate:
            cg.forward_to(n)
        return m
    try:
        i = index.__index__()
    except AttributeError:
        raise TypeError(f"lookup: index must be an int, got {type(index).__name__}") from None
    return _lookup(p, (i,), update)


if _graph._fastgraph is not None:  # E[w] / lookup(E, w) in C (csrc/fastgraph.c); this function for the rest
    _lookup_py = lookup
    lookup = _graph._fastgraph.Lookup(_cg, _lookup_py)
    lookup.__name__ = lookup.__qualname__ = "lookup"
    lookup.__doc__ = _lookup_py.__doc__
    lookup.__signature__ = inspect.signature(_lookup_py)  # type: ignore[attr-defined]
    lookup.__wrapped__ = _lookup_py  # type: ignore[attr-defined]


def const_lookup(p, index: int = 0) -> MutableExpression:
    """Row ``index`` of the table ``p`` without gradient (as ``lookup(p, index, update=False)``).

    Args:
        p (LookupParameters): the table.
        index (int): the row.
    """
    return lookup(p, index, update=False)


def lookup_batch(p, indices: Sequence[int], update: bool = True) -> MutableExpression:
    """Several rows of a lookup table as one batched expression: batch element k is row ``indices[k]``.

    Args:
        p (LookupParameters): the table.
        indices (list[int]): the rows, one per batch element.
        update (bool): if False, the rows receive no gradient.
    """
    idx = _ints(indices, "lookup_batch")
    if not idx:
        raise ValueError("lookup_batch: empty list of indices")
    return _lookup(p, idx, update)


# ============================================================ arithmetic


def _fast(f, op: str, kind: int, attrs=None):
    """``f`` as a C callable (with the compiled accelerator) that adds ``op`` directly for the
    common call form (kind 2: ``f(x, y)``, kind 3: ``f([x, ...])`` with a non-empty list or
    tuple, kind 4: ``f(x, k)`` with an int k as attrs ``((k,),)``) and calls ``f`` itself for
    every other form; ``f`` when pure Python."""
    fg = _graph._fastgraph
    if fg is None:
        return f
    c = fg.Unary(_cg, OPS[op], kind, f, attrs)
    c.__name__ = c.__qualname__ = f.__name__
    c.__doc__ = f.__doc__
    c.__signature__ = inspect.signature(f)
    c.__wrapped__ = f
    return c


def cmult(x, y) -> Expression:
    """Elementwise product ``x * y``.

    Args:
        x (Expression): any dims.
        y (Expression): the dims of x, or size 1 along the dims that broadcast.

    A batch of size 1 is broadcast over the other operand's batch.
    """
    return _add_xy(_O["cmult"], x, y)


cmult = _fast(cmult, "cmult", 2)


def cdiv(x, y) -> Expression:
    """Elementwise quotient ``x / y``.

    Args:
        x (Expression): the dividend.
        y (Expression): the divisor: the dims of x, or size 1 along the dims that broadcast.

    A batch of size 1 is broadcast over the other operand's batch.
    """
    return _add_xy(_O["cdiv"], x, y)


def colwise_add(x, y) -> Expression:
    """Adds the vector ``y`` to every column of the matrix ``x``.

    Args:
        x (Expression): a matrix ``{n, m}``.
        y (Expression): a vector ``{n}``.

    A batch of size 1 is broadcast over the other operand's batch.
    """
    return _add_xy(_O["colwise_add"], x, y)


def affine_transform(exprs: Sequence) -> Expression:
    """``b + W1 * x1 + W2 * x2 + ...`` in one node.

    Args:
        exprs (list[Expression]): ``[b, W1, x1, W2, x2, ...]``; each ``Wi * xi`` is a matrix
            product, all of the same dims; ``b`` has those dims or is a vector added to every column.

    Operands of batch size 1 are broadcast over the batched ones.
    """
    return _add(_O["affine_transform"], tuple(exprs))


affine_transform = _fast(affine_transform, "affine_transform", 3)


def _nonempty(xs, what):
    xs = tuple(xs)
    if not xs:
        raise ValueError(f"{what}: needs at least one expression")
    return xs


def esum(xs: Sequence) -> Expression:
    """The sum of a list of expressions.

    Args:
        xs (list[Expression]): at least one; all of the same dims (trailing size-1 dims ignored).

    Batch size 1 operands are broadcast over the batched ones.
    """
    return _add(_O["sum"], _nonempty(xs, "esum"))


def average(xs: Sequence) -> Expression:
    """The mean of a list of expressions.

    Args:
        xs (list[Expression]): at least one, all of the same dims; batch 1 broadcasts.
    """
    return _add(_O["average"], _nonempty(xs, "average"))


def emax(xs: Sequence) -> Expression:
    """The elementwise maximum over a list of expressions.

    Args:
        xs (list[Expression]): at least one, with dims that broadcast together.
    """
    xs = _nonempty(xs, "emax")
    out = xs[0]
    for x in xs[1:]:
        out = bmax(out, x)
    return out


def bmin(x, y) -> Expression:
    """Elementwise minimum of ``x`` and ``y`` (dims and batch broadcast as in :func:`cmult`).

    Args:
        x (Expression): first operand.
        y (Expression): second operand.
    """
    return _add_xy(_O["bmin"], x, y)


def bmax(x, y) -> Expression:
    """Elementwise maximum of ``x`` and ``y`` (dims and batch broadcast as in :func:`cmult`).

    Args:
        x (Expression): first operand.
        y (Expression): second operand.
    """
    return _add_xy(_O["bmax"], x, y)


def pow(x, y) -> Expression:  # noqa: A001 - DyNet's name
    """``x`` raised elementwise to the scalar power ``y``.

    Args:
        x (Expression): the base, any dims.
        y (Expression): the exponent, a single value.
    """
    return _add(_O["pow"], (x, y))


def dot_product(x, y) -> Expression:
    """The dot product ``sum(x * y)``, dims ``{1}``.

    Args:
        x (Expression): a vector (or tensor).
        y (Expression): the same dims as x.

    Batched: one product per batch element (batch 1 broadcasts).
    """
    return _add_xy(_O["dot_product"], x, y)


def squared_norm(x) -> Expression:
    """The sum of squares of the elements of ``x``, dims ``{1}``, one per batch element.

    Args:
        x (Expression): any dims.
    """
    return _add1(_O["squared_norm"], x)


def l2_norm(x) -> Expression:
    """The Euclidean norm of the elements of ``x``, dims ``{1}``, one per batch element.

    Args:
        x (Expression): any dims.
    """
    return _add1(_O["l2_norm"], x)


# ============================================================ elementwise unary


_UNARY_SIGNATURE = inspect.Signature(
    [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Expression")],
    return_annotation="Expression")


def _unary(name: str):
    """The public function of the one-operand op ``name``, documented from its op record.

    Name, docstring and signature are set once on the callable (C-accelerated where built),
    so the calls cost what they did."""
    op = OPS[name]
    f = _make_unary(op)
    f.__name__ = f.__qualname__ = name
    f.__module__ = "dynet_api"
    f.__doc__ = (f"{op.doc}\n\nArgs:\n    x (Expression): any dims, batched or not.\n\n"
                 "Returns:\n    Expression: the dims and batch size of x.")
    f.__signature__ = _UNARY_SIGNATURE
    return f


tanh = _unary("tanh")
logistic = _unary("logistic")
rectify = _unary("rectify")
selu = _unary("selu")
softsign = _unary("softsign")
exp = _unary("exp")
log = _unary("log")
sqrt = _unary("sqrt")
square = _unary("square")
cube = _unary("cube")
abs = _unary("abs")  # noqa: A001 - DyNet's name
log_sigmoid = _unary("log_sigmoid")
erf = _unary("erf")
lgamma = _unary("lgamma")
negate = _unary("negate")


def elu(x, alpha: float = 1.0) -> Expression:
    """Exponential linear unit of each element: x for x > 0, ``alpha * (exp(x) - 1)`` otherwise.

    Args:
        x (Expression): any dims, batched or not.
        alpha (float): the scale of the negative part.
    """
    return _add1(_O["elu"], x, (float(alpha),))


# ============================================================ softmax family


def softmax(x, d: int = 0) -> Expression:
    """Softmax along dimension ``d`` (each column for d=0, each row for d=1).

    Args:
        x (Expression): a vector or a matrix.
        d (int): the dimension normalised over (0 or 1, never the batch).

    Each batch element is normalised on its own.
    """
    return _add1(_O["softmax"], x, (_int(d, "softmax"),))


def log_softmax(x, restrict=None) -> Expression:
    """Log of the softmax of each column of ``x``.

    Args:
        x (Expression): a vector or a matrix.
        restrict (list[int] or None): if given, only these entries of an unbatched vector take
            part; the others get -inf.

    Each batch element is normalised on its own.
    """
    r = None if restrict is None else _ints(restrict, "log_softmax")
    return _add1(_O["log_softmax"], x, (r,))


def logsumexp(xs: Sequence) -> Expression:
    """Elementwise ``log(sum_i exp(xs[i]))`` over a list of expressions.

    Args:
        xs (list[Expression]): at least one, all of the same dims.
    """
    return _add(_O["logsumexp"], _nonempty(xs, "logsumexp"))


def logsumexp_dim(x, d: int = 0) -> Expression:
    """``log(sum(exp(x)))`` along dimension ``d``, which is removed from the dims.

    Args:
        x (Expression): any dims.
        d (int): the dimension reduced.

    Batch elements are reduced separately.
    """
    return _add1(_O["logsumexp_dim"], x, (_int(d, "logsumexp_dim"),))


# ============================================================ shape


def transpose(x, dims: Sequence[int] = (1, 0)) -> Expression:
    """Permutes the dims of ``x`` (the batch stays last).

    Args:
        x (Expression): any dims.
        dims (list[int]): the new order of the dims; the default swaps rows and columns.
    """
    return _add1(_O["transpose"], x, (_ints(dims, "transpose"),))


def reshape(x, d, batch_size: int = 1) -> Expression:
    """The values of ``x`` with new dims (column-major order kept).

    Args:
        x (Expression): any dims.
        d (int or tuple): the new data dims; same number of values per batch element.
        batch_size (int): the new batch size; with 1, a batched x keeps its batch size.
    """
    xd = _dim(x, "reshape")
    new = Dim.of(d, batch_size, what="reshape")
    if batch_size == 1 and xd.bd > 1 and new.size() == xd.size():
        new = Dim(new.d, xd.bd)
    return _add1(_O["reshape"], x, (new,))


def concatenate(xs: Sequence, d: int = 0) -> Expression:
    """Joins expressions along dimension ``d``.

    Args:
        xs (list[Expression]): at least one; equal dims except along d.
        d (int): the dimension joined along (0: rows, 1: columns).

    Batch 1 operands are broadcast over the batched ones.
    """
    return _add(_O["concatenate"], _nonempty(xs, "concatenate"), (_int(d, "concatenate"),))


concatenate = _fast(concatenate, "concatenate", 3, (0,))


def concatenate_cols(xs: Sequence) -> Expression:
    """Joins expressions side by side as columns (``concatenate(xs, d=1)``).

    Args:
        xs (list[Expression]): at least one, all with the same number of rows.
    """
    return _add(_O["concatenate"], _nonempty(xs, "concatenate_cols"), (1,))


def concatenate_to_batch(xs: Sequence) -> Expression:
    """Stacks expressions as batch elements: the batch sizes add up.

    Args:
        xs (list[Expression]): at least one, all of the same data dims.
    """
    return _add(_O["concatenate_to_batch"], _nonempty(xs, "concatenate_to_batch"))


def _int(v, what: str) -> int:
    """An index or size argument: ints and NumPy integers; a float is refused, never truncated."""
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{what}: expected an int, got {type(v).__name__} {v!r}") from None


def _ints(v, what: str) -> tuple[int, ...]:
    """A list of indices (see _int); a single int is refused where a list is expected."""
    try:
        items = iter(v)
    except TypeError:
        raise TypeError(f"{what}: expected a list of ints, got {type(v).__name__} {v!r}") from None
    return tuple(_int(i, what) for i in items)


def _int_or_ints(v, what: str) -> tuple[int, ...]:
    """One index or a list of them, as DyNet's set/one_hot take."""
    return (_int(v, what),) if isinstance(v, Number) else _ints(v, what)


def select_rows(x, rs: Sequence[int]) -> Expression:
    """The rows ``rs`` of ``x``, in that order (repeats allowed).

    Args:
        x (Expression): a vector or matrix.
        rs (list[int]): row indices.

    The same rows are taken from every batch element.
    """
    return _add1(_O["select_rows"], x, (_ints(rs, "select_rows"),))


def select_cols(x, cs: Sequence[int]) -> Expression:
    """The columns ``cs`` of ``x``, in that order (repeats allowed).

    Args:
        x (Expression): a matrix.
        cs (list[int]): column indices.

    The same columns are taken from every batch element.
    """
    return _add1(_O["select_cols"], x, (_ints(cs, "select_cols"),))


def pick(x, index: int = 0, dim: int = 0) -> MutableExpression:
    """The slice at ``index`` along dimension ``dim`` (that dimension removed): for a vector, one element.

    Args:
        x (Expression): any dims.
        index (int): the position along ``dim``.
        dim (int): the dimension picked from.

    The same index for every batch element; ``set_index`` on the result changes it.
    """
    return _mutable(_add1(_O["pick"], x, ((_int(index, "pick"),), _int(dim, "pick"))), "pick")


def pick_batch(x, indices: Sequence[int], dim: int = 0) -> MutableExpression:
    """One index per batch element along dimension ``dim``.

    Args:
        x (Expression): any dims, batch size 1 or ``len(indices)``.
        indices (list[int]): batch element k takes ``indices[k]``.
        dim (int): the dimension picked from.
    """
    return _mutable(_add1(_O["pick"], x, (_ints(indices, "pick_batch"), _int(dim, "pick_batch"))), "pick")


def pick_batch_elem(x, v: int) -> Expression:
    """Batch element ``v`` of ``x``, as an unbatched expression.

    Args:
        x (Expression): a batched expression.
        v (int): the batch element.
    """
    return _add1(_O["pick_batch_elems"], x, ((_int(v, "pick_batch_elem"),),))


def pick_batch_elems(x, vs: Sequence[int]) -> Expression:
    """The batch elements ``vs`` of ``x``, as a batch of ``len(vs)``.

    Args:
        x (Expression): a batched expression.
        vs (list[int]): the batch elements, in order.
    """
    return _add1(_O["pick_batch_elems"], x, (_ints(vs, "pick_batch_elems"),))


def pickrange(x, s: int, e: int, d: int = 0) -> Expression:
    """The range ``[s, e)`` along dimension ``d``.

    Args:
        x (Expression): any dims.
        s (int): the first index.
        e (int): one past the last index.
        d (int): the dimension sliced.

    Every batch element is sliced the same way.
    """
    return _add1(_O["pickrange"], x, (_int(s, "pick_range"), _int(e, "pick_range"), _int(d, "pick_range")))


pick_range = pickrange


def _getitem(x, index):
    if isinstance(index, tuple) or (isinstance(index, slice) and index.step not in (None, 1)):
        from .functions_more import strided_getitem

        return strided_getitem(x, index)
    d = _cg.dims[x._check()]
    if isinstance(index, slice):
        n = d.d[0]
        start, stop, step = index.indices(n)
        if step != 1:
            raise NotImplementedError("Expression slicing with a step is not supported yet")
        if stop <= start:
            raise IndexError(f"empty slice {index} of an expression of dim {d}")
        return pickrange(x, start, stop)
    try:
        i = index.__index__()
    except AttributeError:
        raise TypeError(f"Expression indices must be ints or slices, got {type(index).__name__}") from None
    n = d.d[0]
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {index} out of range for an expression of dim {d}")
    return pick(x, i)


# ============================================================ reductions


def _all_dims(x, what: str = "reduction") -> tuple[int, ...]:
    return tuple(range(len(_dim(x, what).d)))


def sum_elems(x) -> Expression:
    """The sum of all elements of ``x``, dims ``{1}``, one per batch element.

    Args:
        x (Expression): any dims.
    """
    return _add1(_O["sum_dim"], x, (_all_dims(x, "sum_elems"), False))


def sum_dim(x, d: Sequence[int], b: bool = False, n: int = 0) -> Expression:
    """Sum over the dimensions ``d`` (removed from the dims).

    Args:
        x (Expression): any dims.
        d (list[int]): the dimensions summed over.
        b (bool): also sum over the batch.
        n (int): accepted for DyNet compatibility (unused by a sum).
    """
    return _add1(_O["sum_dim"], x, (_ints(d, "sum_dim"), bool(b)))


def sum_batches(x) -> Expression:
    """The sum over the batch elements of ``x`` (an unbatched expression of x's dims).

    Args:
        x (Expression): a batched expression.
    """
    return _add1(_O["sum_dim"], x, ((), True))


def moment_dim(x, d: Sequence[int], r: int, b: bool = False, n: int = 0) -> Expression:
    """The raw moment of order ``r`` (the mean of ``x**r``) over the dimensions ``d``.

    Args:
        x (Expression): any dims.
        d (list[int]): the dimensions reduced.
        r (int): the order (1 is the mean).
        b (bool): also reduce over the batch.
        n (int): if > 0, the divisor used instead of the number of elements.
    """
    return _add1(_O["moment_dim"], x, (_ints(d, "moment_dim"), bool(b), _int(r, "moment_dim"), _int(n, "moment_dim")))


def mean_dim(x, d: Sequence[int], b: bool = False, n: int = 0) -> Expression:
    """The mean over the dimensions ``d``.

    Args:
        x (Expression): any dims.
        d (list[int]): the dimensions averaged.
        b (bool): also average over the batch.
        n (int): if > 0, the divisor used instead of the number of elements.
    """
    return moment_dim(x, d, 1, b, n)


def mean_elems(x) -> Expression:
    """The mean of all elements of ``x``, dims ``{1}``, one per batch element.

    Args:
        x (Expression): any dims.
    """
    return moment_dim(x, _all_dims(x, "mean_elems"), 1)


def mean_batches(x) -> Expression:
    """The mean over the batch elements of ``x``.

    Args:
        x (Expression): a batched expression.
    """
    return moment_dim(x, (), 1, True)


# ============================================================ losses


def pickneglogsoftmax(x, v: int) -> Expression:
    """The negative log-softmax of the scores ``x`` at the class ``v``: ``-log softmax(x)[v]``.

    Args:
        x (Expression): a vector of scores ``{n}``.
        v (int): the true class, ``0 <= v < n``.

    For a batched x use :func:`pickneglogsoftmax_batch`.
    """
    return _add1(_O["pickneglogsoftmax"], x, ((_int(v, "pickneglogsoftmax"),),))


pickneglogsoftmax = _fast(pickneglogsoftmax, "pickneglogsoftmax", 4)


def pickneglogsoftmax_batch(x, vs: Sequence[int]) -> Expression:
    """:func:`pickneglogsoftmax` per batch element: element k is ``-log softmax(x_k)[vs[k]]``.

    Args:
        x (Expression): a batch of score vectors ``{n}``.
        vs (list[int]): one class per batch element.
    """
    return _add1(_O["pickneglogsoftmax"], x, (_ints(vs, "pickneglogsoftmax_batch"),))


def _margin(m: float, what: str) -> float:
    """DyNet refuses negative margins (its Hinge asserts margin >= 0)."""
    check_attr(_O["hinge"], "m", m, what)
    return float(m)


def hinge(x, index: int, m: float = 1.0) -> Expression:
    """Multiclass hinge loss ``sum_{j != index} max(0, m - x[index] + x[j])``, dims ``{1}``.

    Args:
        x (Expression): a vector of scores.
        index (int): the true class.
        m (float): the margin (not negative).
    """
    m = _margin(m, "hinge")
    return _add1(_O["hinge"], x, ((_int(index, "hinge"),), float(m)))


def hinge_batch(x, indices: Sequence[int], m: float = 1.0) -> Expression:
    """:func:`hinge` per batch element, with one true class each.

    Args:
        x (Expression): a batch of score vectors.
        indices (list[int]): one class per batch element.
        m (float): the margin (not negative).
    """
    m = _margin(m, "hinge_batch")
    return _add1(_O["hinge"], x, (_ints(indices, "hinge_batch"), float(m)))


def binary_log_loss(x, y) -> Expression:
    """Binary cross-entropy ``-sum(y log x + (1 - y) log(1 - x))``, dims ``{1}``.

    Args:
        x (Expression): predicted probabilities in (0, 1).
        y (Expression): targets, the same dims.

    Unbatched only, as in DyNet.
    """
    return _add_xy(_O["binary_log_loss"], x, y)


def squared_distance(x, y) -> Expression:
    """``sum((x - y)^2)``, dims ``{1}``.

    Args:
        x (Expression): any dims.
        y (Expression): the same dims.

    One distance per batch element (batch 1 broadcasts).
    """
    return _add_xy(_O["squared_distance"], x, y)


def l1_distance(x, y) -> Expression:
    """``sum(|x - y|)``, dims ``{1}`` (unbatched).

    Args:
        x (Expression): any dims.
        y (Expression): the same dims.
    """
    return _add_xy(_O["l1_distance"], x, y)


def huber_distance(x, y, c: float = 1.345) -> Expression:
    """The Huber distance between ``x`` and ``y``: quadratic below ``c``, linear above; dims ``{1}``.

    Args:
        x (Expression): any dims.
        y (Expression): the same dims.
        c (float): the threshold between the two regimes.
    """
    return _add(_O["huber_distance"], (x, y), (float(c),))


# ============================================================ gradient control


def nobackprop(x) -> Expression:
    """``x`` unchanged, but no gradient flows back through it.

    Args:
        x (Expression): any dims.
    """
    return _add1(_O["nobackprop"], x)


def flip_gradient(x) -> Expression:
    """``x`` unchanged forward; the gradient flowing back is negated.

    Args:
        x (Expression): any dims.
    """
    return _add1(_O["scale_gradient"], x, (-1.0,))


def scale_gradient(x, lambd: float = 1.0) -> Expression:
    """``x`` unchanged forward; the gradient flowing back is multiplied by ``lambd``.

    Args:
        x (Expression): any dims.
        lambd (float): the gradient factor.
    """
    return _add1(_O["scale_gradient"], x, (float(lambd),))


def argmax(x, gradient_mode: str = "zero_gradient") -> Expression:
    """A one-hot vector at the position of the largest element of ``x``.

    Args:
        x (Expression): a vector (batched or not).
        gradient_mode (str): ``"zero_gradient"`` (no gradient) or ``"straight_through_gradient"``
            (the incoming gradient passes unchanged).
    """
    if gradient_mode not in ("zero_gradient", "straight_through_gradient"):
        raise ValueError("argmax: gradient_mode must be 'zero_gradient' or 'straight_through_gradient', "
                         f"got {gradient_mode!r}")
    return _add1(_O["argmax"], x, (gradient_mode == "straight_through_gradient",))


# ============================================================ dropout and noise (composites)


def _mask(x, p: float, shape_of, what: str) -> Expression:
    check_attr(_O["random_bernoulli"], "p", p, what)
    d, bd = shape_of(_dim(x, what))
    return random_bernoulli(d, 1.0 - p, 1.0 / (1.0 - p) if p < 1.0 else 0.0, bd)  # p == 1 drops all, as DyNet


def dropout(x, p: float) -> Expression:
    """Zeroes each element with probability ``p`` and scales the rest by ``1 / (1 - p)``.

    Args:
        x (Expression): any dims.
        p (float): the drop probability in [0, 1].

    Each batch element draws its own mask.
    """
    if p == 0:
        return x
    return cmult(x, _mask(x, p, lambda d: (d.d, d.bd), "dropout"))


def dropout_dim(x, d: int, p: float) -> Expression:
    """Dropout of whole slices: one draw per position along every dimension except ``d``.

    Args:
        x (Expression): any dims.
        d (int): the dimension along which the mask is shared.
        p (float): the drop probability.
    """
    def shape(xd):
        if not 0 <= d < len(xd.d):
            raise ValueError(f"dropout_dim: dimension {d} out of range for {xd}")
        dd = list(xd.d)
        dd[d] = 1
        return tuple(dd), xd.bd

    if p == 0:
        return x
    return cmult(x, _mask(x, p, shape, "dropout_dim"))


def dropout_batch(x, p: float) -> Expression:
    """Drops whole batch elements: one draw per batch element.

    Args:
        x (Expression): a batched expression.
        p (float): the drop probability.
    """
    if p == 0:
        return x
    return cmult(x, _mask(x, p, lambda d: ((1,), d.bd), "dropout_batch"))


def block_dropout(x, p: float) -> Expression:
    """Drops all of ``x`` (every batch element) with probability ``p``, else scales it by ``1 / (1 - p)``.

    Args:
        x (Expression): any dims.
        p (float): the drop probability.
    """
    if p == 0:
        return x
    return cmult(x, _mask(x, p, lambda d: ((1,), 1), "block_dropout"))


def noise(x, stddev: float) -> Expression:
    """``x`` plus Gaussian noise of standard deviation ``stddev`` (drawn per element and batch element).

    Args:
        x (Expression): any dims.
        stddev (float): the noise's standard deviation.
    """
    check_attr(_O["random_normal"], "stddev", stddev, "noise")
    d = _dim(x, "noise")
    return x + random_normal(d.d, 0.0, stddev, d.bd)


# ============================================================ evaluation helpers


def forward(exprs: Sequence, recalculate: bool = False) -> None:
    """Computes the values of the given expressions.

    Args:
        exprs (list[Expression]): the expressions.
        recalculate (bool): recompute everything instead of reusing computed values.
    """
    exprs = list(exprs)
    if not exprs:
        return
    if recalculate:
        _cg.invalidate(0)
    _cg.forward_to(builtins.max(e._check() for e in exprs))


def values(exprs: Sequence, recalculate: bool = False) -> list:
    """The values of the given expressions (as :meth:`Expression.value`), computed together.

    Args:
        exprs (list[Expression]): the expressions.
        recalculate (bool): recompute everything.
    """
    forward(exprs, recalculate)
    return [e.value() for e in exprs]


def npvalues(exprs: Sequence, recalculate: bool = False) -> list:
    """The values of the given expressions as NumPy arrays, computed together.

    Args:
        exprs (list[Expression]): the expressions.
        recalculate (bool): recompute everything.
    """
    forward(exprs, recalculate)
    return [e.npvalue() for e in exprs]
