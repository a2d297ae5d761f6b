"""Softmax family and reductions: softmax, log-sum-exp, sums, moments and std along dims,
max/min along a dim, cumulative sums, sparsemax and the constrained softmax."""

from __future__ import annotations

import numpy as np

from .layout import as_out, count, grad_like, keep_shape, red_axes, unbroadcast

F32 = np.float32


class Reductions:
    """The op table's softmax-family and reductions sections (a mixin of :class:`.kernels.Kernels`)."""

    # ---------------------------------------------------------------- softmax family
    def f_softmax(self, xs, a, d):
        x = xs[0]
        e = self.xp.exp(x - x.max(axis=a.d, keepdims=True))
        return e / e.sum(axis=a.d, keepdims=True)

    def b_softmax(self, xs, y, dy, a, d, i):
        return (dy - (y * dy).sum(axis=a.d, keepdims=True)) * y

    def f_log_softmax(self, xs, a, d):
        x = xs[0]
        if a.restrict is None:
            return x - self.lse(x, 0)
        r = self.index(a.restrict)
        out = self.xp.full(x.shape, -np.inf, x.dtype)
        out[r] = x[r] - self.lse(x[r], 0)
        return out

    def b_log_softmax(self, xs, y, dy, a, d, i):
        xp = self.xp
        if a.restrict is None:
            return dy - xp.exp(y) * dy.sum(axis=0, keepdims=True)
        r = self.index(a.restrict)
        g = xp.zeros_like(dy)
        g[r] = dy[r] - xp.exp(y[r]) * dy[r].sum(axis=0, keepdims=True)
        return g

    def f_logsumexp(self, xs, a, d):
        xp = self.xp
        x = xp.stack(xp.broadcast_arrays(*(as_out(x, d) for x in xs)))
        return self.lse(x, 0)[0].reshape(d.shape)

    def b_logsumexp(self, xs, y, dy, a, d, i):
        x = as_out(xs[i], d)
        return unbroadcast(self.xp.exp(x - y) * dy, x.shape).reshape(xs[i].shape)

    def f_logsumexp_dim(self, xs, a, d):
        return self.lse(xs[0], a.d).reshape(d.shape)

    def b_logsumexp_dim(self, xs, y, dy, a, d, i):
        x = xs[0]
        ks = keep_shape(x.shape, (a.d,))
        return self.xp.exp(x - y.reshape(ks)) * dy.reshape(ks)

    # ---------------------------------------------------------------- sums, moments, std over dims
    def f_sum_dim(self, xs, a, d):
        x = xs[0]
        return x.sum(axis=red_axes(x, a)).reshape(d.shape)

    def b_sum_dim(self, xs, y, dy, a, d, i):
        x = xs[0]
        return self.xp.broadcast_to(dy.reshape(keep_shape(x.shape, red_axes(x, a))), x.shape)

    @staticmethod
    def _moment_n(x, a) -> float:
        return float(a.n) if a.n > 0 else count(x.shape, red_axes(x, a))

    def f_moment_dim(self, xs, a, d):
        x = xs[0]
        return ((x ** a.r).sum(axis=red_axes(x, a)) / F32(self._moment_n(x, a))).reshape(d.shape)

    def b_moment_dim(self, xs, y, dy, a, d, i):
        x = xs[0]
        r = a.r
        g = dy.reshape(keep_shape(x.shape, red_axes(x, a)))
        scale = x ** (r - 1) if r != 1 else self.xp.ones_like(x)  # ones: the result must have x's shape
        return g * F32(r / self._moment_n(x, a)) * scale

    @staticmethod
    def _std_parts(x, a):
        axes = red_axes(x, a)
        n = float(a.n) if a.n > 0 else count(x.shape, axes)
        return axes, n, x - x.sum(axis=axes, keepdims=True) / n

    def f_std_dim(self, xs, a, d):
        axes, n, dev = self._std_parts(xs[0], a)
        return self.xp.sqrt((dev * dev).sum(axis=axes) / n).reshape(d.shape)

    def b_std_dim(self, xs, y, dy, a, d, i):
        xp = self.xp
        x = xs[0]
        axes, n, dev = self._std_parts(x, a)
        ks = keep_shape(x.shape, axes)
        # exact for any divisor n (the dev terms sum to 0 when n is the element count); where the std
        # is 0 every deviation is 0 and the gradient is taken as 0 (DyNet divides 0 by 0 there)
        centred = dev - dev.sum(axis=axes, keepdims=True) / n
        yk, gk = y.reshape(ks), dy.reshape(ks)
        pos = yk > 0
        return centred * xp.where(pos, gk / xp.where(pos, n * yk, 1), 0)

    # ---------------------------------------------------------------- max / min / cumulative sum along a dim
    def _extreme_f(self, arg, xs, a, d):
        x = xs[0]
        return self.xp.take_along_axis(x, arg(x, axis=a.d, keepdims=True), axis=a.d).reshape(d.shape)

    def _extreme_b(self, arg, xs, dy, a):
        x = xs[0]
        g = self.xp.zeros_like(x)
        idx = arg(x, axis=a.d, keepdims=True)
        self.xp.put_along_axis(g, idx, dy.reshape(idx.shape), axis=a.d)
        return g

    def f_max_dim(self, xs, a, d):
        return self._extreme_f(self.xp.argmax, xs, a, d)

    def b_max_dim(self, xs, y, dy, a, d, i):
        return self._extreme_b(self.xp.argmax, xs, dy, a)

    def f_min_dim(self, xs, a, d):
        return self._extreme_f(self.xp.argmin, xs, a, d)

    def b_min_dim(self, xs, y, dy, a, d, i):
        return self._extreme_b(self.xp.argmin, xs, dy, a)

    def f_cumsum(self, xs, a, d):
        return self.xp.cumsum(xs[0], axis=a.d)

    def b_cumsum(self, xs, y, dy, a, d, i):
        xp = self.xp
        ax = a.d
        return xp.flip(xp.cumsum(xp.flip(dy, ax), axis=ax), ax)

    # ---------------------------------------------------------------- sparsemax and the constrained softmax
    def all_finite(self, xs) -> bool:
        """Whether every input value is finite: a whole-vector op (sparsemax, its loss, the
        constrained softmax) is NaN throughout otherwise, its threshold or normaliser undefined."""
        return all(bool(self.xp.isfinite(x).all()) for x in xs)

    def sparsemax_tau(self, z):
        """Threshold of the simplex projection of the vector z."""
        xp = self.xp
        zs = xp.sort(z)[::-1]
        cs = xp.cumsum(zs)
        ks = xp.arange(1, z.size + 1)
        k = int(xp.count_nonzero(1 + ks * zs > cs))
        return (cs[k - 1] - 1) / k

    def f_sparsemax(self, xs, a, d):
        if not self.all_finite(xs):
            return self.xp.full(d.shape, np.nan, xs[0].dtype)
        z = xs[0].reshape(-1)
        return self.xp.maximum(z - self.sparsemax_tau(z), 0).reshape(d.shape)

    def b_sparsemax(self, xs, y, dy, a, d, i):
        g = dy.reshape(-1)
        support = y.reshape(-1) > 0
        return grad_like(self.xp.where(support, g - g[support].mean(), 0), xs[0])

    def _csoftmax(self, z, u):
        """Softmax of z capped by u (DyNet's active-set loop): (p, active mask, capped mass)."""
        xp = self.xp
        q = xp.exp(z - z.max())
        p = xp.empty_like(z)
        active = xp.ones(z.size, dtype=bool)
        mass = 0.0
        while active.any():
            p[active] = q[active] * (1 - mass) / q[active].sum()
            over = active & (p > u)
            if not over.any():
                break
            p[over] = u[over]
            mass += float(u[over].sum())
            active &= ~over
        return p, active, mass

    def f_constrained_softmax(self, xs, a, d):
        if not self.all_finite(xs):
            return self.xp.full(d.shape, np.nan, xs[0].dtype)
        p, _, _ = self._csoftmax(xs[0].reshape(-1), xs[1].reshape(-1))
        return p.reshape(d.shape)

    def b_constrained_softmax(self, xs, y, dy, a, d, i):
        p, active, mass = self._csoftmax(xs[0].reshape(-1), xs[1].reshape(-1))
        g = dy.reshape(-1)
        dhat = (p[active] * g[active]).sum() / (1 - mass) if active.any() else 0.0
        if i == 0:
            out = self.xp.where(active, p * (g - dhat), 0)
        else:
            out = self.xp.where(active, 0, g - dhat)
        return grad_like(out, xs[i])
