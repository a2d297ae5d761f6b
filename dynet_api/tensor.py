"""DyNet's ``Tensor``: a value read out of the graph (``Expression.tensor_value``)."""

from __future__ import annotations

import numpy as np


class Tensor:
    """A value read out of the graph (:meth:`Expression.tensor_value`).

    Args:
        array (numpy.ndarray): the values.
    """
    def __init__(self, array: np.ndarray) -> None:
        self._a = np.asarray(array)

    def as_numpy(self) -> np.ndarray:
        """A NumPy copy of the values."""
        return self._a.copy()

    def argmax(self, dim: int = 0, num: int = 1) -> Tensor:
        """The indices of the ``num`` largest values along ``dim``, largest first.

        Args:
            dim (int): the axis searched.
            num (int): how many indices.
        """
        return Tensor(np.argsort(-self._a, axis=dim, kind="stable").take(range(num), axis=dim))

    def topk(self, dim: int = 0, num: int = 1) -> tuple[Tensor, Tensor]:
        """The ``num`` largest values along ``dim`` and their indices, as two Tensors.

        Args:
            dim (int): the axis searched.
            num (int): how many values.
        """
        idx = np.argsort(-self._a, axis=dim, kind="stable").take(range(num), axis=dim)
        return Tensor(np.take_along_axis(self._a, idx, axis=dim)), Tensor(idx)

    def __repr__(self) -> str:
        return f"Tensor({self._a!r})"
