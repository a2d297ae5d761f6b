"""Shape ops: transpose, reshape, concatenation, row/column selection, picks, slices and ``Expression[...]``."""

from __future__ import annotations

from collections.abc import Sequence

from ..dim import Dim
from ..graph import Expression, _cg
from ..graph import register_indexing as _register_indexing
from ._common import _O, _add, _add1, _dim, _fast, _int, _ints, _nonempty, public_names
from .inputs import MutableExpression, _mutable

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


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


def strided_select(x, strides: Sequence[int], range_from: Sequence[int] = (),
                   range_to: Sequence[int] = ()) -> Expression:
    """A strided slice: along each dimension k, the elements ``range_from[k]``,
    ``range_from[k] + strides[k]``, ... below ``range_to[k]``.

    Args:
        x (Expression): any dims.
        strides (list[int]): the step per dimension (missing entries: 1); the entry after the last
            data dimension applies to the batch.
        range_from (list[int]): the start per dimension (missing: 0).
        range_to (list[int]): the end (exclusive) per dimension (missing: the size).
    """
    return _add1(_O["strided_select"], x, (_ints(strides, "strided_select"), _ints(range_from, "strided_select"),
                                           _ints(range_to, "strided_select")))


def _strided_getitem(x, index) -> Expression:
    """``x[index]`` for a slice with a step or a tuple of slices, as DyNet's ``__getitem__``.

    Args:
        x (Expression): any dims.
        index (slice or tuple[slice, ...]): one slice per dimension; the position after the
            last data dimension slices the batch.

    Negative and out-of-range bounds follow Python slicing (DyNet rejects them).
    """
    d = _dim(x, "Expression[]")
    sizes = d.d + (d.bd,)
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > len(sizes):
        raise IndexError(f"too many indices ({len(parts)}) for an expression of dim {d} ({len(sizes)} with the batch)")
    steps, starts, stops = [], [], []
    for k, s in enumerate(parts):
        if not isinstance(s, slice):
            raise TypeError(f"Expression indices in a tuple must be slices, got {type(s).__name__} at position {k}")
        if s.step is not None and s.step <= 0:
            raise IndexError(f"steps must be positive, got: {s.step}")
        start, stop, step = s.indices(sizes[k])
        if stop <= start:
            raise IndexError(f"empty slice {s} of dimension {k} (size {sizes[k]}) of an expression of dim {d}")
        steps.append(step)
        starts.append(start)
        stops.append(stop)
    return strided_select(x, steps, starts, stops)


def _getitem(x, index):
    if isinstance(index, tuple) or (isinstance(index, slice) and index.step not in (None, 1)):
        return _strided_getitem(x, index)
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


_register_indexing(_getitem)

__all__ = public_names(globals(), _IMPORTED)
