"""Evaluating expressions together (``forward``, ``values``, ``npvalues``) and moving one between devices."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from .. import config
from ..graph import Expression, _cg
from ._common import _O, _add1, public_names

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


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


def to_device(e, device_str: str) -> Expression:
    """The value of ``e`` moved to another device of the current backend (an identity in the graph).

    Args:
        e (Expression): any dims.
        device_str (str): a device of ``available_devices()``, e.g. ``"CPU"`` or ``"GPU:0"``.
    """
    dev = device_str.decode() if isinstance(device_str, bytes) else str(device_str)
    be = config.backend()
    known = {d.lower(): d for d in be.devices}
    if dev.lower() not in known:
        raise ValueError(f"to_device: {dev!r} is not a device of backend {be.name!r} (devices: "
                         f"{', '.join(be.devices)}); moving values between backends is not supported")
    return _add1(_O["to_device"], e, (known[dev.lower()],))

__all__ = public_names(globals(), _IMPORTED)
