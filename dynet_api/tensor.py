"""DyNet's ``Tensor``: a value read out of the graph (``Expression.tensor_value``)."""

from __future__ import annotations

import numpy as np


class Tensor:
    def __init__(self, array: np.ndarray) -> None:
        self._a = np.asarray(array)

    def as_numpy(self) -> np.ndarray:
        return self._a.copy()

    def argmax(self, dim: int = 0, num: int = 1) -> Tensor:
        return Tensor(np.argsort(-self._a, axis=dim, kind="stable").take(range(num), axis=dim))

    def topk(self, dim: int = 0, num: int = 1) -> tuple[Tensor, Tensor]:
        idx = np.argsort(-self._a, axis=dim, kind="stable").take(range(num), axis=dim)
        return Tensor(np.take_along_axis(self._a, idx, axis=dim)), Tensor(idx)

    def __repr__(self) -> str:
        return f"Tensor({self._a!r})"
