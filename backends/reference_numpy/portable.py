"""The calls NumPy and CuPy spell differently, as small helpers with both forms.

Everything else the kernels call is NumPy's API, which CuPy reproduces; the kernel
set reads the array module (``xp``) and ``scipy.special`` (``cupyx.scipy.special``
on a GPU) from its constructor.  What is left is here: random numbers (NumPy's
Generator here; the cuda device draws with cuRAND behind the same four methods),
strided windows (``as_strided``, which both modules have, instead of NumPy's
``sliding_window_view``) and NumPy's floating-point warnings (CuPy has none).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

F32 = np.float32


class NumpyRandom:
    """The reference's random numbers: NumPy's default generator, reseeded by ``Backend.seed``.

    The interface is the cuda device's (``seed``, ``normal``, ``uniform``, ``uniform64``), so
    the random leaves are one kernel over either.
    """

    def __init__(self) -> None:
        self.gen = np.random.default_rng()

    def seed(self, seed: int) -> None:
        self.gen = np.random.default_rng(seed)

    def normal(self, mean: float, std: float, shape: tuple[int, ...]) -> np.ndarray:
        return self.gen.normal(mean, std, shape).astype(F32)

    def uniform(self, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
        return self.gen.uniform(low, high, shape).astype(F32)

    def uniform64(self, shape: tuple[int, ...]) -> np.ndarray:
        """U[0, 1) in float64 (Bernoulli and Gumbel samples compare and log it in double)."""
        return self.gen.random(shape)


def windows(xp: Any, x: Any, window: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """NumPy's ``sliding_window_view(x, window, axis=axes)``: every window position along ``axes``,
    the window's own dims appended last.  A view that overlaps itself: read it, never write it."""
    shape = list(x.shape)
    for ax, w in zip(axes, window, strict=True):
        shape[ax] -= w - 1
    strides = x.strides + tuple(x.strides[ax] for ax in axes)
    return xp.lib.stride_tricks.as_strided(x, tuple(shape) + tuple(window), strides)


def float_warnings_off(xp: Any):
    """A context that silences NumPy's divide/invalid warnings where a kernel means its Inf or NaN."""
    errstate = getattr(xp, "errstate", None)
    if errstate is None:
        return contextlib.nullcontext()
    return errstate(divide="ignore", invalid="ignore")
