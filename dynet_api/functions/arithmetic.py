"""Arithmetic, elementwise math (the op table's arithmetic and elementwise-unary sections, trig and rounding
included) and gradient control."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Expression
from ._common import _O, _add, _add1, _add2, _fast, _gradient_mode, _nonempty, _unary, public_names

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


def cmult(x, y) -> Expression:
    """Elementwise product ``x * y``.

    Args:
        x (Expression): any dims.
        y (Expression): the dims of x, or size 1 along the dims that broadcast.

    A batch of size 1 is broadcast over the other operand's batch.
    """
    return _add2(_O["cmult"], x, y)


cmult = _fast(cmult, "cmult", 2)


def cdiv(x, y) -> Expression:
    """Elementwise quotient ``x / y``.

    Args:
        x (Expression): the dividend.
        y (Expression): the divisor: the dims of x, or size 1 along the dims that broadcast.

    A batch of size 1 is broadcast over the other operand's batch.
    """
    return _add2(_O["cdiv"], x, y)


def colwise_add(x, y) -> Expression:
    """Adds the vector ``y`` to every column of the matrix ``x``.

    Args:
        x (Expression): a matrix ``{n, m}``.
        y (Expression): a vector ``{n}``.

    A batch of size 1 is broadcast over the other operand's batch.
    """
    return _add2(_O["colwise_add"], x, y)


def affine_transform(exprs: Sequence) -> Expression:
    """``b + W1 * x1 + W2 * x2 + ...`` in one node.

    Args:
        exprs (list[Expression]): ``[b, W1, x1, W2, x2, ...]``; each ``Wi * xi`` is a matrix
            product, all of the same dims; ``b`` has those dims or is a vector added to every column.

    Operands of batch size 1 are broadcast over the batched ones.
    """
    return _add(_O["affine_transform"], tuple(exprs))


affine_transform = _fast(affine_transform, "affine_transform", 3)


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
    return _add2(_O["bmin"], x, y)


def bmax(x, y) -> Expression:
    """Elementwise maximum of ``x`` and ``y`` (dims and batch broadcast as in :func:`cmult`).

    Args:
        x (Expression): first operand.
        y (Expression): second operand.
    """
    return _add2(_O["bmax"], x, y)


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
    return _add2(_O["dot_product"], x, y)


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


sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
asin = _unary("asin")
acos = _unary("acos")
atan = _unary("atan")
sinh = _unary("sinh")
cosh = _unary("cosh")
asinh = _unary("asinh")
acosh = _unary("acosh")
atanh = _unary("atanh")


def silu(x, beta: float = 1.0) -> Expression:
    """SiLU (swish) of each element, ``x * sigmoid(beta * x)``.

    Args:
        x (Expression): any dims, batched or not.
        beta (float): the slope inside the sigmoid.
    """
    return _add1(_O["silu"], x, (float(beta),))


def round(x, gradient_mode: str = "zero_gradient") -> Expression:  # noqa: A001 - DyNet's name
    """Each element rounded to the nearest integer (halves away from zero).

    Args:
        x (Expression): any dims, batched or not.
        gradient_mode (str): ``"zero_gradient"`` or ``"straight_through_gradient"`` (the incoming
            gradient passes unchanged).
    """
    return _add1(_O["round"], x, _gradient_mode("round", gradient_mode))


def ceil(x, gradient_mode: str = "zero_gradient") -> Expression:
    """Each element rounded up.

    Args:
        x (Expression): any dims, batched or not.
        gradient_mode (str): ``"zero_gradient"`` or ``"straight_through_gradient"``.
    """
    return _add1(_O["ceil"], x, _gradient_mode("ceil", gradient_mode))


def floor(x, gradient_mode: str = "zero_gradient") -> Expression:
    """Each element rounded down.

    Args:
        x (Expression): any dims, batched or not.
        gradient_mode (str): ``"zero_gradient"`` or ``"straight_through_gradient"``.
    """
    return _add1(_O["floor"], x, _gradient_mode("floor", gradient_mode))

__all__ = public_names(globals(), _IMPORTED)
