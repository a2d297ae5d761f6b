"""What the function modules share: the graph's add methods, argument checks, and the makers of
C-accelerated callables."""

from __future__ import annotations

import inspect
import operator
from numbers import Number

from ..accelerator import fastgraph as _fastgraph
from ..dim import Dim
from ..graph import _cg
from ..graph import unary as _make_unary
from ..ops import OPS

_add = _cg.add
_add1 = _cg.add1
_add2 = _cg.add2
_leaf = _cg.add_leaf
_O = OPS
_new_expr = object.__new__


def _dim(x, what: str) -> Dim:
    """The Dim of an operand; a non-expression is a TypeError naming the function."""
    try:
        return _cg.dims[x._check()]
    except AttributeError:
        raise TypeError(f"{what}: expected an Expression, got {type(x).__name__} {x!r}") from None


def _fast(f, op: str, kind: int, attrs=None):
    """``f`` as a C callable (with the compiled accelerator) that adds ``op`` directly for the
    common call form (kind 2: ``f(x, y)``, kind 3: ``f([x, ...])`` with a non-empty list or
    tuple, kind 4: ``f(x, k)`` with an int k as attrs ``((k,),)``) and calls ``f`` itself for
    every other form; ``f`` when pure Python."""
    fg = _fastgraph
    if fg is None:
        return f
    c = fg.Unary(_cg, OPS[op], kind, f, attrs)
    c.__name__ = c.__qualname__ = f.__name__
    c.__doc__ = f.__doc__
    c.__signature__ = inspect.signature(f)
    c.__wrapped__ = f
    return c


def _nonempty(xs, what):
    xs = tuple(xs)
    if not xs:
        raise ValueError(f"{what}: needs at least one expression")
    return xs


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


def _all_dims(x, what: str = "reduction") -> tuple[int, ...]:
    return tuple(range(len(_dim(x, what).d)))


_GRADIENT_MODES = ("zero_gradient", "straight_through_gradient")


def _gradient_mode(name: str, mode: str) -> tuple[bool]:
    if mode not in _GRADIENT_MODES:
        raise ValueError(f"{name}: gradient_mode must be 'zero_gradient' or 'straight_through_gradient', got {mode!r}")
    return (mode == "straight_through_gradient",)


def public_names(namespace: dict, imported: frozenset) -> list[str]:
    """A function module's ``__all__``: the names its body defines after its imports (``imported``),
    except _private ones, so a new public function is written once, with no list to extend."""
    return [n for n in namespace if n not in imported and not n.startswith("_")]
