"""CudaBackend: the backend contract over a :class:`.device.Device`.

Tensors are device arrays (CuPy on a GPU) in the reference layout: float32,
C-contiguous, data dims then the batch.  Values cross to the host only in
:meth:`CudaBackend.to_numpy` (and as the one float that ``sq_norm`` returns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dynet_api.backend import Backend

from .opkernels import CudaKernels
from .updates import DeviceUpdates

F32 = np.float32


class CudaBackend(Backend):
    name = "cuda"
    dtype = F32
    # Autobatching on unless the program says otherwise: on an H200 each kernel call costs tens of
    # microseconds of host time; batching ran the single-instance Tree-LSTM 2.6x, the LM 1.3x and the
    # tagger with characters 1.4x faster, the plain tagger 1.29x and 0.87x in two runs, and 64 trees
    # per graph 6.3x (benchmarks/README.md, "The cuda backend on a GPU").
    autobatch_default = True

    def __init__(self, dev, devices: tuple[str, ...] = ("GPU:0",), name: str = "cuda") -> None:
        self.dev = dev
        self.xp = dev.xp
        self.name = name
        self.devices = tuple(devices)
        ops = CudaKernels(dev)
        self.ops = ops
        self.forward_kernels = ops.FWD
        self.backward_kernels = ops.BWD
        self._updates = DeviceUpdates(dev)

    # --- tensors
    def from_numpy(self, a: np.ndarray) -> Any:
        return self.xp.array(np.asarray(a, dtype=F32), dtype=F32, order="C")

    def to_numpy(self, t: Any) -> np.ndarray:
        return np.array(self.dev.asnumpy(t), dtype=F32)

    def zeros(self, shape):
        return self.xp.zeros(shape, F32)

    def ones(self, shape):
        return self.xp.ones(shape, F32)

    # Autobatching: operands joined along the batch (last) axis on the device, results read back as views.
    def join_batches(self, parts, dim):
        return self.xp.concatenate(parts, axis=-1)

    def batch_slice(self, t, start, stop, dim):
        return t[..., start:stop]

    def add(self, a, b):
        return a + b

    # --- parameter storage (in place)
    def iadd(self, dst, src) -> None:
        dst += src

    def assign(self, dst, a) -> None:
        dst[...] = self.xp.asarray(np.asarray(a, dtype=F32))

    def fill(self, dst, value: float) -> None:
        dst.fill(value)

    def clear_rows(self, dst, rows: Sequence[int]) -> None:
        """Zero the touched rows of a lookup gradient (O(rows), not O(vocabulary))."""
        dst[..., self.dev.index(rows)] = 0

    def scale(self, dst, s: float, rows: Sequence[int] | None = None) -> None:
        if rows is None:
            dst *= F32(s)
        else:
            idx = self.dev.index(rows)
            dst[..., idx] *= F32(s)

    def clip(self, dst, left: float, right: float) -> None:
        self.xp.clip(dst, F32(left), F32(right), out=dst)

    def gather_batch(self, table, rows):
        return self.xp.take(table, self.dev.index(rows), axis=-1)

    def scatter_add_batch(self, dst, rows, src) -> None:
        self.ops.index_add(dst, rows, src, -1)

    def sq_norm(self, t, rows=None) -> float:
        v = t if rows is None else self.gather_batch(t, rows)
        return float(self.dev.red["sqnorm64"](v))

    def update(self, rule: str, w, g, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        self._updates.apply(rule, w, g, states, rows, hyper)

    # --- randomness
    def seed(self, seed: int) -> None:
        self.dev.seed(seed)
