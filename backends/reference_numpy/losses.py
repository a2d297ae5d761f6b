"""Loss kernels: class losses (negative log-softmax, hinge), distances, binary log loss, and the
issue-6 losses (hinge along a dim, pairwise rank, Poisson, sparsemax loss)."""

from __future__ import annotations

import math

import numpy as np

from .layout import batch_bc, data_sum, grad_like, pad, padded_pair, unbroadcast, vec

F32 = np.float32
FLT_MIN = float(np.finfo(np.float32).tiny)
# DyNet's binary log loss (FBinaryLogLoss): a prediction of exactly 0 or 1 where the
# target puts weight on the other side costs -log(FLT_MIN) = 87.3365 instead of Inf.
BLL_CAP = F32(-math.log(FLT_MIN))
# DyNet's backward moves a prediction of exactly 0 to FLT_MIN and of exactly 1 to 0.9999999f.
BLL_HI = F32(0.9999999)


class Losses:
    """The op table's losses section (a mixin of :class:`.kernels.Kernels`)."""

    # ---------------------------------------------------------------- class losses: scores as (n, batch) columns
    def _gold(self, x, idx):
        """(rows, columns) index of each column's gold entry."""
        return self.index(idx), self.xp.arange(x.shape[-1])

    def f_pickneglogsoftmax(self, xs, a, d):
        x = vec(xs[0])
        return (self.lse(x, 0)[0] - x[self._gold(x, a.indices)]).reshape(d.shape)

    def b_pickneglogsoftmax(self, xs, y, dy, a, d, i):
        x = vec(xs[0])
        dy = dy.reshape(1, -1)
        g = self.xp.exp(x - self.lse(x, 0)) * dy
        g[self._gold(x, a.indices)] -= dy[0]
        return g.reshape(xs[0].shape)

    def _hinge_terms(self, x, idx, m):
        gold = self._gold(x, idx)
        el = self.xp.maximum(0, x - x[gold] + F32(m))
        el[gold] = 0
        return el

    def f_hinge(self, xs, a, d):
        return self._hinge_terms(vec(xs[0]), a.indices, a.m).sum(axis=0, keepdims=True).reshape(d.shape)

    def b_hinge(self, xs, y, dy, a, d, i):
        xp = self.xp
        x = vec(xs[0])
        dy = dy.reshape(1, -1)
        active = self._hinge_terms(x, a.indices, a.m) > 0
        # Only active terms receive dy (as in DyNet, which skips elements without loss): an
        # element whose loss is 0 gets no gradient even where dy is Inf or NaN.
        g = xp.where(active, dy, F32(0)).astype(x.dtype)
        n = active.sum(axis=0)
        g[self._gold(x, a.indices)] -= xp.where(n > 0, n * dy[0], F32(0))
        return g.reshape(xs[0].shape)

    def _hinge_dim_parts(self, x, a):
        """Per-element losses of hinge_dim, the scored dimension first: (el, index of the gold entries)."""
        xp = self.xp
        idx, d, m = a.indices, a.d, a.m
        xm = pad(x, 2)
        if d == 1:
            xm = xm.transpose(1, 0, 2)
        bd = xm.shape[-1]
        gold = xp.asarray([idx[b if len(idx) > 1 else 0] for b in range(bd)], dtype=np.intp).T  # (cols, bd)
        at = (gold, xp.arange(xm.shape[1])[:, None], xp.arange(bd)[None, :])
        el = xp.maximum(0, xm - xm[at][None] + m)
        el[at] = 0
        return el, at

    def f_hinge_dim(self, xs, a, d):
        el, _ = self._hinge_dim_parts(xs[0], a)
        return el.sum(axis=0).reshape(d.shape)

    def b_hinge_dim(self, xs, y, dy, a, d, i):
        el, at = self._hinge_dim_parts(xs[0], a)
        g2 = dy.reshape(1, -1, dy.shape[-1])
        active = (el > 0).astype(xs[0].dtype)
        g = active * g2
        g[at] -= active.sum(axis=0) * g2[0]
        if a.d == 1:
            g = g.transpose(1, 0, 2)
        return g.reshape(xs[0].shape)

    # ---------------------------------------------------------------- distances and the binary log loss
    def f_binary_log_loss(self, xs, a, d):
        xp = self.xp
        x, t = xs[0], xs[1]
        with self.quiet():
            el = -(t * xp.log(x) + (1 - t) * xp.log1p(-x))
            el = xp.where(t == 1, xp.where(x == 0, BLL_CAP, -xp.log(x)), el)
            el = xp.where(t == 0, xp.where(x == 1, BLL_CAP, -xp.log1p(-x)), el)
            el = xp.where((t != 1) & (t != 0) & ((x == 0) | (x == 1)), BLL_CAP, el)
        return data_sum(el).astype(x.dtype)

    def b_binary_log_loss(self, xs, y, dy, a, d, i):
        xp = self.xp
        t = xs[1]
        x = xp.where(xs[0] == 0, F32(FLT_MIN), xp.where(xs[0] == 1, BLL_HI, xs[0])).astype(xs[0].dtype)
        dy = batch_bc(dy, x.ndim - 1)
        if i == 0:
            g = xp.where(t == 1, -t / x, xp.where(t == 0, (1 - t) / (1 - x), (1 - t) / (1 - x) - t / x))
            # DyNet's FBinaryLogLossBackward: no gradient where the prediction equals the target.
            return xp.where(xs[0] == t, F32(0), dy * g).astype(x.dtype)
        return (dy * (xp.log1p(-x) - xp.log(x))).astype(x.dtype)

    def f_squared_distance(self, xs, a, d):
        x0, x1, _ = padded_pair(xs, d)
        diff = x0 - x1
        return data_sum(diff * diff)

    def b_squared_distance(self, xs, y, dy, a, d, i):
        x0, x1, nd = padded_pair(xs, d)
        g = 2 * (x0 - x1) * batch_bc(dy, nd)
        return unbroadcast(g if i == 0 else -g, xs[i].shape)

    def f_l1_distance(self, xs, a, d):
        return data_sum(self.xp.abs(xs[0] - xs[1]))

    def b_l1_distance(self, xs, y, dy, a, d, i):
        return self.xp.sign(xs[i] - xs[1 - i]) * batch_bc(dy, xs[i].ndim - 1)

    def f_huber_distance(self, xs, a, d):
        c = F32(a.c)
        diff = self.xp.abs(xs[0] - xs[1])
        # DyNet's HuberDistance::forward_dev_impl halves the sum (its functor and docstring don't show it).
        return (data_sum(self.xp.where(diff < c, diff * diff, (2 * diff - c) * c)) * F32(0.5)).astype(diff.dtype)

    def b_huber_distance(self, xs, y, dy, a, d, i):
        c = F32(a.c)
        diff = xs[i] - xs[1 - i]
        g = self.xp.where(self.xp.abs(diff) < c, diff, self.xp.sign(diff) * c).astype(diff.dtype)
        return batch_bc(dy, diff.ndim - 1) * g

    # ---------------------------------------------------------------- pairwise rank, Poisson, sparsemax loss
    def f_pairwise_rank_loss(self, xs, a, d):
        x0, x1 = pad(xs[0], len(d.d)), pad(xs[1], len(d.d))
        return self.xp.maximum(0, a.m - x0 + x1).reshape(d.shape)

    def b_pairwise_rank_loss(self, xs, y, dy, a, d, i):
        g = dy * (y > 0)
        return unbroadcast(-g if i == 0 else g, xs[i].shape)

    def f_poisson_loss(self, xs, a, d):
        x = xs[0]
        k = float(a.y)
        return self.xp.exp(x) + math.lgamma(k + 1) - x * k

    def b_poisson_loss(self, xs, y, dy, a, d, i):
        return dy * (self.xp.exp(xs[0]) - float(a.y))

    def f_sparsemax_loss(self, xs, a, d):
        if not self.all_finite(xs):
            return self.xp.full(d.shape, np.nan, xs[0].dtype)
        z = xs[0].reshape(-1)
        tau = self.sparsemax_tau(z)
        support = z - tau > 0
        n = len(a.target)
        loss = ((z[support] ** 2 - tau * tau).sum() + 1.0 / n) / 2 - z[self.index(a.target)].sum() / n
        return self.xp.full(d.shape, max(float(loss), 0.0), xs[0].dtype)

    def b_sparsemax_loss(self, xs, y, dy, a, d, i):
        xp = self.xp
        z = xs[0].reshape(-1)
        p = xp.maximum(z - self.sparsemax_tau(z), 0)
        target = xp.zeros(z.size, z.dtype)  # the uniform distribution over the target set
        self.index_add(target, a.target, xp.full(len(a.target), 1.0 / len(a.target), z.dtype), 0)
        return grad_like(dy.reshape(-1)[0] * (p - target), xs[0])
