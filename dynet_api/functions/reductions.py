"""Reductions and the softmax family: sums, means, moments, extrema and cumulative sums along dimensions,
softmax, log-softmax, logsumexp, sparsemax."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Expression
from ._common import _O, _add, _add1, _all_dims, _int, _ints, _nonempty, public_names

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


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


def sparsemax(x) -> Expression:
    """Sparsemax: the Euclidean projection of the vector ``x`` onto the probability simplex
    (a distribution in which many entries are exactly 0).

    Args:
        x (Expression): a vector; unbatched only, as in DyNet.
    """
    return _add1(_O["sparsemax"], x)


def constrained_softmax(x, y) -> Expression:
    """A softmax of ``x`` whose probabilities are capped elementwise by ``y``.

    Args:
        x (Expression): a vector of scores (unbatched).
        y (Expression): upper bounds in (0, 1], the size of x.
    """
    return _add(_O["constrained_softmax"], (x, y))


def max_dim(x, d: int = 0) -> Expression:
    """The maximum along dimension ``d`` (removed from the dims).

    Args:
        x (Expression): up to 3 dims.
        d (int): the dimension reduced.

    Batch elements are reduced separately.
    """
    return _add1(_O["max_dim"], x, (_int(d, "max_dim"),))


def min_dim(x, d: int = 0) -> Expression:
    """The minimum along dimension ``d`` (removed from the dims).

    Args:
        x (Expression): up to 3 dims.
        d (int): the dimension reduced.
    """
    return _add1(_O["min_dim"], x, (_int(d, "min_dim"),))


def cumsum(x, d: int = 0) -> Expression:
    """The cumulative sum along dimension ``d`` (dims unchanged).

    Args:
        x (Expression): any dims, batched or not.
        d (int): the dimension summed along.
    """
    return _add1(_O["cumsum"], x, (_int(d, "cumsum"),))


def moment_elems(x, r: int) -> Expression:
    """The raw moment of order ``r`` (mean of ``x**r``) of all elements, one per batch element.

    Args:
        x (Expression): any dims.
        r (int): the order.
    """
    return moment_dim(x, _all_dims(x, "moment_elems"), r)


def moment_batches(x, r: int) -> Expression:
    """The raw moment of order ``r`` over the batch elements.

    Args:
        x (Expression): a batched expression.
        r (int): the order.
    """
    return moment_dim(x, (), r, True)


def std_dim(x, d: Sequence[int], b: bool = False, n: int = 0) -> Expression:
    """The population standard deviation over the dimensions ``d``.

    Args:
        x (Expression): any dims.
        d (list[int]): the dimensions reduced.
        b (bool): also reduce over the batch.
        n (int): if > 0, the divisor used instead of the number of elements.
    """
    return _add1(_O["std_dim"], x, (_ints(d, "std_dim"), bool(b), _int(n, "std_dim")))


def std_elems(x) -> Expression:
    """The standard deviation of all elements of ``x``, one per batch element.

    Args:
        x (Expression): any dims.
    """
    return std_dim(x, _all_dims(x, "std_elems"))


def std_batches(x) -> Expression:
    """The standard deviation over the batch elements of ``x``.

    Args:
        x (Expression): a batched expression.
    """
    return std_dim(x, (), True)

__all__ = public_names(globals(), _IMPORTED)
