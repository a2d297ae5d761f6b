"""The cuda backend's op kernels: the reference's, run over the device's array module,
plus the kernels written in CUDA C.

:class:`CudaKernels` is the reference kernel set (``dynet_backends.reference_numpy.kernels``)
built over ``dev.xp`` (CuPy on a GPU, NumPy under the host emulation), with
``dev.special`` and the device's random numbers.  It replaces only what has CUDA C:

* the unary ops: one fused ElementwiseKernel each, forward and backward (``ewspec.UNARY``);
* scatter-add of repeated rows (``dn_index_add``, with atomics on a GPU): the gradients of
  row, column and batch selections and of lookups;
* ``pick`` and the fused class losses (``pickneglogsoftmax``, ``hinge``): RawKernels with
  one block per column;
* the LSTM gates' activations and their gradient (``dn_lstm_gates_fwd`` / ``_bwd``), and the
  cell and hidden state forward and backward (``dn_lstm_c_*``, ``dn_lstm_h_*``): one kernel each
  instead of a chain of array operations per LSTM step (a GPU run showed the LM launching about
  six kernels per kernel call).

Everything else is the reference's code, so it is the reference's semantics by construction.
"""

from __future__ import annotations

from math import prod
from operator import attrgetter

import numpy as np
from dynet_backends.reference_numpy.kernels import Kernels
from dynet_backends.reference_numpy.layout import unbroadcast, vec

from dynet_api.ops import OPS

from .ewspec import UNARY

F32 = np.float32
BLOCK = 256  # threads per block of the grid-stride kernels
WARP = 32  # threads per block of the one-block-per-column kernels
MAX_GRID = 65535


def grid_for(total: int) -> int:
    """Blocks for a grid-stride kernel over ``total`` elements."""
    return max(1, min((total + BLOCK - 1) // BLOCK, MAX_GRID))


class CudaKernels(Kernels):
    """``FWD`` / ``BWD`` of the cuda backend over a :class:`.device.Device`."""

    def __init__(self, dev) -> None:
        self.dev, self.E, self.K = dev, dev.ew, dev.raw
        super().__init__(dev.xp, dev.special, dev)
        for name in UNARY:
            self.install(name, *self._unary(name))

    def _unary(self, name: str):
        """The ElementwiseKernels of a unary op; its attributes are passed by the names of its record,
        which name the kernels' parameters (``ewspec``)."""
        f, b = self.E[name + "_f"], self.E[name + "_b"]
        names = OPS[name].attrs
        if not names:
            return (lambda xs, a, d: f(xs[0])), (lambda xs, y, dy, a, d, i: b(xs[0], y, dy))
        get = [attrgetter(n) for n in names]
        return ((lambda xs, a, d: f(xs[0], *(float(g(a)) for g in get))),
                (lambda xs, y, dy, a, d, i: b(xs[0], y, dy, *(float(g(a)) for g in get))))

    def index(self, seq):
        """Index arrays live on the device, each distinct tuple sent once."""
        return self.dev.index(seq)

    def c(self, x):
        """C-contiguous float32 (RawKernels index raw memory)."""
        return self.xp.ascontiguousarray(x, dtype=F32)

    def index_add(self, dst, idx, src, axis: int) -> None:
        """dst[..., idx[j], ...] += src[..., j, ...] along ``axis`` by ``dn_index_add``; ``dst`` is C-contiguous."""
        s = dst.shape
        axis %= len(s)
        outer, inner = prod(s[:axis]), prod(s[axis + 1:])
        n = len(idx)
        self.K["dn_index_add"](grid_for(outer * n * inner), BLOCK, dst, self.c(src), self.dev.index(idx),
                               outer, s[axis], n, inner)

    # ---------------------------------------------------------------- pick
    @staticmethod
    def _pick_view(shape, ax):
        """(outer, n, mid, batch) sizes of a tensor picked along data axis ``ax``."""
        return prod(shape[:ax]), shape[ax], prod(shape[ax + 1:-1]), shape[-1]

    def f_pick(self, xs, a, d):
        x = xs[0]
        idx, ax = a.indices, a.dim
        if len(idx) == 1:
            return self.xp.take(x, idx[0], axis=ax).reshape(d.shape)
        outer, n, mid, bx = self._pick_view(x.shape, ax)
        out = self.xp.empty(d.shape, F32)
        self.K["dn_pick_fwd"](grid_for(outer * mid * d.bd), BLOCK, out, self.c(x), self.dev.index(idx),
                              outer, n, mid, bx, d.bd)
        return out

    def b_pick(self, xs, y, dy, a, d, i):
        x = xs[0]
        idx, ax = a.indices, a.dim
        bo = d.bd
        full = x.shape[:-1] + (bo,)
        outer, n, mid, _ = self._pick_view(full, ax)
        g = self.xp.zeros(full, F32)
        per_batch = idx if len(idx) == bo else tuple(idx) * bo
        self.K["dn_pick_bwd"](grid_for(outer * mid * bo), BLOCK, g, self.c(dy), self.dev.index(per_batch),
                              outer, n, mid, bo)
        return unbroadcast(g, x.shape)

    # ---------------------------------------------------------------- the LSTM gates, one kernel each way
    def _gates_activate(self, pre, b, n: int):
        pre, b = self.c(pre), self.c(b)
        cols = max(pre.shape[1], b.shape[1])
        out = self.xp.empty((4 * n, cols), F32)
        self.K["dn_lstm_gates_fwd"](grid_for(4 * n * cols), BLOCK, out, pre, b, n, cols, pre.shape[1], b.shape[1])
        return out

    def _gates_pre_grad(self, yv, gv, n: int):
        cols = gv.shape[1]
        r = self.xp.empty((4 * n, cols), F32)
        self.K["dn_lstm_gates_bwd"](grid_for(4 * n * cols), BLOCK, r, self.c(yv), self.c(gv), n, cols)
        return r

    def _cell(self, kernel: str, rows: int, xs, d, dy=None):
        """One of kernels/lstm.cu's cell kernels over c (n, ccols) and the gates (4n, gcols): its
        output (rows * n, cols), from dy too for the gradients."""
        c, g = self.c(vec(xs[0])), self.c(vec(xs[1]))
        n, cols = c.shape[0], d.shape[-1]
        out = self.xp.empty((rows * n, cols), F32)
        grad = () if dy is None else (self.c(dy),)
        self.K[kernel](grid_for(n * cols), BLOCK, out, *grad, c, g, n, cols, c.shape[1], g.shape[1])
        return out

    def f_vanilla_lstm_c(self, xs, a, d):
        return self._cell("dn_lstm_c_fwd", 1, xs, d).reshape(d.shape)

    def b_vanilla_lstm_c(self, xs, y, dy, a, d, i):
        if i == 0 or vec(xs[1]).shape[1] != d.shape[-1]:  # the cell's (one product), or broadcast gates
            return super().b_vanilla_lstm_c(xs, y, dy, a, d, i)
        return self._cell("dn_lstm_c_bwd_gates", 4, xs, d, dy).reshape(xs[1].shape)

    def f_vanilla_lstm_h(self, xs, a, d):
        return self._cell("dn_lstm_h_fwd", 1, xs, d).reshape(d.shape)

    def b_vanilla_lstm_h(self, xs, y, dy, a, d, i):
        if vec(xs[i]).shape[1] != d.shape[-1]:  # an operand broadcast over the batch: summed back there
            return super().b_vanilla_lstm_h(xs, y, dy, a, d, i)
        return self._cell(("dn_lstm_h_bwd_c", "dn_lstm_h_bwd_gates")[i], 1 + 3 * i, xs, d, dy).reshape(xs[i].shape)

    # ---------------------------------------------------------------- class losses, one block per column
    def _columns(self, x, idx):
        """Scores {n} or {n,1,...} (DyNet's LooksLikeVector) as n x batch columns."""
        x = vec(x)
        n, b = x.shape
        return self.c(x), self.dev.index(idx), n, b, max(1, min(b, MAX_GRID))

    def f_pickneglogsoftmax(self, xs, a, d):
        x, idx, n, b, grid = self._columns(xs[0], a.indices)
        out = self.xp.empty((1, b), F32)
        self.K["dn_pnls_fwd"](grid, WARP, out, x, idx, n, b)
        return out

    def b_pickneglogsoftmax(self, xs, y, dy, a, d, i):
        x, idx, n, b, grid = self._columns(xs[0], a.indices)
        g = self.xp.empty((n, b), F32)
        self.K["dn_pnls_bwd"](grid, WARP, g, x, self.c(dy), idx, n, b)
        return g.reshape(xs[0].shape)

    def f_hinge(self, xs, a, d):
        x, idx, n, b, grid = self._columns(xs[0], a.indices)
        out = self.xp.empty((1, b), F32)
        self.K["dn_hinge_fwd"](grid, WARP, out, x, idx, float(a.m), n, b)
        return out

    def b_hinge(self, xs, y, dy, a, d, i):
        x, idx, n, b, grid = self._columns(xs[0], a.indices)
        g = self.xp.empty((n, b), F32)
        self.K["dn_hinge_bwd"](grid, WARP, g, x, self.c(dy), idx, float(a.m), n, b)
        return g.reshape(xs[0].shape)
