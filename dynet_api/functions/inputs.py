"""Leaves: inputs whose value ``set`` can change, constants, random tensors, and parameters and lookups in the graph."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence

import numpy as np

from ..accelerator import fastgraph as _fastgraph
from ..dim import Dim
from ..graph import Expression, _cg
from ..graph import register_leaf_types as _register_leaf_types
from ..ops import OPS
from ..params import Parameters as _Parameters
from ..params import _check_backend
from ..params import register_lookups as _register_lookups
from ._common import _O, _int_or_ints, _ints, _leaf, _new_expr, public_names
from .arithmetic import nobackprop

_floats32 = getattr(_fastgraph, "floats32", None)  # C conversion of a list for inputVector

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


_LOOKUP = OPS["lookup"]
_INPUT = OPS["input"]
_VECTOR_DIMS: dict[int, Dim] = {}  # n -> Dim((n,)), for inputVector
_ndarray, _F32 = np.ndarray, np.float32


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


def _append_leaf(op, attrs: tuple, d: Dim, ng: bool, kind: str) -> MutableExpression:
    """``add_leaf``'s work without its checks, for the fast paths that made them (a supported leaf
    on the bound backend): the three appends and the handle, made once."""
    cg = _cg
    k = len(cg.dims)
    cg.append_node(op, (), attrs)
    cg.dims.append(d)
    cg.ng.append(ng)
    m = _new_expr(MutableExpression)
    m.i = k
    m.v = cg.ver
    m._kind = kind
    if cg.immediate:
        cg.forward_to(k)
    return m


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
            buf = _floats32(v)
        except (TypeError, OverflowError):
            pass
        else:
            n = len(v)
            cg = _cg
            sup = cg.supported
            if n and sup is not None and "input" in sup:  # the leaf appended directly (add_leaf's work)
                d = _VECTOR_DIMS.get(n)
                if d is None:
                    d = _VECTOR_DIMS[n] = Dim((n,))
                return _append_leaf(_INPUT, (_ndarray((n, 1), _F32, buf), d), d, False, "data")
            a = np.frombuffer(buf, np.float32)
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


_notice_shown = False


def parameter(*args):
    """Deprecated in DyNet: parameters join the graph when they are used. Prints a notice once
    and returns its arguments (``args``: Parameters or LookupParameters) unchanged.
    """
    global _notice_shown
    if not _notice_shown:
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
        return _append_leaf(_LOOKUP, (st, (index,), True, d), d, True, "lookup")
    try:
        i = index.__index__()
    except AttributeError:
        raise TypeError(f"lookup: index must be an int, got {type(index).__name__}") from None
    return _lookup(p, (i,), update)


if _fastgraph is not None:  # E[w] / lookup(E, w) in C (csrc/fastgraph.c); this function for the rest
    _lookup_py = lookup
    lookup = _fastgraph.Lookup(_cg, _lookup_py)
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


_register_lookups(lookup, lookup_batch)


_register_leaf_types(_Parameters, MutableExpression, _ROW_DIMS)

__all__ = public_names(globals(), _IMPORTED)
