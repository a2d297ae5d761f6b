"""Arithmetic kernels: broadcasting binary ops, scalar ops, matrix products, sums and norms."""

from __future__ import annotations

import numpy as np

from .layout import as3, as_out, batch_bc, data_sum, pad, padded_pair, unbroadcast

F32 = np.float32


class Arithmetic:
    """The op table's arithmetic section (a mixin of :class:`.kernels.Kernels`)."""

    # ---------------------------------------------------------------- elementwise binary, broadcasting
    # (forward kernels spelled out, no helper call: they are among the hottest kernels of a graph)
    def f_add(self, xs, a, d):
        nd = len(d.d)
        return (pad(xs[0], nd) + pad(xs[1], nd)).reshape(d.shape)

    def b_add(self, xs, y, dy, a, d, i):
        return unbroadcast(pad(dy, max(xs[i].ndim - 1, dy.ndim - 1)), xs[i].shape)

    def f_cmult(self, xs, a, d):
        nd = len(d.d)
        return (pad(xs[0], nd) * pad(xs[1], nd)).reshape(d.shape)

    def b_cmult(self, xs, y, dy, a, d, i):
        x0, x1, nd = padded_pair(xs, d)
        return unbroadcast(pad(dy, nd) * (x1 if i == 0 else x0), xs[i].shape)

    def f_cdiv(self, xs, a, d):
        nd = len(d.d)
        return (pad(xs[0], nd) / pad(xs[1], nd)).reshape(d.shape)

    def b_cdiv(self, xs, y, dy, a, d, i):
        x0, x1, nd = padded_pair(xs, d)
        g = pad(dy, nd)
        if i == 0:
            return unbroadcast(g / x1, xs[0].shape)
        return unbroadcast(-g * x0 / (x1 * x1), xs[1].shape)

    def f_bmin(self, xs, a, d):
        nd = len(d.d)
        return self.xp.minimum(pad(xs[0], nd), pad(xs[1], nd)).reshape(d.shape)

    def b_bmin(self, xs, y, dy, a, d, i):
        x0, x1, nd = padded_pair(xs, d)
        first = x0 <= x1  # a tie goes to the first operand
        return unbroadcast(pad(dy, nd) * (first if i == 0 else ~first), xs[i].shape)

    def f_bmax(self, xs, a, d):
        nd = len(d.d)
        return self.xp.maximum(pad(xs[0], nd), pad(xs[1], nd)).reshape(d.shape)

    def b_bmax(self, xs, y, dy, a, d, i):
        x0, x1, nd = padded_pair(xs, d)
        first = x0 >= x1
        return unbroadcast(pad(dy, nd) * (first if i == 0 else ~first), xs[i].shape)

    # ---------------------------------------------------------------- with a number
    def f_negate(self, xs, a, d):
        return -xs[0]

    def b_negate(self, xs, y, dy, a, d, i):
        return -dy

    def f_plus_const(self, xs, a, d):
        return xs[0] + F32(a.c)

    def b_plus_const(self, xs, y, dy, a, d, i):
        return dy

    def f_const_minus(self, xs, a, d):
        return self.xp.subtract(F32(a.c), xs[0])

    def b_const_minus(self, xs, y, dy, a, d, i):
        return -dy

    def f_scalar_mult(self, xs, a, d):
        return xs[0] * F32(a.c)  # the array first: a NumPy scalar never has to take a CuPy array

    def b_scalar_mult(self, xs, y, dy, a, d, i):
        return dy * F32(a.c)

    # ---------------------------------------------------------------- matrix products: operands as (rows, cols, batch)
    def mm(self, A, B):
        """Batched (r, c, ba) @ (c, k, bb) -> (r, k, max(ba, bb)), batch 1 broadcasting."""
        xp = self.xp
        r, c, ba = A.shape
        _, k, bb = B.shape
        if ba == 1:
            return (A[:, :, 0] @ B.reshape(c, k * bb)).reshape(r, k, bb)
        out = xp.matmul(xp.moveaxis(A, -1, 0), xp.moveaxis(B, -1, 0))
        return xp.moveaxis(out, 0, -1)

    def mm_grads(self, A, B, G, i):
        """Gradient of A@B for operand i, given G shaped (r, k, batch)."""
        xp = self.xp
        if A.shape[-1] == 1 and B.shape[-1] == 1 and G.shape[-1] == 1:  # G batched inside a batched affine_transform
            if i == 0:
                return (G[:, :, 0] @ B[:, :, 0].T)[:, :, None]
            return (A[:, :, 0].T @ G[:, :, 0])[:, :, None]
        r, c, _ = A.shape
        k, nb = B.shape[1], G.shape[-1]
        if i == 0 and A.shape[-1] == 1:  # A shared by the batch: sum_b G_b B_b^T as one product, no (b, r, c) temporary
            Bb = xp.broadcast_to(B, (c, k, nb))
            return (G.reshape(r, k * nb) @ Bb.reshape(c, k * nb).T)[:, :, None]
        if i == 1 and B.shape[-1] == 1:  # B shared by the batch: sum_b A_b^T G_b as one product
            Ab = xp.broadcast_to(A, (r, c, nb)).transpose(1, 0, 2).reshape(c, r * nb)
            return (Ab @ G.transpose(0, 2, 1).reshape(r * nb, k))[:, :, None]
        if i == 1 and A.shape[-1] == 1:  # batched B under a shared A: A^T [G_1 ... G_b] as one product
            return (A[:, :, 0].T @ G.reshape(r, k * nb)).reshape(c, k, nb)
        if i == 0 and B.shape[-1] == 1:  # batched A under a shared B: [G_1; ...; G_b] B^T as one product
            g = G.transpose(0, 2, 1).reshape(r * nb, k) @ B[:, :, 0].T
            return g.reshape(r, nb, c).transpose(0, 2, 1)
        if i == 0:
            g = xp.matmul(xp.moveaxis(G, -1, 0), xp.moveaxis(B, -1, 0).transpose(0, 2, 1))  # (b, r, c)
            g = xp.moveaxis(g, 0, -1)
            return g.sum(axis=-1, keepdims=True) if A.shape[-1] == 1 and g.shape[-1] != 1 else g
        g = xp.matmul(xp.moveaxis(A, -1, 0).transpose(0, 2, 1), xp.moveaxis(G, -1, 0))  # (b, c, k)
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
        k = d.d[1] if len(d.d) > 1 else 1
        acc = None
        for j in range(1, len(xs), 2):
            p = self.mm(as3(xs[j]), as3(xs[j + 1]))
            acc = p if acc is None else acc + p
        b = xs[0]
        if acc is None:
            return b
        b3 = b.reshape(r, -1, b.shape[-1])  # a vector bias broadcasts over the k columns
        assert b3.shape[1] in (1, k)
        return (acc + b3).reshape(d.shape)

    def b_affine_transform(self, xs, y, dy, a, d, i):
        if len(xs) == 1:  # the bias alone (any number of dims) is copied through
            return dy
        if i == 0:
            b = xs[0]
            r = d.d[0]
            k = d.d[1] if len(d.d) > 1 else 1
            g = dy.reshape(r, k, dy.shape[-1])
            return unbroadcast(g, b.reshape(r, -1, b.shape[-1]).shape).reshape(b.shape)
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

    # ---------------------------------------------------------------- sums of lists, powers, norms
    def f_sum(self, xs, a, d):
        xp = self.xp
        rt = xp.result_type(*xs)
        if len(xs) > 4:  # one stacked reduction, not an array operation per term (an esum of a tree's losses
            # has hundreds; on a GPU each operation is a kernel launch)
            return xp.stack([xp.broadcast_to(as_out(x, d), d.shape) for x in xs]).sum(axis=0).astype(rt, copy=False)
        out = xp.zeros(d.shape, rt)
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
        xp = self.xp
        x, e = xs
        eb = batch_bc(e.reshape(1, -1), x.ndim - 1)
        if i == 0:
            return unbroadcast(dy * eb * xp.power(x, eb - 1), x.shape)
        g = (dy * y * xp.log(x)).reshape(-1, dy.shape[-1]).sum(axis=0, keepdims=True)
        return unbroadcast(g, (1, e.shape[-1])).reshape(e.shape)

    def f_dot_product(self, xs, a, d):
        return data_sum(xs[0] * xs[1])

    def b_dot_product(self, xs, y, dy, a, d, i):
        other = xs[1 - i]
        return unbroadcast(batch_bc(dy, other.ndim - 1) * other, xs[i].shape)

    def f_squared_norm(self, xs, a, d):
        return data_sum(xs[0] * xs[0])

    def b_squared_norm(self, xs, y, dy, a, d, i):
        return 2 * xs[0] * batch_bc(dy, xs[0].ndim - 1)

    def f_l2_norm(self, xs, a, d):
        return self.xp.sqrt(data_sum(xs[0] * xs[0]))

    def b_l2_norm(self, xs, y, dy, a, d, i):
        x = xs[0]
        return x * batch_bc(dy / y, x.ndim - 1)
