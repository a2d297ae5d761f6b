"""Elementwise unary kernels (activations, exp/log, trigonometric, rounding) and gradient control.

Each unary op is one row of :func:`unary_table`: ``f(x, attrs)`` gives the output and
``df(x, y, dy, attrs)`` the input's gradient.  The special functions come from
``special`` (``scipy.special``; ``cupyx.scipy.special`` on a GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

F32 = np.float32
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
TWO_OVER_SQRT_PI = F32(2 / math.sqrt(math.pi))


def sigmoid(xp: Any, x: Any) -> Any:
    """The logistic function in x's dtype, with no overflow (exp of -|x| only)."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def sigmoid_tanh(xp: Any, x: Any) -> Any:
    """The logistic function in its tanh form (silu's and the fused LSTM gates')."""
    return 0.5 + 0.5 * xp.tanh(0.5 * x)


def unary_table(xp: Any, special: Any) -> dict[str, tuple[Callable, Callable]]:
    """op name -> (f(x, attrs), df(x, y, dy, attrs)) over the array module ``xp``."""

    def elu(x, a):
        return xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)) * F32(a.alpha)).astype(x.dtype)

    def elu_b(x, y, g, a):
        return g * xp.where(x > 0, 1, xp.exp(xp.minimum(x, 0)) * F32(a.alpha)).astype(x.dtype)

    def selu(x, a):
        return (SELU_LAMBDA * xp.where(x > 0, x, SELU_ALPHA * xp.expm1(xp.minimum(x, 0)))).astype(x.dtype)

    def selu_b(x, y, g, a):
        return g * (SELU_LAMBDA * xp.where(x > 0, 1, SELU_ALPHA * xp.exp(xp.minimum(x, 0)))).astype(x.dtype)

    def silu_b(x, y, g, a):
        s = sigmoid_tanh(xp, a.beta * x)
        return g * (s + a.beta * x * s * (1 - s))

    def round_half_away(x, a):
        """C's round(): halves go away from zero (NumPy's round goes to even)."""
        return xp.sign(x) * xp.floor(xp.abs(x) + 0.5)

    def pass_or_zero(x, y, g, a):
        """Rounding's gradient: straight through if asked (``a.straight_through``), else zero."""
        return g.copy() if a.straight_through else xp.zeros_like(g)

    return {
        "tanh": (lambda x, a: xp.tanh(x), lambda x, y, g, a: g * (1 - y * y)),
        "logistic": (lambda x, a: sigmoid(xp, x), lambda x, y, g, a: g * y * (1 - y)),
        "rectify": (lambda x, a: xp.maximum(x, 0), lambda x, y, g, a: g * (y > 0)),
        "elu": (elu, elu_b),
        "selu": (selu, selu_b),
        "softsign": (lambda x, a: x / (1 + xp.abs(x)), lambda x, y, g, a: g * (1 - xp.abs(y)) ** 2),
        "exp": (lambda x, a: xp.exp(x), lambda x, y, g, a: g * y),
        "log": (lambda x, a: xp.log(x), lambda x, y, g, a: g / x),
        "sqrt": (lambda x, a: xp.sqrt(x), lambda x, y, g, a: g / (2 * y)),
        "square": (lambda x, a: x * x, lambda x, y, g, a: g * 2 * x),
        "cube": (lambda x, a: x * x * x, lambda x, y, g, a: g * 3 * x * x),
        "abs": (lambda x, a: xp.abs(x), lambda x, y, g, a: g * xp.sign(x)),
        "log_sigmoid": (lambda x, a: (xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))).astype(x.dtype),
                        lambda x, y, g, a: g * (1 - xp.exp(y))),
        "erf": (lambda x, a: special.erf(x), lambda x, y, g, a: g * TWO_OVER_SQRT_PI * xp.exp(-x * x)),
        "lgamma": (lambda x, a: special.gammaln(x), lambda x, y, g, a: g * special.digamma(x)),
        # trigonometric and hyperbolic
        "sin": (lambda x, a: xp.sin(x), lambda x, y, g, a: g * xp.cos(x)),
        "cos": (lambda x, a: xp.cos(x), lambda x, y, g, a: -g * xp.sin(x)),
        "tan": (lambda x, a: xp.tan(x), lambda x, y, g, a: g * (1 + y * y)),
        "asin": (lambda x, a: xp.arcsin(x), lambda x, y, g, a: g / xp.sqrt(1 - x * x)),
        "acos": (lambda x, a: xp.arccos(x), lambda x, y, g, a: -g / xp.sqrt(1 - x * x)),
        "atan": (lambda x, a: xp.arctan(x), lambda x, y, g, a: g / (1 + x * x)),
        "sinh": (lambda x, a: xp.sinh(x), lambda x, y, g, a: g * xp.cosh(x)),
        "cosh": (lambda x, a: xp.cosh(x), lambda x, y, g, a: g * xp.sinh(x)),
        "asinh": (lambda x, a: xp.arcsinh(x), lambda x, y, g, a: g / xp.sqrt(x * x + 1)),
        "acosh": (lambda x, a: xp.arccosh(x), lambda x, y, g, a: g / xp.sqrt(x * x - 1)),
        "atanh": (lambda x, a: xp.arctanh(x), lambda x, y, g, a: g / (1 - x * x)),
        "silu": (lambda x, a: x * sigmoid_tanh(xp, a.beta * x), silu_b),
        # rounding: a zero or straight-through gradient
        "round": (round_half_away, pass_or_zero),
        "ceil": (lambda x, a: xp.ceil(x), pass_or_zero),
        "floor": (lambda x, a: xp.floor(x), pass_or_zero),
        # identities with a gradient rule of their own
        "to_device": (lambda x, a: x.copy(), lambda x, y, g, a: g),
        "nobackprop": (lambda x, a: x, lambda x, y, g, a: xp.zeros_like(g)),
        "scale_gradient": (lambda x, a: x, lambda x, y, g, a: g * F32(a.lambd)),
    }


def _forward(f: Callable) -> Callable:
    return lambda xs, a, d: f(xs[0], a)


def _backward(df: Callable) -> Callable:
    return lambda xs, y, dy, a, d, i: df(xs[0], y, dy, a)


class Unary:
    """The op table's unary and gradient-control sections (a mixin of :class:`.kernels.Kernels`)."""

    def add_unary_kernels(self) -> None:
        """Put every row of :func:`unary_table` in ``FWD`` / ``BWD``."""
        for name, (f, df) in unary_table(self.xp, self.special).items():
            self.install(name, _forward(f), _backward(df))

    def f_argmax(self, xs, a, d):
        x = xs[0]
        out = self.xp.zeros_like(x)
        out[x.argmax(axis=0), self.xp.arange(x.shape[-1])] = 1
        return out

    def b_argmax(self, xs, y, dy, a, d, i):
        return dy.copy() if a.straight_through else self.xp.zeros_like(dy)
