"""Shape kernels: transpose, reshape, concatenation, and the selections (rows, columns, picks,
ranges, strided slices, k-max pooling) whose gradients scatter back."""

from __future__ import annotations

import numpy as np

from .layout import pad, slices, unbroadcast


class Shape:
    """The op table's shape section (a mixin of :class:`.kernels.Kernels`)."""

    def f_transpose(self, xs, a, d):
        perm = list(a.dims)
        x = pad(xs[0], len(perm))
        return self.xp.transpose(x, perm + [len(perm)]).reshape(d.shape)

    def b_transpose(self, xs, y, dy, a, d, i):
        perm = list(a.dims)
        x = xs[0]
        px = pad(x, len(perm))
        g = dy.reshape(tuple(px.shape[p] for p in perm) + dy.shape[-1:])
        inverse = sorted(range(len(perm)), key=perm.__getitem__)
        return self.xp.transpose(g, inverse + [len(perm)]).reshape(x.shape)

    def f_reshape(self, xs, a, d):
        return xs[0].reshape(d.shape, order="F")

    def b_reshape(self, xs, y, dy, a, d, i):
        return dy.reshape(xs[0].shape, order="F")

    # ---------------------------------------------------------------- concatenation
    def f_concatenate(self, xs, a, d):
        nd = len(d.d)
        ax = a.d
        parts = []
        for x in xs:
            px = pad(x, max(nd, ax + 1))
            if px.shape[-1] != d.bd:
                px = self.xp.broadcast_to(px, px.shape[:-1] + (d.bd,))
            parts.append(px)
        return self.xp.concatenate(parts, axis=ax).reshape(d.shape)

    def b_concatenate(self, xs, y, dy, a, d, i):
        ax = a.d
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

    # ---------------------------------------------------------------- selections
    def f_select_rows(self, xs, a, d):
        return xs[0][self.index(a.rows)]

    def b_select_rows(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(xs[0].shape, xs[0].dtype)  # C order: a device's index_add may need it
        self.index_add(g, a.rows, dy, 0)
        return g

    def f_select_cols(self, xs, a, d):
        return pad(xs[0], 2)[:, self.index(a.cols)].reshape(d.shape)

    def b_select_cols(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(pad(xs[0], 2).shape, xs[0].dtype)
        self.index_add(g, a.cols, pad(dy, 2), 1)
        return g.reshape(xs[0].shape)

    def _pick_index(self, ndim: int, idx, bd: int):
        """Index array for take_along_axis: one index per batch element."""
        shape = [1] * ndim
        shape[-1] = bd
        return self.xp.asarray(idx if len(idx) == bd else idx * bd, dtype=np.intp).reshape(shape)

    def f_pick(self, xs, a, d):
        x = xs[0]
        idx, ax = a.indices, a.dim
        if len(idx) == 1:
            return self.xp.take(x, idx[0], axis=ax).reshape(d.shape)
        xb = self.xp.broadcast_to(x, x.shape[:-1] + (d.bd,))
        return self.xp.take_along_axis(xb, self._pick_index(xb.ndim, idx, d.bd), axis=ax).reshape(d.shape)

    def b_pick(self, xs, y, dy, a, d, i):
        x = xs[0]
        idx, ax = a.indices, a.dim
        full = x.shape[:-1] + (d.bd,)
        g = self.xp.zeros(full, dy.dtype)
        ks = list(full)
        ks[ax] = 1
        self.xp.put_along_axis(g, self._pick_index(g.ndim, idx, d.bd), dy.reshape(ks), axis=ax)
        return unbroadcast(g, x.shape)

    def f_pick_batch_elems(self, xs, a, d):
        return xs[0][..., self.index(a.indices)]

    def b_pick_batch_elems(self, xs, y, dy, a, d, i):
        g = self.xp.zeros(xs[0].shape, xs[0].dtype)
        self.index_add(g, a.indices, dy, -1)
        return g

    def f_pickrange(self, xs, a, d):
        sl = [slice(None)] * xs[0].ndim
        sl[a.d] = slice(a.start, a.end)
        return xs[0][tuple(sl)]

    def b_pickrange(self, xs, y, dy, a, d, i):
        g = self.xp.zeros_like(xs[0])
        sl = [slice(None)] * g.ndim
        sl[a.d] = slice(a.start, a.end)
        g[tuple(sl)] = dy
        return g

    def f_strided_select(self, xs, a, d):
        return self.xp.ascontiguousarray(xs[0][slices(xs[0].shape, a)]).reshape(d.shape)

    def b_strided_select(self, xs, y, dy, a, d, i):
        g = self.xp.zeros_like(xs[0])
        sl = slices(g.shape, a)
        g[sl] = dy.reshape(g[sl].shape)
        return g

    def _kmax_positions(self, x, k: int, ax: int):
        """Positions of the k largest entries along ax, in their original order (ties: earliest first)."""
        xp = self.xp
        # NaN counts as the largest value (as in np.sort and torch.topk), so a NaN input is pooled
        order = xp.argsort(xp.where(xp.isnan(x), -np.inf, -x), axis=ax, kind="stable")
        return xp.sort(xp.take(order, xp.arange(k), axis=ax), axis=ax)

    def f_kmax_pooling(self, xs, a, d):
        return self.xp.take_along_axis(xs[0], self._kmax_positions(xs[0], a.k, a.d), axis=a.d)

    def b_kmax_pooling(self, xs, y, dy, a, d, i):
        g = self.xp.zeros_like(xs[0])
        self.xp.put_along_axis(g, self._kmax_positions(xs[0], a.k, a.d), dy, axis=a.d)
        return g
