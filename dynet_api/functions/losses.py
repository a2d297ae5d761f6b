"""Losses: negative log-softmax picks, hinges, distances, log-loss, rank and Poisson losses."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

from ..graph import Expression
from ..ops import check_attr
from ._common import _O, _add, _add1, _add2, _fast, _int, _ints, public_names

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


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
    return _add2(_O["binary_log_loss"], x, y)


def squared_distance(x, y) -> Expression:
    """``sum((x - y)^2)``, dims ``{1}``.

    Args:
        x (Expression): any dims.
        y (Expression): the same dims.

    One distance per batch element (batch 1 broadcasts).
    """
    return _add2(_O["squared_distance"], x, y)


def l1_distance(x, y) -> Expression:
    """``sum(|x - y|)``, dims ``{1}`` (unbatched).

    Args:
        x (Expression): any dims.
        y (Expression): the same dims.
    """
    return _add2(_O["l1_distance"], x, y)


def huber_distance(x, y, c: float = 1.345) -> Expression:
    """The Huber distance between ``x`` and ``y``: quadratic below ``c``, linear above; dims ``{1}``.

    Args:
        x (Expression): any dims.
        y (Expression): the same dims.
        c (float): the threshold between the two regimes.
    """
    return _add(_O["huber_distance"], (x, y), (float(c),))


def sparsemax_loss(x, target_support: Sequence[int]) -> Expression:
    """The sparsemax loss of the scores ``x`` against the uniform distribution over
    ``target_support``; dims ``{1}``.

    Args:
        x (Expression): a vector of scores (unbatched).
        target_support (list[int]): the gold indices, at least one.
    """
    return _add1(_O["sparsemax_loss"], x, (_ints(target_support, "sparsemax_loss"),))


def hinge_dim(x, v, d: int = 0, m: float = 1.0) -> Expression:
    """Hinge loss of every column (``d=0``) or row (``d=1``) of the matrix ``x``.

    Args:
        x (Expression): a matrix of scores.
        v (list[int] or list[list[int]]): one gold index per column (row); a list of such
            lists gives one per batch element.
        d (int): 0 for columns, 1 for rows.
        m (float): the margin (not negative).
    """
    v = list(v)
    if v and not isinstance(v[0], Number):
        idx = tuple(_ints(u, "hinge_dim") for u in v)
    else:
        idx = (_ints(v, "hinge_dim"),)
    return _add1(_O["hinge_dim"], x, (idx, _int(d, "hinge_dim"), float(m)))


def pairwise_rank_loss(x, y, m: float = 1.0) -> Expression:
    """The pairwise ranking loss ``max(0, m - x + y)``, elementwise.

    Args:
        x (Expression): scores that should be higher, a row vector ``{1}`` or ``{1, n}``.
        y (Expression): scores that should be lower, the same dims.
        m (float): the margin.
    """
    return _add(_O["pairwise_rank_loss"], (x, y), (float(m),))


def poisson_loss(log_lambda, x: int) -> Expression:
    """The negative log-likelihood of the count ``x`` under a Poisson with rate ``exp(log_lambda)``.

    Args:
        log_lambda (Expression): a scalar, the log of the rate (unbatched).
        x (int): the observed count, >= 0.
    """
    try:
        k = x.__index__()
    except AttributeError:
        raise TypeError(f"poisson_loss: the observed count must be an int, got {x!r}") from None
    return _add1(_O["poisson_loss"], log_lambda, (k,))

__all__ = public_names(globals(), _IMPORTED)
