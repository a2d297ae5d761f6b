"""The base of a kernel set: the array module it runs over, the hooks a device replaces,
and how the ``FWD`` / ``BWD`` tables are collected.

One body of kernel code serves every array backend: the reference builds it over NumPy,
the cuda backend over CuPy (and over NumPy under its host emulation) and replaces only
what needs CUDA C.  The array module is resolved once, when the set is built; kernels
read ``self.xp`` and never look up their arrays' namespace per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dynet_api.ops import OPS, by_name

from .portable import float_warnings_off


class KernelSet:
    """``f_<op>(xs, a, d)`` returns an op's output and ``b_<op>(xs, y, dy, a, d, i)`` the gradient
    of its input ``i``; the constructor collects them into ``FWD`` / ``BWD`` (op name -> kernel),
    the tables of the backend contract.  ``a`` is the node's attributes as the op's named tuple
    (``OpDef.Attrs``): kernels read them by the names of the op record (``a.d``, ``a.stride``).

    ``xp`` is the array module (NumPy's API: ``numpy`` or ``cupy``), ``special`` the module of
    special functions (``scipy.special`` or ``cupyx.scipy.special``) and ``rng`` the source of
    random numbers (``seed``, ``normal``, ``uniform``, ``uniform64``).
    """

    def __init__(self, xp: Any, special: Any, rng: Any) -> None:
        self.xp, self.special, self.rng = xp, special, rng
        self.FWD: dict[str, Callable] = {}
        self.BWD: dict[str, Callable] = {}
        for name in OPS:
            self.install(name, getattr(self, "f_" + name, None), getattr(self, "b_" + name, None))

    def install(self, name: str, f: Callable | None, b: Callable | None) -> None:
        """Put op ``name``'s forward and backward kernel (where not None) in ``FWD`` / ``BWD``, each
        handed the node's attributes by name (:func:`dynet_api.ops.by_name`)."""
        op = OPS[name]
        if f is not None:
            self.FWD[name] = by_name(op, f)
        if b is not None:
            self.BWD[name] = by_name(op, b, backward=True)

    # ---------------------------------------------------------------- hooks a device replaces
    def index(self, seq: Sequence[int]) -> Any:
        """What to index an array with at the positions ``seq`` (an op's attribute)."""
        return list(seq)

    def index_add(self, dst: Any, idx: Sequence[int], src: Any, axis: int) -> None:
        """``dst[..., idx[j], ...] += src[..., j, ...]`` along ``axis``, repeated indices summed (in place)."""
        where: list = [slice(None)] * dst.ndim
        where[axis] = self.index(idx)
        self.xp.add.at(dst, tuple(where), src)

    # ---------------------------------------------------------------- math several sections share
    def quiet(self):
        """Silences NumPy's divide/invalid warnings where a kernel means the Inf or NaN it makes."""
        return float_warnings_off(self.xp)

    def lse(self, x: Any, axis: int) -> Any:
        """log(sum(exp(x))) along ``axis``: NaN if any NaN, +Inf if any +Inf, -Inf if all are -Inf."""
        xp = self.xp
        m = x.max(axis=axis, keepdims=True)  # NaN where the line has a NaN
        shift = xp.where(xp.isinf(m), 0, m)
        with self.quiet():
            return xp.where(xp.isinf(m), m, shift + xp.log(xp.exp(x - shift).sum(axis=axis, keepdims=True)))
