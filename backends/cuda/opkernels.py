"""Forward and backward kernels of every op of the op table, for the cuda backend.

Written against :class:`.device.Device`: ``xp`` is CuPy on a GPU (NumPy under
the host emulation), elementwise math goes through the backend's
ElementwiseKernels (``E``), sums of products through its ReductionKernels
(``R``), gathers/scatters and the class losses through its RawKernels (``K``),
matrix products through ``xp.matmul`` (cuBLAS).  Tensors keep the reference
layout (data dims, then the batch) and every kernel follows the semantics of
``backends/reference_numpy/kernels.py``; values stay on the device.
"""

from __future__ import annotations

from math import prod

import numpy as np

from dynet_api.ops import OPS

from .ewspec import UNARY
from .layout import as3, as_out, batch_bc, keep_shape, pad, red_axes, unbroadcast, vec
from .opkernels_more import MoreOps

F32 = np.float32
BLOCK = 256  # threads per block of the grid-stride kernels
WARP = 32  # threads per block of the one-block-per-column kernels
MAX_GRID = 65535


def grid_for(total: int) -> int:
    """Blocks for a grid-stride kernel over ``total`` elements."""
    return max(1, min((total + BLOCK - 1) // BLOCK, MAX_GRID))


class OpKernels(MoreOps):
    """Builds ``FWD`` / ``BWD``: op name -> kernel, as the backend contract wants them."""

    def __init__(self, dev) -> None:
        self.dev = dev
        self.xp = dev.xp
        self.E, self.R, self.K = dev.ew, dev.red, dev.raw
        self.FWD: dict = {}
        self.BWD: dict = {}
        for name, nattr in UNARY.items():
            self.FWD[name] = self._unary_f(name, nattr)
            self.BWD[name] = self._unary_b(name, nattr)
        for name in OPS:
            f = getattr(self, "f_" + name, None)
            b = getattr(self, "b_" + name, None)
            if f is not None:
                self.FWD[name] = f
            if b is not None:
                self.BWD[name] = b

    # ------------------------------------------------------------ shared pieces
    def c(self, x):
        """C-contiguous float32 (RawKernels index raw memory)."""
        return self.xp.ascontiguousarray(x, dtype=F32)

    def index_add(self, dst, src, idx, axis: int) -> None:
        """dst[..., idx[j], ...] += src[..., j, ...] along ``axis``, repeated indices summed (in place)."""
        s = dst.shape
        axis %= len(s)
        outer, inner = prod(s[:axis]), prod(s[axis + 1:])
        n = len(idx)
        self.K["dn_index_add"](grid_for(outer * n * inner), BLOCK, dst, self.c(src), self.dev.index(idx),
                               outer, s[axis], n, inner)

    def lse(self, x, axis: int):
        """As the reference: NaN if any NaN, +Inf if any +Inf, -Inf if all are -Inf."""
        xp = self.xp
        m = x.max(axis=axis, keepdims=True)
        shift = xp.where(xp.isinf(m), F32(0), m)
        return xp.where(xp.isinf(m), m, shift + xp.log(self.E["exp_sub"](x, shift).sum(axis=axis, keepdims=True)))

    def red(self, name: str, *xs, axis=None, keepdims: bool = False):
        """A ReductionKernel over inputs broadcast against each other first."""
        if len(xs) > 1:
            xs = self.xp.broadcast_arrays(*xs)
        return self.R[name](*xs, axis=axis, keepdims=keepdims)

    def data_red(self, name: str, *xs):
        """Reduce over the data dims: (..., B) arrays -> (1, B)."""
        return self.red(name, *[x.reshape(-1, x.shape[-1]) for x in xs], axis=0, keepdims=True)

    # ------------------------------------------------------------ leaves
    def f_input(self, xs, a, d):
        return self.xp.asarray(a[0], dtype=F32)

    def f_constant(self, xs, a, d):
        return self.xp.full(d.shape, a[0], F32)

    def f_random_normal(self, xs, a, d):
        return self.dev.normal(a[0], a[1], d.shape)

    def f_random_bernoulli(self, xs, a, d):
        return self.E["bernoulli"](self.dev.uniform(0.0, 1.0, d.shape), a[0], a[1])

    def f_random_uniform(self, xs, a, d):
        return self.dev.uniform(a[0], a[1], d.shape)

    def f_random_gumbel(self, xs, a, d):
        return self.E["gumbel"](self.dev.uniform64(d.shape), a[0], a[1])

    def f_parameter(self, xs, a, d):  # the weights: stored values times the weight-decay factor
        f = a[0].wscale.factor
        return a[0].value if f == 1.0 else a[0].value * f

    def f_lookup(self, xs, a, d):
        rows, f = self.xp.take(a[0].value, self.dev.index(a[1]), axis=-1), a[0].wscale.factor
        return rows if f == 1.0 else rows * f

    # ------------------------------------------------------------ arithmetic
    def _bin(self, f, xs, d):
        nd = len(d.d)
        return f(pad(xs[0], nd), pad(xs[1], nd)).reshape(d.shape)

    def f_add(self, xs, a, d):
        return self._bin(self.xp.add, xs, d)

    def f_cmult(self, xs, a, d):
        return self._bin(self.xp.multiply, xs, d)

    def f_cdiv(self, xs, a, d):
        return self._bin(self.xp.divide, xs, d)

    def f_bmin(self, xs, a, d):
        return self._bin(self.xp.minimum, xs, d)

    def f_bmax(self, xs, a, d):
        return self._bin(self.xp.maximum, xs, d)

    @staticmethod
    def _pair(xs, d):
        nd = len(d.d)
        return pad(xs[0], nd), pad(xs[1], nd), nd

    def b_add(self, xs, y, dy, a, d, i):
        return unbroadcast(pad(dy, max(xs[i].ndim - 1, dy.ndim - 1)), xs[i].shape)

    def b_cmult(self, xs, y, dy, a, d, i):
        x0, x1, nd = self._pair(xs, d)
        other = x1 if i == 0 else x0
        return unbroadcast(pad(dy, nd) * other, xs[i].shape)

    def b_cdiv(self, xs, y, dy, a, d, i):
        x0, x1, nd = self._pair(xs, d)
        g = pad(dy, nd)
        if i == 0:
            return unbroadcast(g / x1, xs[0].shape)
        return unbroadcast(self.E["cdiv_b1"](g, x0, x1), xs[1].shape)

    def _minmax_b(self, xs, dy, d, i, first, second):
        x0, x1, nd = self._pair(xs, d)
        return unbroadcast(self.E[first if i == 0 else second](pad(dy, nd), x0, x1), xs[i].shape)

    def b_bmin(self, xs, y, dy, a, d, i):
        return self._minmax_b(xs, dy, d, i, "pick_le", "pick_gt")

    def b_bmax(self, xs, y, dy, a, d, i):
        return self._minmax_b(xs, dy, d, i, "pick_ge", "pick_lt")

    def f_negate(self, xs, a, d):
        return -xs[0]

    def b_negate(self, xs, y, dy, a, d, i):
        return -dy

    def f_plus_const(self, xs, a, d):
        return xs[0] + F32(a[0])

    def b_plus_const(self, xs, y, dy, a, d, i):
        return dy

    def f_const_minus(self, xs, a, d):
        return self.xp.subtract(F32(a[0]), xs[0])

    def b_const_minus(self, xs, y, dy, a, d, i):
        return -dy

    def f_scalar_mult(self, xs, a, d):
        return xs[0] * F32(a[0])

    def b_scalar_mult(self, xs, y, dy, a, d, i):
        return dy * F32(a[0])

    # matrix products: every operand viewed as (rows, cols, batch); cuBLAS through xp.matmul
    def mm(self, A, B):
        """Batched (r, c, ba) @ (c, k, bb) -> (r, k, max(ba, bb)), batch 1 broadcasting."""
        xp = self.xp
        r, c, ba = A.shape
        _, k, bb = B.shape
        if ba == 1:  # one GEMM over all batch columns of B
            return xp.matmul(A[:, :, 0], B.reshape(c, k * bb)).reshape(r, k, bb)
        out = xp.matmul(xp.moveaxis(A, -1, 0), xp.moveaxis(B, -1, 0))
        return xp.moveaxis(out, 0, -1)

    def mm_grads(self, A, B, G, i):
        """Gradient of A@B for operand i, given G shaped (r, k, batch)."""
        xp = self.xp
        if A.shape[-1] == 1 and B.shape[-1] == 1 and G.shape[-1] == 1:
            if i == 0:
                return xp.matmul(G[:, :, 0], B[:, :, 0].T)[:, :, None]
            return xp.matmul(A[:, :, 0].T, G[:, :, 0])[:, :, None]
        r, c, _ = A.shape
        k, nb = B.shape[1], G.shape[-1]
        if i == 0 and A.shape[-1] == 1:  # A shared by the batch: sum_b G_b B_b^T as one GEMM
            Bb = xp.broadcast_to(B, (c, k, nb))
            return xp.matmul(G.reshape(r, k * nb), Bb.reshape(c, k * nb).T)[:, :, None]
        if i == 1 and B.shape[-1] == 1:  # B shared by the batch: sum_b A_b^T G_b as one GEMM
            Ab = xp.broadcast_to(A, (r, c, nb)).transpose(1, 0, 2).reshape(c, r * nb)
            return xp.matmul(Ab, G.transpose(0, 2, 1).reshape(r * nb, k))[:, :, None]
        if i == 0:
            g = xp.matmul(xp.moveaxis(G, -1, 0), xp.moveaxis(B, -1, 0).transpose(0, 2, 1))
            g = xp.moveaxis(g, 0, -1)
            return g.sum(axis=-1, keepdims=True) if A.shape[-1] == 1 and g.shape[-1] != 1 else g
        g = xp.matmul(xp.moveaxis(A, -1, 0).transpose(0, 2, 1), xp.moveaxis(G, -1, 0))
        g = xp.moveaxis(g, 0, -1)
        return g.sum(axis=-1, keepdims=True) if B.shape[-1] == 1 and g.shape[-1] != 1 else g

    def f_matmul(self, xs, a, d):
        return self.mm(as3(xs[0]), as3(xs[1])).reshape(d.shape)

    def b_matmul(self, xs, y, dy, a, d, i):
        A, B = as3(xs[0]), as3(xs[1])
        G = dy.reshape(A.shape[0], B.shape[1], dy.shape[-1])
        return self.mm_grads(A, B, G, i).reshape(xs[i].shape)

    def f_affine_transform(self, xs, a, d):
        r = d.d[0]
        acc = None
        for j in range(1, len(xs), 2):
            p = self.mm(as3(xs[j]), as3(xs[j + 1]))
            acc = p if acc is None else acc + p
        b = xs[0]
        if acc is None:
            return b
        return (acc + b.reshape(r, -1, b.shape[-1])).reshape(d.shape)  # a vector bias spans the columns

    def b_affine_transform(self, xs, y, dy, a, d, i):
        if len(xs) == 1:  # the bias alone is copied through
            return dy
        if i == 0:
            b = xs[0]
            r = d.d[0]
            k = d.d[1] if len(d.d) > 1 else 1
            return unbroadcast(dy.reshape(r, k, dy.shape[-1]), b.reshape(r, -1, b.shape[-1]).shape).reshape(b.shape)
        j = i if i % 2 == 1 else i - 1
        A, B = as3(xs[j]), as3(xs[j + 1])
        G = dy.reshape(A.shape[0], B.shape[1], dy.shape[-1])
        return self.mm_grads(A, B, G, 0 if i == j else 1).reshape(xs[i].shape)

    def f_colwise_add(self, xs, a, d):
        x, b = xs
        return (pad(x, 2) + b.reshape(b.shape[0], 1, b.shape[-1])).reshape(d.shape)

    def b_colwise_add(self, xs, y, dy, a, d, i):
        g = pad(dy, 2)
        if i == 0:
            return unbroadcast(g, pad(xs[0], 2).shape).reshape(xs[0].shape)
        b = xs[1]
        return unbroadcast(g, (b.shape[0], 1, b.shape[-1])).reshape(b.shape)

    def f_sum(self, xs, a, d):
        out = self.xp.zeros(d.shape, F32)
        for x in xs:
            out = out + as_out(x, d)
        return out

    def b_sum(self, xs, y, dy, a, d, i):
        return unbroadcast(dy, as_out(xs[i], d).shape).reshape(xs[i].shape)

    def f_average(self, xs, a, d):
        return self.f_sum(xs, a, d) / F32(len(xs))

    def b_average(self, xs, y, dy, a, d, i):
        return unbroadcast(dy / F32(len(xs)), xs[i].shape)

    def f_pow(self, xs, a, d):
        x, e = xs
        return self.xp.power(x, batch_bc(e.reshape(1, -1), x.ndim - 1)).reshape(d.shape)

    def b_pow(self, xs, y, dy, a, d, i):
        x, e = xs
        eb = batch_bc(e.reshape(1, -1), x.ndim - 1)
        if i == 0:
            return unbroadcast(self.E["pow_b0"](dy, x, eb), x.shape)
        g = self.E["pow_b1"](dy, y, x)
        g = g.reshape(-1, g.shape[-1]).sum(axis=0, keepdims=True)
        return unbroadcast(g, (1, e.shape[-1])).reshape(e.shape)

    def f_dot_product(self, xs, a, d):
        return self.data_red("dotsum", xs[0], xs[1])

    def b_dot_product(self, xs, y, dy, a, d, i):
        other = xs[1 - i]
        return unbroadcast(batch_bc(dy, other.ndim - 1) * other, xs[i].shape)

    def f_squared_norm(self, xs, a, d):
        return self.data_red("sqsum", xs[0])

    def b_squared_norm(self, xs, y, dy, a, d, i):
        return xs[0] * F32(2) * batch_bc(dy, xs[0].ndim - 1)  # array first: CuPy arrays do the arithmetic

    def f_l2_norm(self, xs, a, d):
        return self.xp.sqrt(self.data_red("sqsum", xs[0]))

    def b_l2_norm(self, xs, y, dy, a, d, i):
        x = xs[0]
        return x * batch_bc(dy / y, x.ndim - 1)

    # ------------------------------------------------------------ unary (ElementwiseKernels)
    def _unary_f(self, name, nattr):
        k = self.E[name + "_f"]
        if nattr == 0:
            return lambda xs, a, d: k(xs[0])
        return lambda xs, a, d: k(xs[0], *(float(v) for v in a[:nattr]))

    def _unary_b(self, name, nattr):
        k = self.E[name + "_b"]
        if nattr == 0:
            return lambda xs, y, dy, a, d, i: k(xs[0], y, dy)
        return lambda xs, y, dy, a, d, i: k(xs[0], y, dy, *(float(v) for v in a[:nattr]))

    def f_nobackprop(self, xs, a, d):
        return xs[0]

    def b_nobackprop(self, xs, y, dy, a, d, i):
        return self.xp.zeros_like(dy)

    def f_scale_gradient(self, xs, a, d):
        return xs[0]

    def b_scale_gradient(self, xs, y, dy, a, d, i):
        return dy * F32(a[0])

    # ------------------------------------------------------------ softmax family
    def f_softmax(self, xs, a, d):
        x = xs[0]
        e = self.E["exp_sub"](x, x.max(axis=a[0], keepdims=True))
        return e / e.sum(axis=a[0], keepdims=True)

    def b_softmax(self, xs, y, dy, a, d, i):
        return self.E["softmax_b"](dy, y, (y * dy).sum(axis=a[0], keepdims=True))

    def f_log_softmax(self, xs, a, d):
        x = xs[0]
        if a[0] is None:
            return x - self.lse(x, 0)
        r = self.dev.index(a[0])
        out = self.xp.full(x.shape, -np.inf, F32)
        xr = x[r]
        out[r] = xr - self.lse(xr, 0)
        return out

    def b_log_softmax(self, xs, y, dy, a, d, i):
        k = self.E["log_softmax_b"]
        if a[0] is None:
            return k(dy, y, dy.sum(axis=0, keepdims=True))
        r = self.dev.index(a[0])
        g = self.xp.zeros_like(dy)
        dr = dy[r]
        g[r] = k(dr, y[r], dr.sum(axis=0, keepdims=True))
        return g

    def f_logsumexp(self, xs, a, d):
        x = self.xp.stack(self.xp.broadcast_arrays(*(as_out(x, d) for x in xs)))
        return self.lse(x, 0)[0].reshape(d.shape)

    def b_logsumexp(self, xs, y, dy, a, d, i):
        x = as_out(xs[i], d)
        return unbroadcast(self.E["exp_diff_mul"](x, y, dy), x.shape).reshape(xs[i].shape)

    def f_logsumexp_dim(self, xs, a, d):
        return self.lse(xs[0], a[0]).reshape(d.shape)

    def b_logsumexp_dim(self, xs, y, dy, a, d, i):
        x = xs[0]
        ks = keep_shape(x.shape, (a[0],))
        return self.E["exp_diff_mul"](x, y.reshape(ks), dy.reshape(ks))

    # ------------------------------------------------------------ shape
    def f_transpose(self, xs, a, d):
        perm = list(a[0])
        x = pad(xs[0], len(perm))
        return self.xp.transpose(x, perm + [len(perm)]).reshape(d.shape)

    def b_transpose(self, xs, y, dy, a, d, i):
        perm = list(a[0])
        x = xs[0]
        px = pad(x, len(perm))
        g = dy.reshape(tuple(px.shape[p] for p in perm) + dy.shape[-1:])
        return self.xp.transpose(g, [int(k) for k in np.argsort(perm)] + [len(perm)]).reshape(x.shape)

    def f_reshape(self, xs, a, d):
        return xs[0].reshape(d.shape, order="F")

    def b_reshape(self, xs, y, dy, a, d, i):
        return dy.reshape(xs[0].shape, order="F")

    def f_concatenate(self, xs, a, d):
        nd = len(d.d)
        ax = a[0]
        parts = []
        for x in xs:
            px = pad(x, max(nd, ax + 1))
            if px.shape[-1] != d.bd:
                px = self.xp.broadcast_to(px, px.shape[:-1] + (d.bd,))
            parts.append(px)
        return self.xp.concatenate(parts, axis=ax).reshape(d.shape)

    def b_concatenate(self, xs, y, dy, a, d, i):
        ax = a[0]
        nd = max(len(d.d), ax + 1)
        g = pad(dy, nd)
        start = sum(pad(x, nd).shape[ax] for x in xs[:i])
        n = pad(xs[i], nd).shape[ax]
        sl = [slice(None)] * g.ndim
        sl[ax] = slice(start, start + n)
        return unbroadcast(g[tuple(sl)], pad(xs[i], nd).shape).reshape(xs[i].shape)

    def f_concatenate_to_batch(self, xs, a, d):
        return self.xp.concatenate(xs, axis=-1)

    def b_concatenate_to_batch(self, xs, y, dy, a, d, i):
        start = sum(x.shape[-1] for x in xs[:i])
        return dy[..., start:start + xs[i].shape[-1]]

    def f_select_rows(self, xs, a, d):
        return self.xp.take(xs[0], self.dev.index(a[0]), axis=0)

    def b_select_rows(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(xs[0].shape, F32)
        self.index_add(g, dy, a[0], 0)
        return g

    def f_select_cols(self, xs, a, d):
        return self.xp.take(pad(xs[0], 2), self.dev.index(a[0]), axis=1).reshape(d.shape)

    def b_select_cols(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(pad(xs[0], 2).shape, F32)
        self.index_add(g, pad(dy, 2), a[0], 1)
        return g.reshape(xs[0].shape)

    @staticmethod
    def _pick_view(shape, ax):
        """(outer, n, mid, batch) sizes of a tensor picked along data axis ``ax``."""
        return prod(shape[:ax]), shape[ax], prod(shape[ax + 1:-1]), shape[-1]

    def f_pick(self, xs, a, d):
        x = xs[0]
        idx, ax = a
        if len(idx) == 1:
            return self.xp.take(x, idx[0], axis=ax).reshape(d.shape)
        outer, n, mid, bx = self._pick_view(x.shape, ax)
        out = self.xp.empty(d.shape, F32)
        self.K["dn_pick_fwd"](grid_for(outer * mid * d.bd), BLOCK, out, self.c(x), self.dev.index(idx),
                              outer, n, mid, bx, d.bd)
        return out

    def b_pick(self, xs, y, dy, a, d, i):
        x = xs[0]
        idx, ax = a
        bo = d.bd
        full = x.shape[:-1] + (bo,)
        outer, n, mid, _ = self._pick_view(full, ax)
        g = self.xp.zeros(full, F32)
        per_batch = idx if len(idx) == bo else tuple(idx) * bo
        self.K["dn_pick_bwd"](grid_for(outer * mid * bo), BLOCK, g, self.c(dy), self.dev.index(per_batch),
                              outer, n, mid, bo)
        return unbroadcast(g, x.shape)

    def f_pick_batch_elems(self, xs, a, d):
        return self.xp.take(xs[0], self.dev.index(a[0]), axis=-1)

    def b_pick_batch_elems(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(xs[0].shape, F32)
        self.index_add(g, dy, a[0], -1)
        return g

    def f_pickrange(self, xs, a, d):
        s, e, ax = a
        sl = [slice(None)] * xs[0].ndim
        sl[ax] = slice(s, e)
        return xs[0][tuple(sl)]

    def b_pickrange(self, xs, y, dy, a, d, i):
        s, e, ax = a
        g = self.xp.zeros(xs[0].shape, F32)
        sl = [slice(None)] * g.ndim
        sl[ax] = slice(s, e)
        g[tuple(sl)] = dy
        return g

    # ------------------------------------------------------------ reductions
    def f_sum_dim(self, xs, a, d):
        x = xs[0]
        return x.sum(axis=red_axes(x, a)).reshape(d.shape)

    def b_sum_dim(self, xs, y, dy, a, d, i):
        x = xs[0]
        return self.xp.broadcast_to(dy.reshape(keep_shape(x.shape, red_axes(x, a))), x.shape)

    @staticmethod
    def _moment_n(x, a) -> float:
        if a[3] > 0:
            return float(a[3])
        axes = red_axes(x, a)
        return float(prod(x.shape[k] for k in axes)) if axes else 1.0

    def f_moment_dim(self, xs, a, d):
        x = xs[0]
        return ((x ** a[2]).sum(axis=red_axes(x, a)) / F32(self._moment_n(x, a))).reshape(d.shape)

    def b_moment_dim(self, xs, y, dy, a, d, i):
        x = xs[0]
        r = a[2]
        g = dy.reshape(keep_shape(x.shape, red_axes(x, a)))
        return self.E["moment_b"](g, x, r / self._moment_n(x, a), float(r - 1))

    # ------------------------------------------------------------ losses
    def _columns(self, x, idx):
        """Scores {n} or {n,1,...} (DyNet's LooksLikeVector) as n x batch columns."""
        x = vec(x)
        n, b = x.shape
        return self.c(x), self.dev.index(idx), n, b, max(1, min(b, MAX_GRID))

    def f_pickneglogsoftmax(self, xs, a, d):
        x, idx, n, b, grid = self._columns(xs[0], a[0])
        out = self.xp.empty((1, b), F32)
        self.K["dn_pnls_fwd"](grid, WARP, out, x, idx, n, b)
        return out

    def b_pickneglogsoftmax(self, xs, y, dy, a, d, i):
        x, idx, n, b, grid = self._columns(xs[0], a[0])
        g = self.xp.empty((n, b), F32)
        self.K["dn_pnls_bwd"](grid, WARP, g, x, self.c(dy), idx, n, b)
        return g.reshape(xs[0].shape)

    def f_hinge(self, xs, a, d):
        x, idx, n, b, grid = self._columns(xs[0], a[0])
        out = self.xp.empty((1, b), F32)
        self.K["dn_hinge_fwd"](grid, WARP, out, x, idx, float(a[1]), n, b)
        return out

    def b_hinge(self, xs, y, dy, a, d, i):
        x, idx, n, b, grid = self._columns(xs[0], a[0])
        g = self.xp.empty((n, b), F32)
        self.K["dn_hinge_bwd"](grid, WARP, g, x, self.c(dy), idx, float(a[1]), n, b)
        return g.reshape(xs[0].shape)

    def f_binary_log_loss(self, xs, a, d):
        v = self.E["bll_f"](xs[0], xs[1])
        return v.reshape(-1, v.shape[-1]).sum(axis=0, keepdims=True)

    def b_binary_log_loss(self, xs, y, dy, a, d, i):
        if i == 0:
            return self.E["bll_b0"](dy, xs[0], xs[1])
        return self.E["bll_b1"](dy, xs[0])

    def f_squared_distance(self, xs, a, d):
        return self.data_red("sqdist", xs[0], xs[1])

    def b_squared_distance(self, xs, y, dy, a, d, i):
        x0, x1, nd = self._pair(xs, d)
        g = self.E["sqd_b"](x0, x1, batch_bc(dy, nd))
        return unbroadcast(g if i == 0 else -g, xs[i].shape)

    def f_l1_distance(self, xs, a, d):
        return self.data_red("l1dist", xs[0], xs[1])

    def b_l1_distance(self, xs, y, dy, a, d, i):
        return self.E["l1_b"](xs[i], xs[1 - i], batch_bc(dy, xs[i].ndim - 1))

    def f_huber_distance(self, xs, a, d):
        v = self.E["huber_f"](xs[0], xs[1], float(a[0]))
        return v.reshape(-1, v.shape[-1]).sum(axis=0, keepdims=True)

    def b_huber_distance(self, xs, y, dy, a, d, i):
        return self.E["huber_b"](xs[i], xs[1 - i], batch_bc(dy, xs[i].ndim - 1), float(a[0]))

    # ------------------------------------------------------------ gradient control
    def f_argmax(self, xs, a, d):
        x = xs[0]
        out = self.xp.zeros_like(x)
        out[x.argmax(axis=0), self.xp.arange(x.shape[-1])] = 1
        return out

    def b_argmax(self, xs, y, dy, a, d, i):
        return dy.copy() if a[0] else self.xp.zeros_like(dy)
