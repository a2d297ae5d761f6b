"""Comparing arrays with explicit per-dtype tolerances.

A pair of results passes when every element satisfies
``|got - want| <= atol + rtol * |want|`` with the tolerance of the *less*
precise of the two dtypes; non-finite expected values must be matched exactly.
The reported errors (max absolute, max relative) are those of the whole array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tol:
    atol: float
    rtol: float

    def __str__(self) -> str:
        return f"atol {self.atol:g}, rtol {self.rtol:g}"


# Backend against reference, per dtype (the looser of the two dtypes applies).
TOLERANCES: dict[np.dtype, Tol] = {
    np.dtype(np.float64): Tol(1e-9, 1e-7),
    np.dtype(np.float32): Tol(1e-5, 1e-4),
    np.dtype(np.float16): Tol(2e-3, 2e-3),
}
# Float64 analytic gradients of the reference against float64 central differences.
FD_TOL = Tol(1e-5, 1e-4)
FD_STEP = 1e-5
# Trainer updates: a few float32 operations on top of the gradients.
TRAINER_TOL = Tol(2e-5, 2e-4)


def tolerance(*dtypes) -> Tol:
    """The loosest tolerance among the given dtypes (unknown dtypes count as float16)."""
    tols = [TOLERANCES.get(np.dtype(d), TOLERANCES[np.dtype(np.float16)]) for d in dtypes]
    return Tol(max(t.atol for t in tols), max(t.rtol for t in tols))


@dataclass
class Err:
    """How far one result is from the expected one."""

    abs: float
    rel: float
    ok: bool
    note: str = ""

    def worst(self, other: Err | None) -> Err:
        if other is None:
            return self
        if self.ok != other.ok:
            return other if not other.ok else self
        return other if other.abs > self.abs else self

    def to_dict(self) -> dict:
        return {"max_abs": self.abs, "max_rel": self.rel, "ok": self.ok, "note": self.note}


def compare(got, want, tol: Tol) -> Err:
    """Compare two arrays of the same shape; a shape mismatch is a failure, not an exception."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return Err(np.inf, np.inf, False, f"shape {got.shape}, expected {want.shape}")
    fin = np.isfinite(want)
    if not fin.all():
        same = np.array_equal(got[~fin], want[~fin], equal_nan=True)
        if not same:
            return Err(np.inf, np.inf, False, "non-finite values differ")
    g, w = got[fin], want[fin]
    if g.size == 0:
        return Err(0.0, 0.0, True)
    if not np.isfinite(g).all():
        return Err(np.inf, np.inf, False, "NaN or Inf where the expected value is finite")
    diff = np.abs(g - w)
    rel = diff / np.maximum(np.abs(w), np.finfo(np.float64).tiny)
    ok = bool((diff <= tol.atol + tol.rtol * np.abs(w)).all())
    return Err(float(diff.max()), float(rel.max()), ok)
