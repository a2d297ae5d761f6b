"""Linear algebra and convolution kernels: inverse, log-determinant, tensor contractions,
circular convolution/correlation, conv2d, max pooling, 1-d filters, row folds and n-gram sums."""

from __future__ import annotations

import numpy as np

from .layout import conv_geometry, data_sum, filters, grad_like, pad, square, unbroadcast, vec
from .portable import windows


class LinalgConv:
    """The op table's linear-algebra and convolution ops (a mixin of :class:`.kernels.Kernels`)."""

    # ---------------------------------------------------------------- matrices
    def f_inverse(self, xs, a, d):
        # A NaN anywhere makes the whole inverse NaN, on every backend: LU solvers differ in where
        # a NaN shows (LAPACK leaves some entries finite; cuSOLVER turns a 1x1 NaN into +Inf).
        m = square(xs[0])
        xp = self.xp
        return xp.where(xp.isnan(m).any(), xp.float32(np.nan), xp.linalg.inv(m)).reshape(d.shape)

    def b_inverse(self, xs, y, dy, a, d, i):
        yi = square(y)
        return grad_like(-yi.T @ square(dy) @ yi.T, xs[0])

    def f_logdet(self, xs, a, d):
        sign, logabs = self.xp.linalg.slogdet(square(xs[0]))
        return self.xp.full(d.shape, float(logabs) if sign > 0 else np.nan, xs[0].dtype)

    def b_logdet(self, xs, y, dy, a, d, i):
        return grad_like(dy.reshape(-1)[0] * self.xp.linalg.inv(square(xs[0])).T, xs[0])

    def f_trace_of_product(self, xs, a, d):
        return data_sum(xs[0] * xs[1])

    def b_trace_of_product(self, xs, y, dy, a, d, i):
        return xs[1 - i] * dy.reshape(-1)[0]

    # ---------------------------------------------------------------- contractions
    def _batched(self, x, bd: int):
        return self.xp.broadcast_to(x, x.shape[:-1] + (bd,)) if x.shape[-1] != bd else x

    def f_contract3d_1d(self, xs, a, d):
        A, b = self._batched(xs[0], d.bd), self._batched(vec(xs[1]), d.bd)
        return self.xp.einsum("ijkb,kb->ijb", A, b).reshape(d.shape)

    def b_contract3d_1d(self, xs, y, dy, a, d, i):
        A, b = self._batched(xs[0], d.bd), self._batched(vec(xs[1]), d.bd)
        g = dy.reshape(A.shape[0], A.shape[1], d.bd)
        if i == 0:
            return unbroadcast(self.xp.einsum("ijb,kb->ijkb", g, b), xs[0].shape)
        return unbroadcast(self.xp.einsum("ijb,ijkb->kb", g, A), vec(xs[1]).shape).reshape(xs[1].shape)

    def f_contract3d_1d_1d(self, xs, a, d):
        A = xs[0][..., 0]
        return self.xp.einsum("ijk,k,j->i", A, vec(xs[1])[:, 0], vec(xs[2])[:, 0]).reshape(d.shape)

    def b_contract3d_1d_1d(self, xs, y, dy, a, d, i):
        A = xs[0][..., 0]
        b, c, g = vec(xs[1])[:, 0], vec(xs[2])[:, 0], dy.reshape(-1)
        if i == 0:
            out = self.xp.einsum("i,j,k->ijk", g, c, b)
        elif i == 1:
            out = self.xp.einsum("ijk,j,i->k", A, c, g)
        else:
            out = self.xp.einsum("ijk,k,i->j", A, b, g)
        return grad_like(out, xs[i])

    # ---------------------------------------------------------------- circular convolution and correlation
    def _shift_matrix(self, v, sign: int):
        """M[k, i] = v[(k + sign * i) mod n]."""
        ar = self.xp.arange(v.size)
        return v[(ar[:, None] + sign * ar[None, :]) % v.size]

    def f_circ_conv(self, xs, a, d):
        u, v = xs[0].reshape(-1), xs[1].reshape(-1)
        return (self._shift_matrix(v, -1) @ u).reshape(d.shape)

    def b_circ_conv(self, xs, y, dy, a, d, i):
        other = xs[1 - i].reshape(-1)
        return grad_like(self._shift_matrix(other, -1).T @ dy.reshape(-1), xs[i])

    def f_circ_corr(self, xs, a, d):
        u, v = xs[0].reshape(-1), xs[1].reshape(-1)
        return (self._shift_matrix(v, 1) @ u).reshape(d.shape)

    def b_circ_corr(self, xs, y, dy, a, d, i):
        u, v, g = xs[0].reshape(-1), xs[1].reshape(-1), dy.reshape(-1)
        if i == 0:
            return grad_like(self._shift_matrix(v, 1).T @ g, xs[0])
        # y_k = sum_j v_j u_{(j - k) mod n}
        ar = self.xp.arange(u.size)
        return grad_like(u[(ar[None, :] - ar[:, None]) % u.size].T @ g, xs[1])

    # ---------------------------------------------------------------- convolution and pooling
    def _pad_hw(self, x, ph, pw, value=0.0):
        return self.xp.pad(x, [ph, pw] + [(0, 0)] * (x.ndim - 2), constant_values=value)

    def _windows(self, x, k, stride, out_hw):
        """(H', W', ..., kh, kw) view of the strided windows of a padded (H, W, ...) array."""
        w = windows(self.xp, x, tuple(k), (0, 1))
        return w[: (out_hw[0] - 1) * stride[0] + 1: stride[0], : (out_hw[1] - 1) * stride[1] + 1: stride[1]]

    def f_conv2d(self, xs, a, d):
        x, f = xs
        stride, is_valid = a.stride, a.is_valid
        kh, kw = f.shape[0], f.shape[1]
        ph, pw = conv_geometry(x.shape, (kh, kw), stride, is_valid, d.d[:2])
        w = self._windows(self._pad_hw(x, ph, pw), (kh, kw), stride, d.d[:2])  # (H', W', Ci, B, kh, kw)
        return self.xp.einsum("ijcbrs,rsco->ijob", w, f[..., 0], optimize=True).reshape(d.shape)

    def b_conv2d(self, xs, y, dy, a, d, i):
        xp = self.xp
        x, f = xs
        stride, is_valid = a.stride, a.is_valid
        kh, kw = f.shape[0], f.shape[1]
        ho, wo = d.d[0], d.d[1]
        ph, pw = conv_geometry(x.shape, (kh, kw), stride, is_valid, (ho, wo))
        xpad = self._pad_hw(x, ph, pw)
        sh, sw = stride
        if i == 1:
            w = self._windows(xpad, (kh, kw), stride, (ho, wo))
            return xp.einsum("ijcbrs,ijob->rsco", w, dy, optimize=True)[..., None].astype(f.dtype, copy=False)
        gp = xp.zeros_like(xpad)
        for r in range(kh):
            for c in range(kw):
                contrib = xp.einsum("ijob,co->ijcb", dy, f[r, c, :, :, 0], optimize=True)
                gp[r: r + (ho - 1) * sh + 1: sh, c: c + (wo - 1) * sw + 1: sw] += contrib
        return gp[ph[0]: ph[0] + x.shape[0], pw[0]: pw[0] + x.shape[1]]

    def _pool_argmax(self, x, a, d):
        """Padded input, padding, the windows of maxpooling2d flattened, and the (row-major) argmax in each."""
        ksize, stride = a.ksize, a.stride
        ph, pw = conv_geometry(x.shape, ksize, stride, a.is_valid, d.d[:2])
        xpad = self._pad_hw(pad(x, 3), ph, pw, -np.inf)
        w = self._windows(xpad, ksize, stride, d.d[:2])  # (H', W', C, B, kh, kw)
        flat = w.reshape(w.shape[:4] + (-1,))
        return xpad, ph, pw, flat, flat.argmax(axis=-1)

    def f_maxpooling2d(self, xs, a, d):
        _, _, _, flat, arg = self._pool_argmax(xs[0], a, d)
        return self.xp.take_along_axis(flat, arg[..., None], axis=-1)[..., 0].reshape(d.shape)

    def b_maxpooling2d(self, xs, y, dy, a, d, i):
        xp = self.xp
        x = xs[0]
        ksize, stride = a.ksize, a.stride
        xpad, ph, pw, _, arg = self._pool_argmax(x, a, d)
        ho, wo, ch, bd = arg.shape
        ii, jj, cc, bb = xp.meshgrid(xp.arange(ho), xp.arange(wo), xp.arange(ch), xp.arange(bd), indexing="ij")
        rows = ii * stride[0] + arg // ksize[1]
        cols = jj * stride[1] + arg % ksize[1]
        gp = xp.zeros(xpad.shape, x.dtype)
        xp.add.at(gp, (rows, cols, cc, bb), dy.reshape(arg.shape))  # overlapping windows add up
        return gp[ph[0]: ph[0] + x.shape[0], pw[0]: pw[0] + x.shape[1]].reshape(x.shape)

    # ---------------------------------------------------------------- 1-d filters, row folds, n-grams
    def f_filter1d_narrow(self, xs, a, d):
        x, f = xs[0][..., 0], filters(xs[1])
        w = windows(self.xp, x, (f.shape[1],), (1,))  # (rows, ocols, width)
        return self.xp.einsum("rjk,rkf->fj", w, f).reshape(d.shape)

    def b_filter1d_narrow(self, xs, y, dy, a, d, i):
        xp = self.xp
        x, f = xs[0][..., 0], filters(xs[1])
        g = dy.reshape(f.shape[2], -1)  # (n_filters, ocols)
        if i == 1:
            return grad_like(xp.einsum("rjk,fj->rkf", windows(xp, x, (f.shape[1],), (1,)), g), xs[1])
        gx = xp.zeros_like(x)
        for k in range(f.shape[1]):
            gx[:, k: k + g.shape[1]] += xp.einsum("rf,fj->rj", f[:, k, :], g)
        return gx[..., None]

    def f_fold_rows(self, xs, a, d):
        x = pad(xs[0], 2)
        n = a.nrows
        return x.reshape(x.shape[0] // n, n, x.shape[1], 1).sum(axis=1).reshape(d.shape)

    def b_fold_rows(self, xs, y, dy, a, d, i):
        return self.xp.repeat(pad(dy, 2), a.nrows, axis=0).reshape(xs[0].shape)

    def f_kmh_ngram(self, xs, a, d):
        return windows(self.xp, xs[0], (a.n,), (1,)).sum(axis=-1)

    def b_kmh_ngram(self, xs, y, dy, a, d, i):
        g = self.xp.zeros_like(xs[0])
        for k in range(a.n):
            g[:, k: k + dy.shape[1]] += dy
        return g
