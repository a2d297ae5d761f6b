"""Kernels of the rest of DyNet's op set (issue 6) for the cuda backend.

A mixin of :class:`.opkernels.OpKernels`, following
``backends/reference_numpy/kernels_more.py`` op by op.  Dense linear algebra
goes through ``xp.matmul`` / ``xp.linalg`` (cuBLAS / cuSOLVER on a GPU);
windows (conv2d, pooling, filters) are gathered with strided slices and
multiplied as one GEMM; data-dependent selections (sparsemax, k-max pooling,
argmax gradients) use masks rather than host-side indexing, so nothing
leaves the device.
"""

from __future__ import annotations

import math

import numpy as np

from .layout import conv_geometry, pad, slices, unbroadcast, vec

F32 = np.float32
FORGET_GATE_BIAS = 1.0  # DyNet's VanillaLSTMGates adds 1 to the forget gate's pre-activation


def _window(xp_, r: int, c: int, stride, out_hw):
    """The (H', W', ...) slab of a padded (H, W, ...) array seen by kernel offset (r, c)."""
    return xp_[r: r + (out_hw[0] - 1) * stride[0] + 1: stride[0], c: c + (out_hw[1] - 1) * stride[1] + 1: stride[1]]


class MoreOps:
    """f_<op> / b_<op> methods; expects ``xp``, ``E``, ``R``, ``dev`` and the helpers of OpKernels."""

    # ------------------------------------------------------------ rounding, silu, to_device
    def _rounding(name):  # noqa: N805 - builds methods at class creation
        def f(self, xs, a, d):
            return self.E[name + "_f"](xs[0])

        def b(self, xs, y, dy, a, d, i):
            return dy.copy() if a[0] else self.xp.zeros_like(dy)

        return f, b

    f_round, b_round = _rounding("round")
    f_ceil, b_ceil = _rounding("ceil")
    f_floor, b_floor = _rounding("floor")
    del _rounding

    def f_to_device(self, xs, a, d):
        return xs[0].copy()

    def b_to_device(self, xs, y, dy, a, d, i):
        return dy

    # ------------------------------------------------------------ sparsemax family
    def _nan_unless_finite(self, y, *xs):
        """y, or NaN throughout where an input holds a NaN or an Inf (as the reference), with no
        host synchronisation."""
        ok = self.xp.isfinite(xs[0]).all()
        for x in xs[1:]:
            ok = ok & self.xp.isfinite(x).all()
        return self.xp.where(ok, y, F32(np.nan)).astype(F32)

    def _sparsemax_tau(self, z):
        """Threshold of the simplex projection of the vector z, as a 0-d device array."""
        xp = self.xp
        zs = xp.sort(z)[::-1]
        cs = xp.cumsum(zs)
        ks = xp.arange(1, z.size + 1)
        support = 1 + ks.astype(np.float64) * zs.astype(np.float64) > cs.astype(np.float64)
        k = support.sum()
        return xp.where(ks == k, (cs - F32(1)) / ks.astype(F32), F32(0)).sum(dtype=F32)

    def f_sparsemax(self, xs, a, d):
        z = xs[0].reshape(-1)
        return self._nan_unless_finite(self.xp.maximum(z - self._sparsemax_tau(z), F32(0)).reshape(d.shape), z)

    def b_sparsemax(self, xs, y, dy, a, d, i):
        xp = self.xp
        g = dy.reshape(-1)
        support = y.reshape(-1) > 0
        mean = xp.where(support, g, F32(0)).sum() / support.sum().astype(F32)
        return xp.where(support, g - mean, F32(0)).reshape(xs[0].shape)

    def f_sparsemax_loss(self, xs, a, d):
        xp = self.xp
        z = xs[0].reshape(-1)
        tau = self._sparsemax_tau(z)
        support = z - tau > 0
        q = a[0]
        sq = xp.where(support, z * z - tau * tau, F32(0)).sum()
        picked = xp.take(z, self.dev.index(q)).sum()
        loss = (sq + F32(1.0 / len(q))) / F32(2) - picked / F32(len(q))
        return self._nan_unless_finite(xp.maximum(loss, F32(0)).reshape(1, 1) * xp.ones(d.shape, F32), z)

    def b_sparsemax_loss(self, xs, y, dy, a, d, i):
        xp = self.xp
        z = xs[0].reshape(-1)
        p = xp.maximum(z - self._sparsemax_tau(z), F32(0))
        q = a[0]
        target = xp.zeros((z.size, 1), F32)
        self.index_add(target, xp.full((len(q), 1), 1.0 / len(q), F32), q, 0)
        return (dy.reshape(-1)[0] * (p - target[:, 0])).reshape(xs[0].shape)

    def _csoftmax(self, z, u):
        """Softmax of z capped by u (DyNet's active-set loop), without host round trips.

        The loop body is a no-op once no entry exceeds its cap, so it runs
        unconditionally; whether it may stop is read only after 1, 2, 4, ...
        iterations (log2(n) reads of one flag instead of one per iteration).
        """
        xp = self.xp
        n = z.size
        q = self.E["exp_sub"](z, z.max())
        p = xp.empty_like(z)
        active = xp.ones(n, dtype=bool)
        mass = xp.zeros((), np.float64)
        check = 1
        for it in range(1, n + 2):
            s = xp.where(active, q, F32(0)).sum()
            s = xp.where(s > 0, s, F32(1))  # no active entry left: p keeps its capped values
            p = xp.where(active, q * (1 - mass).astype(F32) / s, p)
            over = active & (p > u)
            p = xp.where(over, u, p)
            mass = mass + xp.where(over, u, F32(0)).sum(dtype=np.float64)
            active = active & ~over
            if it == check:
                check *= 2
                if not bool(over.any()):
                    break
        return p, active, mass

    def f_constrained_softmax(self, xs, a, d):
        p, _, _ = self._csoftmax(xs[0].reshape(-1), xs[1].reshape(-1))
        return self._nan_unless_finite(p.reshape(d.shape), xs[0], xs[1])

    def b_constrained_softmax(self, xs, y, dy, a, d, i):
        xp = self.xp
        p, active, mass = self._csoftmax(xs[0].reshape(-1), xs[1].reshape(-1))
        g = dy.reshape(-1)
        any_active = active.any()
        denom = xp.where(any_active, 1 - mass, 1.0)
        dhat = xp.where(any_active, xp.where(active, p * g, F32(0)).sum() / denom, 0.0).astype(F32)
        if i == 0:
            out = xp.where(active, p * (g - dhat), F32(0))
        else:
            out = xp.where(active, F32(0), g - dhat)
        return out.reshape(xs[i].shape)

    # ------------------------------------------------------------ selection along a dimension
    def f_strided_select(self, xs, a, d):
        return self.xp.ascontiguousarray(xs[0][slices(xs[0].shape, a)]).reshape(d.shape)

    def b_strided_select(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(xs[0].shape, F32)
        sl = slices(g.shape, a)
        g[sl] = dy.reshape(g[sl].shape)
        return g

    def _one_hot_along(self, idx, n: int, ax: int, ndim: int):
        """Mask of the positions ``idx`` (keepdims along ax) among n entries of axis ax."""
        shape = [1] * ndim
        shape[ax] = n
        return self.xp.arange(n).reshape(shape) == idx

    def _extreme_b(self, xs, dy, a, arg):
        x = xs[0]
        ax = a[0]
        idx = self.xp.expand_dims(arg(x, axis=ax), ax)
        mask = self._one_hot_along(idx, x.shape[ax], ax, x.ndim)
        return self.xp.where(mask, dy.reshape(idx.shape), F32(0))

    def f_max_dim(self, xs, a, d):
        return xs[0].max(axis=a[0]).reshape(d.shape)

    def b_max_dim(self, xs, y, dy, a, d, i):
        return self._extreme_b(xs, dy, a, self.xp.argmax)

    def f_min_dim(self, xs, a, d):
        return xs[0].min(axis=a[0]).reshape(d.shape)

    def b_min_dim(self, xs, y, dy, a, d, i):
        return self._extreme_b(xs, dy, a, self.xp.argmin)

    def f_cumsum(self, xs, a, d):
        return self.xp.cumsum(xs[0], axis=a[0])

    def b_cumsum(self, xs, y, dy, a, d, i):
        xp = self.xp
        ax = a[0]
        return xp.flip(xp.cumsum(xp.flip(dy, ax), axis=ax), ax)

    def _kmax_select(self, x, k: int, ax: int):
        """(n, k) one-hot map, per slice along ax, of the k largest entries in their original order.

        Entry i is kept when fewer than k entries beat it (larger, or equal and
        earlier: a stable descending sort), and goes to output slot
        (number of kept entries before it).  Masks only: no sort, no host sync.
        """
        xp = self.xp
        xm = xp.moveaxis(x, ax, -1)  # (..., n)
        n = xm.shape[-1]
        xi, xj = xm[..., :, None], xm[..., None, :]
        pos = xp.arange(n)
        earlier = pos[None, :] < pos[:, None]  # [i, j]: j before i
        rank = (xj > xi).sum(axis=-1) + ((xj == xi) & earlier).sum(axis=-1)
        keep = rank < k
        slot = xp.cumsum(keep, axis=-1) - 1
        return xm, keep[..., :, None] & (slot[..., :, None] == xp.arange(k))  # (..., n, k)

    def f_kmax_pooling(self, xs, a, d):
        k, ax = a
        xm, sel = self._kmax_select(xs[0], k, ax)
        out = self.xp.where(sel, xm[..., :, None], F32(0)).sum(axis=-2)
        return self.xp.ascontiguousarray(self.xp.moveaxis(out, -1, ax))

    def b_kmax_pooling(self, xs, y, dy, a, d, i):
        k, ax = a
        xp = self.xp
        _, sel = self._kmax_select(xs[0], k, ax)
        g = xp.where(sel, xp.moveaxis(dy, ax, -1)[..., None, :], F32(0)).sum(axis=-1)
        return xp.ascontiguousarray(xp.moveaxis(g, -1, ax))

    # ------------------------------------------------------------ reductions
    def _std_parts(self, x, a):
        axes = tuple(a[0]) + ((x.ndim - 1,) if a[1] else ())
        n = float(a[2]) if a[2] > 0 else float(math.prod(x.shape[k] for k in axes))
        mean = x.sum(axis=axes, keepdims=True) / F32(n)
        return axes, n, x - mean

    def f_std_dim(self, xs, a, d):
        axes, n, dev = self._std_parts(xs[0], a)
        return self.xp.sqrt((dev * dev).sum(axis=axes) / F32(n)).reshape(d.shape)

    def b_std_dim(self, xs, y, dy, a, d, i):
        xp = self.xp
        x = xs[0]
        axes, n, dev = self._std_parts(x, a)
        ks = [1 if k in axes else s for k, s in enumerate(x.shape)]
        centred = dev - dev.sum(axis=axes, keepdims=True) / F32(n)
        yk, gk = y.reshape(ks), dy.reshape(ks)
        pos = yk > 0  # where the std is 0 the gradient is taken as 0, as in the reference
        return centred * xp.where(pos, gk / xp.where(pos, yk * F32(n), F32(1)), F32(0))

    # ------------------------------------------------------------ losses
    def _hinge_dim_parts(self, x, a):
        """(el, is_gold mask, gold values) with the scored dimension first: shapes (n, other, B)."""
        xp = self.xp
        idx, d, m = a
        xm = pad(x, 2)
        if d == 1:
            xm = xm.transpose(1, 0, 2)
        n, other, bd = xm.shape
        flat = [idx[b if len(idx) > 1 else 0][c] for c in range(other) for b in range(bd)]
        gold = self.dev.index(flat).reshape(other, bd)
        is_gold = xp.arange(n).reshape(n, 1, 1) == gold[None]
        gold_val = xp.where(is_gold, xm, F32(0)).sum(axis=0)  # exactly x at the gold index
        el = xp.where(is_gold, F32(0), xp.maximum(F32(0), xm - gold_val[None] + F32(m)))
        return el, is_gold

    def f_hinge_dim(self, xs, a, d):
        el, _ = self._hinge_dim_parts(xs[0], a)
        return el.sum(axis=0).reshape(d.shape)

    def b_hinge_dim(self, xs, y, dy, a, d, i):
        xp = self.xp
        el, is_gold = self._hinge_dim_parts(xs[0], a)
        g2 = dy.reshape(1, -1, dy.shape[-1])
        active = (el > 0).astype(F32)
        g = xp.where(is_gold, g2 * F32(0) - active.sum(axis=0)[None] * g2, active * g2)
        if a[1] == 1:
            g = g.transpose(1, 0, 2)
        return xp.ascontiguousarray(g).reshape(xs[0].shape)

    def f_pairwise_rank_loss(self, xs, a, d):
        nd = len(d.d)
        x0, x1 = pad(xs[0], nd), pad(xs[1], nd)
        return self.xp.maximum(F32(0), self.xp.subtract(F32(a[0]), x0) + x1).reshape(d.shape)

    def b_pairwise_rank_loss(self, xs, y, dy, a, d, i):
        g = dy * (y > 0)
        return unbroadcast(-g if i == 0 else g, xs[i].shape)

    def f_poisson_loss(self, xs, a, d):
        x = xs[0]
        k = float(a[0])
        return self.xp.exp(x) + F32(math.lgamma(k + 1)) - x * F32(k)

    def b_poisson_loss(self, xs, y, dy, a, d, i):
        return dy * (self.xp.exp(xs[0]) - F32(a[0]))

    # ------------------------------------------------------------ linear algebra
    @staticmethod
    def _square(x):
        n = x.shape[0]
        return x.reshape(n, n)

    def f_inverse(self, xs, a, d):
        return self.xp.linalg.inv(self._square(xs[0])).reshape(d.shape)

    def b_inverse(self, xs, y, dy, a, d, i):
        yi = self._square(y)
        return (-(yi.T @ self._square(dy)) @ yi.T).reshape(xs[0].shape)

    def f_logdet(self, xs, a, d):
        xp = self.xp
        sign, logabs = xp.linalg.slogdet(self._square(xs[0]))
        return xp.where(sign > 0, logabs, F32(np.nan)).astype(F32).reshape(1, 1) * xp.ones(d.shape, F32)

    def b_logdet(self, xs, y, dy, a, d, i):
        inv = self.xp.linalg.inv(self._square(xs[0]))
        return (dy.reshape(-1)[0] * inv.T).reshape(xs[0].shape)

    def f_trace_of_product(self, xs, a, d):
        return self.data_red("dotsum", xs[0], xs[1])

    def b_trace_of_product(self, xs, y, dy, a, d, i):
        return xs[1 - i] * dy.reshape(-1)[0]

    def f_contract3d_1d(self, xs, a, d):
        xp = self.xp
        A = xp.broadcast_to(xs[0], xs[0].shape[:-1] + (d.bd,))
        b = xp.broadcast_to(vec(xs[1]), (xs[1].shape[0], d.bd))
        i_, j_, k_ = A.shape[:3]
        At = xp.moveaxis(A, -1, 0).reshape(d.bd, i_ * j_, k_)
        out = xp.matmul(At, xp.moveaxis(b, -1, 0)[:, :, None])  # (B, i*j, 1): one batched GEMV
        return xp.moveaxis(out[:, :, 0], 0, -1).reshape(d.shape)

    def b_contract3d_1d(self, xs, y, dy, a, d, i):
        xp = self.xp
        A = xp.broadcast_to(xs[0], xs[0].shape[:-1] + (d.bd,))
        k_ = A.shape[2]
        b = xp.broadcast_to(vec(xs[1]), (k_, d.bd))
        g = dy.reshape(A.shape[0], A.shape[1], 1, d.bd)
        if i == 0:
            return unbroadcast(g * b.reshape(1, 1, k_, d.bd), xs[0].shape)
        gb = (A * g).sum(axis=(0, 1))  # (k, B)
        return unbroadcast(gb, vec(xs[1]).shape).reshape(xs[1].shape)

    def f_contract3d_1d_1d(self, xs, a, d):
        A = xs[0][..., 0]
        b, c = vec(xs[1])[:, 0], vec(xs[2])[:, 0]
        return ((A @ b) @ c).reshape(d.shape)

    def b_contract3d_1d_1d(self, xs, y, dy, a, d, i):
        A = xs[0][..., 0]
        i_, j_, k_ = A.shape
        b, c, g = vec(xs[1])[:, 0], vec(xs[2])[:, 0], dy.reshape(-1)
        if i == 0:
            out = g[:, None, None] * c[None, :, None] * b[None, None, :]
        elif i == 1:
            out = (g[:, None] * c[None, :]).reshape(1, i_ * j_) @ A.reshape(i_ * j_, k_)
        else:
            out = g @ (A @ b)
        return out.reshape(xs[i].shape)

    def _shift_matrix(self, v, sign: int):
        """M[k, i] = v[(k + sign * i) mod n], gathered on the device."""
        xp = self.xp
        n = v.size
        ar = xp.arange(n)
        return xp.take(v, (ar[:, None] + sign * ar[None, :]) % n)

    def f_circ_conv(self, xs, a, d):
        u, v = xs[0].reshape(-1), xs[1].reshape(-1)
        return (self._shift_matrix(v, -1) @ u).reshape(d.shape)

    def b_circ_conv(self, xs, y, dy, a, d, i):
        other = xs[1 - i].reshape(-1)
        return (self._shift_matrix(other, -1).T @ dy.reshape(-1)).reshape(xs[i].shape)

    def f_circ_corr(self, xs, a, d):
        u, v = xs[0].reshape(-1), xs[1].reshape(-1)
        return (self._shift_matrix(v, 1) @ u).reshape(d.shape)

    def b_circ_corr(self, xs, y, dy, a, d, i):
        xp = self.xp
        u, v, g = xs[0].reshape(-1), xs[1].reshape(-1), dy.reshape(-1)
        if i == 0:
            return (self._shift_matrix(v, 1).T @ g).reshape(xs[0].shape)
        n = u.size
        ar = xp.arange(n)
        P = xp.take(u, (ar[None, :] - ar[:, None]) % n)  # y_k = sum_j v_j u_{(j - k) mod n}
        return (P.T @ g).reshape(xs[1].shape)

    # ------------------------------------------------------------ convolution and pooling
    def _pad_hw(self, x, ph, pw, value=0.0):
        if ph == (0, 0) and pw == (0, 0):
            return x
        return self.xp.pad(x, [ph, pw] + [(0, 0)] * (x.ndim - 2), constant_values=value)

    def _im2col(self, xpad, k, stride, out_hw):
        """(H'*W'*B, kh*kw*C) patches of a padded (H, W, C, B) input, in (r, c, channel) order."""
        xp = self.xp
        cols = xp.stack([_window(xpad, r, c, stride, out_hw) for r in range(k[0]) for c in range(k[1])])
        ho, wo, ci, bd = cols.shape[1:]
        return cols.transpose(1, 2, 4, 0, 3).reshape(ho * wo * bd, k[0] * k[1] * ci)

    def f_conv2d(self, xs, a, d):
        x, f = xs
        stride, is_valid = a
        kh, kw, ci, co = f.shape[:4]
        ho, wo = d.d[0], d.d[1]
        ph, pw = conv_geometry(x.shape, (kh, kw), stride, is_valid, (ho, wo))
        cols = self._im2col(self._pad_hw(x, ph, pw), (kh, kw), stride, (ho, wo))
        out = self.xp.matmul(cols, f.reshape(kh * kw * ci, co))  # (H'*W'*B, Co): one GEMM
        return self.xp.ascontiguousarray(out.reshape(ho, wo, d.bd, co).transpose(0, 1, 3, 2))

    def b_conv2d(self, xs, y, dy, a, d, i):
        xp = self.xp
        x, f = xs
        stride, is_valid = a
        kh, kw, ci, co = f.shape[:4]
        ho, wo, bd = d.d[0], d.d[1], d.bd
        ph, pw = conv_geometry(x.shape, (kh, kw), stride, is_valid, (ho, wo))
        xpad = self._pad_hw(x, ph, pw)
        g = dy.transpose(0, 1, 3, 2).reshape(ho * wo * bd, co)
        if i == 1:
            cols = self._im2col(xpad, (kh, kw), stride, (ho, wo))
            return xp.matmul(cols.T, g).reshape(f.shape)
        dcols = xp.matmul(g, f.reshape(kh * kw * ci, co).T).reshape(ho, wo, bd, kh, kw, ci)
        gp = xp.zeros(xpad.shape, F32)
        for r in range(kh):
            for c in range(kw):
                _window(gp, r, c, stride, (ho, wo))[...] += dcols[:, :, :, r, c, :].transpose(0, 1, 3, 2)
        return xp.ascontiguousarray(gp[ph[0]: ph[0] + x.shape[0], pw[0]: pw[0] + x.shape[1]])

    def _pool(self, x, a, d):
        """Padded input, padding, the stacked windows (kh*kw, H', W', C, B) and the argmax in each window."""
        ksize, stride, is_valid = a
        out_hw = d.d[:2]
        ph, pw = conv_geometry(x.shape, ksize, stride, is_valid, out_hw)
        xpad = self._pad_hw(pad(x, 3), ph, pw, -np.inf)
        wins = self.xp.stack([_window(xpad, r, c, stride, out_hw) for r in range(ksize[0]) for c in range(ksize[1])])
        return xpad, ph, pw, wins

    def f_maxpooling2d(self, xs, a, d):
        _, _, _, wins = self._pool(xs[0], a, d)
        return wins.max(axis=0).reshape(d.shape)

    def b_maxpooling2d(self, xs, y, dy, a, d, i):
        xp = self.xp
        x = xs[0]
        ksize, stride, _ = a
        xpad, ph, pw, wins = self._pool(x, a, d)
        arg = wins.argmax(axis=0)  # first maximum in row-major window order, as the reference
        g = dy.reshape(arg.shape)
        gp = xp.zeros(xpad.shape, F32)
        for r in range(ksize[0]):
            for c in range(ksize[1]):
                _window(gp, r, c, stride, d.d[:2])[...] += xp.where(arg == r * ksize[1] + c, g, F32(0))
        return xp.ascontiguousarray(gp[ph[0]: ph[0] + x.shape[0], pw[0]: pw[0] + x.shape[1]]).reshape(x.shape)

    @staticmethod
    def _filters(f):
        """Filters of filter1d_narrow as (rows, width, n_filters)."""
        return f[..., 0] if f.ndim == 4 else f[..., 0][..., None]

    def _f1d_windows(self, x, width: int):
        """(ocols, rows * width) windows of the (rows, cols) input, in (row, offset) order."""
        ocols = x.shape[1] - width + 1
        w = self.xp.stack([x[:, k: k + ocols] for k in range(width)], axis=-1)  # (rows, ocols, width)
        return w.transpose(1, 0, 2).reshape(ocols, -1)

    def f_filter1d_narrow(self, xs, a, d):
        x, f = xs[0][..., 0], self._filters(xs[1])
        rows, width, nf = f.shape
        out = self.xp.matmul(self._f1d_windows(x, width), f.reshape(rows * width, nf))  # (ocols, nf)
        return self.xp.ascontiguousarray(out.T).reshape(d.shape)

    def b_filter1d_narrow(self, xs, y, dy, a, d, i):
        xp = self.xp
        x, f = xs[0][..., 0], self._filters(xs[1])
        rows, width, nf = f.shape
        g = dy.reshape(nf, -1)  # (n_filters, ocols)
        if i == 1:
            return xp.matmul(self._f1d_windows(x, width).T, g.T).reshape(xs[1].shape)
        gx = xp.zeros(x.shape, F32)
        for k in range(width):
            gx[:, k: k + g.shape[1]] += xp.matmul(f[:, k, :], g)
        return gx[..., None]

    def f_fold_rows(self, xs, a, d):
        x = pad(xs[0], 2)
        n = a[0]
        return x.reshape(x.shape[0] // n, n, x.shape[1], 1).sum(axis=1).reshape(d.shape)

    def b_fold_rows(self, xs, y, dy, a, d, i):
        return self.xp.repeat(pad(dy, 2), a[0], axis=0).reshape(xs[0].shape)

    def f_kmh_ngram(self, xs, a, d):
        x = xs[0]
        m = x.shape[1] - a[0] + 1
        out = x[:, 0:m].copy()
        for k in range(1, a[0]):
            out += x[:, k: k + m]
        return out

    def b_kmh_ngram(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(xs[0].shape, F32)
        for k in range(a[0]):
            g[:, k: k + dy.shape[1]] += dy
        return g

    # ------------------------------------------------------------ normalisation
    def f_weight_norm(self, xs, a, d):
        w, g = xs
        return w * (g.reshape(-1)[0] / self.xp.sqrt(self.R["sqsum"](w)))

    def b_weight_norm(self, xs, y, dy, a, d, i):
        w, g = xs
        sq = self.R["sqsum"](w)
        proj = self.R["dotsum"](dy, w)
        if i == 0:
            return dy * (g.reshape(-1)[0] / self.xp.sqrt(sq)) - y * (proj / sq)
        return self.xp.full(g.shape, 1, F32) * (proj / self.xp.sqrt(sq))

    # ------------------------------------------------------------ fused LSTM pieces (gate order i, f, o, g)
    def _lstm_inputs(self, xs, dropout: bool):
        x, h, Wx, Wh, b = xs[:5]
        xm, hm = vec(x), vec(h)
        if dropout:
            xm = xm * vec(xs[5])
            hm = hm * vec(xs[6])
        return xm, hm, Wx[..., 0], Wh[..., 0], vec(b)

    def _lstm_gates(self, xs, d, dropout: bool):
        xp = self.xp
        xm, hm, Wx, Wh, b = self._lstm_inputs(xs, dropout)
        pre = xp.matmul(Wx, xm) + xp.matmul(Wh, hm) + b
        n = pre.shape[0] // 4
        pre[n: 2 * n] += F32(FORGET_GATE_BIAS)
        out = xp.empty_like(pre)
        out[: 3 * n] = self.E["sigt_f"](pre[: 3 * n])
        out[3 * n:] = self.E["tanh_f"](pre[3 * n:])
        return out.reshape(d.shape)

    def _lstm_gates_b(self, xs, y, dy, i, dropout: bool):
        xp = self.xp
        xm, hm, Wx, Wh, b = self._lstm_inputs(xs, dropout)
        n = y.shape[0] // 4
        yv, gv = vec(y), vec(dy)
        r = xp.empty_like(gv)
        r[: 3 * n] = self.E["logistic_b"](yv[: 3 * n], yv[: 3 * n], gv[: 3 * n])  # g * y * (1 - y)
        r[3 * n:] = self.E["tanh_b"](yv[3 * n:], yv[3 * n:], gv[3 * n:])  # g * (1 - y^2)
        if i in (0, 5):
            back = xp.matmul(Wx.T, r)
            if i == 0:
                if dropout:
                    back = back * vec(xs[5])
                return unbroadcast(back, vec(xs[0]).shape).reshape(xs[0].shape)
            return unbroadcast(back * vec(xs[0]), vec(xs[5]).shape).reshape(xs[5].shape)
        if i in (1, 6):
            back = xp.matmul(Wh.T, r)
            if i == 1:
                if dropout:
                    back = back * vec(xs[6])
                return unbroadcast(back, vec(xs[1]).shape).reshape(xs[1].shape)
            return unbroadcast(back * vec(xs[1]), vec(xs[6]).shape).reshape(xs[6].shape)
        if i == 2:
            return xp.matmul(r, xp.broadcast_to(xm, (xm.shape[0], r.shape[1])).T).reshape(xs[2].shape)
        if i == 3:
            return xp.matmul(r, xp.broadcast_to(hm, (hm.shape[0], r.shape[1])).T).reshape(xs[3].shape)
        return r.sum(axis=1).reshape(xs[4].shape)

    def f_vanilla_lstm_gates(self, xs, a, d):
        return self._lstm_gates(xs, d, False)

    def b_vanilla_lstm_gates(self, xs, y, dy, a, d, i):
        return self._lstm_gates_b(xs, y, dy, i, False)

    def f_vanilla_lstm_gates_dropout(self, xs, a, d):
        return self._lstm_gates(xs, d, True)

    def b_vanilla_lstm_gates_dropout(self, xs, y, dy, a, d, i):
        return self._lstm_gates_b(xs, y, dy, i, True)

    @staticmethod
    def _split4(g):
        n = g.shape[0] // 4
        return g[:n], g[n: 2 * n], g[2 * n: 3 * n], g[3 * n:]

    def f_vanilla_lstm_c(self, xs, a, d):
        c, gates = xs
        i_, f_, _, g_ = self._split4(gates)
        return (i_ * g_ + f_ * c).reshape(d.shape)

    def b_vanilla_lstm_c(self, xs, y, dy, a, d, i):
        xp = self.xp
        c, gates = xs
        i_, f_, _, g_ = self._split4(gates)
        if i == 0:
            return unbroadcast(dy * f_, c.shape)
        cb = xp.broadcast_to(c, dy.shape)
        out = xp.concatenate([dy * g_, dy * cb, xp.zeros_like(dy), dy * i_], axis=0)
        return unbroadcast(out, gates.shape)

    def f_vanilla_lstm_h(self, xs, a, d):
        c, gates = xs
        return (self._split4(gates)[2] * self.E["tanh_f"](c)).reshape(d.shape)

    def b_vanilla_lstm_h(self, xs, y, dy, a, d, i):
        xp = self.xp
        c, gates = xs
        o = self._split4(gates)[2]
        t = self.E["tanh_f"](c)
        if i == 0:
            return unbroadcast(dy * o * (1 - t * t), c.shape)
        z = xp.zeros_like(dy)
        return unbroadcast(xp.concatenate([z, z, dy * t, z], axis=0), gates.shape)
