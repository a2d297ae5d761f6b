"""Linear algebra, convolution and pooling: inverse, logdet, tensor contractions, circular and 2-D convolution,
max-pooling, row folding, k-max pooling and n-gram filters."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Expression
from ._common import _O, _add, _add1, _dim, _int, _ints, public_names
from .shape import reshape

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


def kmax_pooling(x, k: int, d: int = 1) -> Expression:
    """The ``k`` largest values along dimension ``d``, kept in their original order.

    Args:
        x (Expression): up to 3 dims.
        k (int): how many values to keep, ``1 <= k <=`` the size of dimension d.
        d (int): the dimension pooled over.
    """
    return _add1(_O["kmax_pooling"], x, (_int(k, "kmax_pooling"), _int(d, "kmax_pooling")))


def inverse(x) -> Expression:
    """The inverse of the square matrix ``x`` (unbatched).

    Args:
        x (Expression): an invertible square matrix.
    """
    return _add1(_O["inverse"], x)


def logdet(x) -> Expression:
    """The log of the determinant of the square matrix ``x``, dims ``{1}`` (unbatched).

    Args:
        x (Expression): a square matrix with a positive determinant.
    """
    return _add1(_O["logdet"], x)


def trace_of_product(x, y) -> Expression:
    """The trace of ``x`` times the transpose of ``y``, dims ``{1}`` (unbatched).

    Args:
        x (Expression): a matrix.
        y (Expression): a matrix of the same dims.
    """
    return _add(_O["trace_of_product"], (x, y))


def contract3d_1d(x, y) -> Expression:
    """Contracts the last dimension of the 3-tensor ``x`` with the vector ``y``:
    ``out[i, j] = sum_k x[i, j, k] * y[k]``.

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.

    Either operand may be batched (batch 1 broadcasts).
    """
    return _add(_O["contract3d_1d"], (x, y))


def contract3d_1d_bias(x, y, b) -> Expression:
    """:func:`contract3d_1d` plus the matrix ``b``.

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.
        b (Expression): a matrix ``{i, j}``.
    """
    return contract3d_1d(x, y) + b


def contract3d_1d_1d(x, y, z) -> Expression:
    """Contracts the 3-tensor ``x`` with two vectors:
    ``out[i] = sum_jk x[i, j, k] * y[k] * z[j]`` (unbatched).

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.
        z (Expression): a vector ``{j}``.
    """
    return _add(_O["contract3d_1d_1d"], (x, y, z))


def contract3d_1d_1d_bias(x, y, z, b) -> Expression:
    """:func:`contract3d_1d_1d` plus the vector ``b``.

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.
        z (Expression): a vector ``{j}``.
        b (Expression): a vector ``{i}``.
    """
    return contract3d_1d_1d(x, y, z) + b


def circ_conv(u, v) -> Expression:
    """The circular convolution of two vectors of the same size (unbatched).

    Args:
        u (Expression): a vector.
        v (Expression): a vector of the same size.
    """
    return _add(_O["circ_conv"], (u, v))


def circ_corr(u, v) -> Expression:
    """The circular correlation of two vectors of the same size (unbatched).

    Args:
        u (Expression): a vector.
        v (Expression): a vector of the same size.
    """
    return _add(_O["circ_corr"], (u, v))


def _pair(v, what: str) -> tuple[int, int]:
    t = _ints(v, what)
    if len(t) != 2:
        raise ValueError(f"{what}: expected two ints, got {list(t)}")
    return t


def conv2d(x, f, stride: Sequence[int], is_valid: bool = True) -> Expression:
    """2-D convolution (cross-correlation, as DyNet and TensorFlow compute it).

    Args:
        x (Expression): the input ``{H, W, C_in}``, batched or not; a 2-d input ``{H, W}`` is one
            input channel, as in DyNet.
        f (Expression): the filters ``{kh, kw, C_in, C_out}``, unbatched.
        stride (list[int]): the row and column strides.
        is_valid (bool): True for VALID padding (no padding), False for SAME (TensorFlow's rule).

    Returns ``{H', W', C_out}`` per batch element.
    """
    xd = _dim(x, "conv2d")
    if len(xd.d) == 2:
        x = reshape(x, xd.d + (1,), xd.bd)
    return _add(_O["conv2d"], (x, f), (_pair(stride, "conv2d stride"), bool(is_valid)))


def conv2d_bias(x, f, b, stride: Sequence[int], is_valid: bool = True) -> Expression:
    """:func:`conv2d` plus a bias per output channel.

    Args:
        x (Expression): the input ``{H, W, C_in}``.
        f (Expression): the filters ``{kh, kw, C_in, C_out}``.
        b (Expression): the bias ``{C_out}``.
        stride (list[int]): the row and column strides.
        is_valid (bool): VALID (True) or SAME (False) padding.
    """
    y = conv2d(x, f, stride, is_valid)
    bd = _dim(b, "conv2d_bias")
    return y + reshape(b, (1, 1, bd.size()), bd.bd)


def maxpooling2d(x, ksize: Sequence[int], stride: Sequence[int], is_valid: bool = True) -> Expression:
    """2-D max pooling over windows of ``ksize``.

    Args:
        x (Expression): ``{H, W}`` or ``{H, W, C}``, batched or not.
        ksize (list[int]): the window's rows and columns.
        stride (list[int]): the row and column strides.
        is_valid (bool): VALID (True) or SAME (False) padding.
    """
    return _add1(_O["maxpooling2d"], x, (_pair(ksize, "maxpooling2d ksize"), _pair(stride, "maxpooling2d stride"),
                                         bool(is_valid)))


def filter1d_narrow(x, f) -> Expression:
    """Narrow 1-D convolution of the matrix ``x`` with the filters ``f`` (unbatched).

    Args:
        x (Expression): a matrix ``{d, s}``.
        f (Expression): filters ``{d, m}`` or ``{d, m, n}`` with ``m <= s``.

    Returns ``{n, s - m + 1}``: one row per filter.
    """
    return _add(_O["filter1d_narrow"], (x, f))


def fold_rows(x, nrows: int = 2) -> Expression:
    """Sums each group of ``nrows`` consecutive rows (unbatched).

    Args:
        x (Expression): a matrix whose rows are a multiple of nrows.
        nrows (int): the group size.
    """
    return _add1(_O["fold_rows"], x, (_int(nrows, "fold_rows"),))


def kmh_ngram(x, v: int) -> Expression:
    """Sums of ``v`` consecutive columns of a matrix (unbatched).

    Args:
        x (Expression): a matrix ``{d, s}``.
        v (int): the n-gram width, ``1 <= v <= s``.
    """
    return _add1(_O["kmh_ngram"], x, (_int(v, "kmh_ngram"),))

__all__ = public_names(globals(), _IMPORTED)
