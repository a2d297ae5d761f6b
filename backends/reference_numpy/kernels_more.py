"""Reference kernels of the rest of DyNet's op set (issue 6), registered into the
``FWD``/``BWD`` tables of :mod:`kernels`.

Same contract as :mod:`kernels`: every tensor is shaped ``Dim.shape`` (data dims,
then the batch).  These kernels keep their inputs' dtype, so the tests can check
every gradient by central differences in float64 by calling them directly.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .kernels import BWD, FWD, _data_sum, _keep, _red_axes, _unary, _vec, bwd, fwd, pad, unbroadcast

# ------------------------------------------------------------------ helpers


def _sig(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid in the input's dtype (tanh form: no overflow)."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _grad_like(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    return g.reshape(x.shape).astype(x.dtype, copy=False)


# ------------------------------------------------------------------ trigonometric and hyperbolic

_unary("sin", lambda x, a: np.sin(x), lambda x, y, g, a: g * np.cos(x))
_unary("cos", lambda x, a: np.cos(x), lambda x, y, g, a: -g * np.sin(x))
_unary("tan", lambda x, a: np.tan(x), lambda x, y, g, a: g * (1 + y * y))
_unary("asin", lambda x, a: np.arcsin(x), lambda x, y, g, a: g / np.sqrt(1 - x * x))
_unary("acos", lambda x, a: np.arccos(x), lambda x, y, g, a: -g / np.sqrt(1 - x * x))
_unary("atan", lambda x, a: np.arctan(x), lambda x, y, g, a: g / (1 + x * x))
_unary("sinh", lambda x, a: np.sinh(x), lambda x, y, g, a: g * np.cosh(x))
_unary("cosh", lambda x, a: np.cosh(x), lambda x, y, g, a: g * np.sinh(x))
_unary("asinh", lambda x, a: np.arcsinh(x), lambda x, y, g, a: g / np.sqrt(x * x + 1))
_unary("acosh", lambda x, a: np.arccosh(x), lambda x, y, g, a: g / np.sqrt(x * x - 1))
_unary("atanh", lambda x, a: np.arctanh(x), lambda x, y, g, a: g / (1 - x * x))


def _silu_b(x, y, g, a):
    s = _sig(a[0] * x)
    return g * (s + a[0] * x * s * (1 - s))


_unary("silu", lambda x, a: x * _sig(a[0] * x), _silu_b)


# ------------------------------------------------------------------ rounding (zero or straight-through gradient)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's round(): halves go away from zero (NumPy's round goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _pass_or_zero(x, y, g, a):
    return g.copy() if a[0] else np.zeros_like(g)


_unary("round", lambda x, a: _round_half_away(x), _pass_or_zero)
_unary("ceil", lambda x, a: np.ceil(x), _pass_or_zero)
_unary("floor", lambda x, a: np.floor(x), _pass_or_zero)

_unary("to_device", lambda x, a: x.copy(), lambda x, y, g, a: g)


# ------------------------------------------------------------------ sparsemax family


def _sparsemax_tau(z: np.ndarray) -> float:
    """Threshold of the simplex projection of the vector z."""
    zs = np.sort(z)[::-1]
    cs = np.cumsum(zs)
    ks = np.arange(1, z.size + 1)
    k = int(np.count_nonzero(1 + ks * zs > cs))
    return (cs[k - 1] - 1) / k


def _all_nan_unless_finite(f):
    """A whole-vector op (sparsemax, its loss, constrained softmax) is NaN throughout when any
    input value is NaN or infinite: its threshold or normaliser is then undefined."""
    def kernel(xs, a, d):
        if not all(np.isfinite(x).all() for x in xs):
            return np.full(d.shape, np.nan, xs[0].dtype)
        return f(xs, a, d)
    return kernel


@fwd("sparsemax")
@_all_nan_unless_finite
def _sparsemax(xs, a, d):
    z = xs[0].reshape(-1)
    return np.maximum(z - _sparsemax_tau(z), 0).reshape(d.shape)


@bwd("sparsemax")
def _sparsemax_b(xs, y, dy, a, d, i):
    g = dy.reshape(-1)
    support = y.reshape(-1) > 0
    out = np.where(support, g - g[support].mean(), 0)
    return _grad_like(out, xs[0])


def _target_dist(n: int, support, dtype) -> np.ndarray:
    q = np.zeros(n, dtype)
    np.add.at(q, list(support), 1.0 / len(support))
    return q


@fwd("sparsemax_loss")
@_all_nan_unless_finite
def _sparsemax_loss(xs, a, d):
    z = xs[0].reshape(-1)
    tau = _sparsemax_tau(z)
    support = z - tau > 0
    q = list(a[0])
    loss = ((z[support] ** 2 - tau * tau).sum() + 1.0 / len(q)) / 2 - z[q].sum() / len(q)
    return np.full(d.shape, max(loss, 0.0), xs[0].dtype)


@bwd("sparsemax_loss")
def _sparsemax_loss_b(xs, y, dy, a, d, i):
    z = xs[0].reshape(-1)
    p = np.maximum(z - _sparsemax_tau(z), 0)
    return _grad_like(dy.reshape(-1)[0] * (p - _target_dist(z.size, a[0], z.dtype)), xs[0])


def _csoftmax(z: np.ndarray, u: np.ndarray):
    """Softmax of z capped by u (DyNet's active-set loop): (p, active mask, capped mass)."""
    q = np.exp(z - z.max())
    p = np.empty_like(z)
    active = np.ones(z.size, bool)
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


@fwd("constrained_softmax")
@_all_nan_unless_finite
def _csm(xs, a, d):
    p, _, _ = _csoftmax(xs[0].reshape(-1), xs[1].reshape(-1))
    return p.reshape(d.shape)


@bwd("constrained_softmax")
def _csm_b(xs, y, dy, a, d, i):
    p, active, mass = _csoftmax(xs[0].reshape(-1), xs[1].reshape(-1))
    g = dy.reshape(-1)
    dhat = (p[active] * g[active]).sum() / (1 - mass) if active.any() else 0.0
    if i == 0:
        out = np.where(active, p * (g - dhat), 0)
    else:
        out = np.where(active, 0, g - dhat)
    return _grad_like(out, xs[i])


# ------------------------------------------------------------------ selection along a dimension


def _slices(x_shape, a):
    strides, lo, hi = a
    sl = [slice(None)] * len(x_shape)
    nd = len(x_shape) - 1
    for k in range(max(len(strides), len(lo), len(hi))):
        ax = k if k < nd else nd
        start = lo[k] if k < len(lo) else 0
        stop = hi[k] if k < len(hi) else x_shape[ax]
        step = strides[k] if k < len(strides) else 1
        sl[ax] = slice(start, stop, step)
    return tuple(sl)


@fwd("strided_select")
def _strided(xs, a, d):
    return np.ascontiguousarray(xs[0][_slices(xs[0].shape, a)]).reshape(d.shape)


@bwd("strided_select")
def _strided_b(xs, y, dy, a, d, i):
    g = np.zeros_like(xs[0])
    g[_slices(g.shape, a)] = dy.reshape(g[_slices(g.shape, a)].shape)
    return g


def _extreme_dim(pick_arg):
    def f(xs, a, d):
        x = xs[0]
        idx = pick_arg(x, axis=a[0], keepdims=True)
        return np.take_along_axis(x, idx, axis=a[0]).reshape(d.shape)

    def b(xs, y, dy, a, d, i):
        x = xs[0]
        g = np.zeros_like(x)
        idx = pick_arg(x, axis=a[0], keepdims=True)
        np.put_along_axis(g, idx, dy.reshape(idx.shape), axis=a[0])
        return g

    return f, b


FWD["max_dim"], BWD["max_dim"] = _extreme_dim(np.argmax)
FWD["min_dim"], BWD["min_dim"] = _extreme_dim(np.argmin)


@fwd("cumsum")
def _cumsum(xs, a, d):
    return np.cumsum(xs[0], axis=a[0])


@bwd("cumsum")
def _cumsum_b(xs, y, dy, a, d, i):
    ax = a[0]
    return np.flip(np.cumsum(np.flip(dy, ax), axis=ax), ax)


def _kmax_positions(x: np.ndarray, k: int, ax: int) -> np.ndarray:
    """Positions of the k largest entries along ax, in their original order (ties: earliest first)."""
    # NaN counts as the largest value (as in np.sort and torch.topk), so a NaN input is pooled
    order = np.argsort(np.where(np.isnan(x), -np.inf, -x), axis=ax, kind="stable")
    top = np.take(order, np.arange(k), axis=ax)
    return np.sort(top, axis=ax)


@fwd("kmax_pooling")
def _kmax(xs, a, d):
    k, ax = a
    return np.take_along_axis(xs[0], _kmax_positions(xs[0], k, ax), axis=ax)


@bwd("kmax_pooling")
def _kmax_b(xs, y, dy, a, d, i):
    k, ax = a
    g = np.zeros_like(xs[0])
    np.put_along_axis(g, _kmax_positions(xs[0], k, ax), dy, axis=ax)
    return g


# ------------------------------------------------------------------ reductions


def _std_parts(x, a):
    axes = _red_axes(x, a)
    n = float(a[2]) if a[2] > 0 else float(np.prod([x.shape[k] for k in axes]))
    mean = x.sum(axis=axes, keepdims=True) / n
    dev = x - mean
    return axes, n, dev


@fwd("std_dim")
def _std_dim(xs, a, d):
    axes, n, dev = _std_parts(xs[0], a)
    return np.sqrt((dev * dev).sum(axis=axes) / n).reshape(d.shape)


@bwd("std_dim")
def _std_dim_b(xs, y, dy, a, d, i):
    x = xs[0]
    axes, n, dev = _std_parts(x, a)
    ks = _keep(x.shape, axes)
    # exact for any divisor n (the dev terms sum to 0 when n is the element count); where the std
    # is 0 every deviation is 0 and the gradient is taken as 0 (DyNet divides 0 by 0 there)
    centred = dev - dev.sum(axis=axes, keepdims=True) / n
    yk, gk = y.reshape(ks), dy.reshape(ks)
    return centred * np.divide(gk, n * yk, out=np.zeros_like(gk), where=yk > 0)


# ------------------------------------------------------------------ losses


def _hinge_dim_parts(x, a):
    """Per-element losses of hinge_dim, with the scored dimension first: (el, gold index array)."""
    idx, d, m = a
    xm = pad(x, 2)
    if d == 1:
        xm = xm.transpose(1, 0, 2)
    bd = xm.shape[-1]
    gold = np.array([idx[b if len(idx) > 1 else 0] for b in range(bd)], dtype=np.intp).T  # (cols, bd)
    cols = np.arange(xm.shape[1])[:, None]
    bats = np.arange(bd)[None, :]
    gold_val = xm[gold, cols, bats]  # (cols, bd)
    el = np.maximum(0, xm - gold_val[None] + m)
    el[gold, cols, bats] = 0
    return el, gold, cols, bats


@fwd("hinge_dim")
def _hinge_dim(xs, a, d):
    el, *_ = _hinge_dim_parts(xs[0], a)
    return el.sum(axis=0).reshape(d.shape)


@bwd("hinge_dim")
def _hinge_dim_b(xs, y, dy, a, d, i):
    el, gold, cols, bats = _hinge_dim_parts(xs[0], a)
    g2 = dy.reshape(1, -1, dy.shape[-1])
    active = (el > 0).astype(xs[0].dtype)
    g = active * g2
    g[gold, cols, bats] -= active.sum(axis=0) * g2[0]
    if a[1] == 1:
        g = g.transpose(1, 0, 2)
    return g.reshape(xs[0].shape)


@fwd("pairwise_rank_loss")
def _prl(xs, a, d):
    x0, x1 = pad(xs[0], len(d.d)), pad(xs[1], len(d.d))
    return np.maximum(0, a[0] - x0 + x1).reshape(d.shape)


@bwd("pairwise_rank_loss")
def _prl_b(xs, y, dy, a, d, i):
    g = dy * (y > 0)
    return unbroadcast(-g if i == 0 else g, xs[i].shape)


@fwd("poisson_loss")
def _poisson(xs, a, d):
    x = xs[0]
    k = float(a[0])
    return np.exp(x) + math.lgamma(k + 1) - x * k


@bwd("poisson_loss")
def _poisson_b(xs, y, dy, a, d, i):
    return dy * (np.exp(xs[0]) - float(a[0]))


# ------------------------------------------------------------------ linear algebra


def _square(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    return x.reshape(n, n)


@fwd("inverse")
def _inverse(xs, a, d):
    return np.linalg.inv(_square(xs[0])).reshape(d.shape)


@bwd("inverse")
def _inverse_b(xs, y, dy, a, d, i):
    yi = _square(y)
    return _grad_like(-yi.T @ _square(dy) @ yi.T, xs[0])


@fwd("logdet")
def _logdet(xs, a, d):
    sign, logabs = np.linalg.slogdet(_square(xs[0]))
    return np.full(d.shape, logabs if sign > 0 else np.nan, xs[0].dtype)


@bwd("logdet")
def _logdet_b(xs, y, dy, a, d, i):
    return _grad_like(dy.reshape(-1)[0] * np.linalg.inv(_square(xs[0])).T, xs[0])


@fwd("trace_of_product")
def _trace_prod(xs, a, d):
    return _data_sum(xs[0] * xs[1])


@bwd("trace_of_product")
def _trace_prod_b(xs, y, dy, a, d, i):
    return xs[1 - i] * dy.reshape(-1)[0]


def _bc_batch(x: np.ndarray, bd: int) -> np.ndarray:
    return np.broadcast_to(x, x.shape[:-1] + (bd,)) if x.shape[-1] != bd else x


@fwd("contract3d_1d")
def _c3d1(xs, a, d):
    A = _bc_batch(xs[0], d.bd)
    b = _bc_batch(_vec(xs[1]), d.bd)
    return np.einsum("ijkb,kb->ijb", A, b).reshape(d.shape)


@bwd("contract3d_1d")
def _c3d1_b(xs, y, dy, a, d, i):
    A = _bc_batch(xs[0], d.bd)
    b = _bc_batch(_vec(xs[1]), d.bd)
    g = dy.reshape(A.shape[0], A.shape[1], d.bd)
    if i == 0:
        return unbroadcast(np.einsum("ijb,kb->ijkb", g, b), xs[0].shape)
    return unbroadcast(np.einsum("ijb,ijkb->kb", g, A), _vec(xs[1]).shape).reshape(xs[1].shape)


@fwd("contract3d_1d_1d")
def _c3d11(xs, a, d):
    A = xs[0][..., 0]
    return np.einsum("ijk,k,j->i", A, _vec(xs[1])[:, 0], _vec(xs[2])[:, 0]).reshape(d.shape)


@bwd("contract3d_1d_1d")
def _c3d11_b(xs, y, dy, a, d, i):
    A = xs[0][..., 0]
    b, c, g = _vec(xs[1])[:, 0], _vec(xs[2])[:, 0], dy.reshape(-1)
    if i == 0:
        out = np.einsum("i,j,k->ijk", g, c, b)
    elif i == 1:
        out = np.einsum("ijk,j,i->k", A, c, g)
    else:
        out = np.einsum("ijk,k,i->j", A, b, g)
    return _grad_like(out, xs[i])


def _shift_matrix(v: np.ndarray, sign: int) -> np.ndarray:
    """M[k, i] = v[(k + sign * i) mod n]."""
    n = v.size
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return v[(k + sign * i) % n]


@fwd("circ_conv")
def _circ_conv(xs, a, d):
    u, v = xs[0].reshape(-1), xs[1].reshape(-1)
    return (_shift_matrix(v, -1) @ u).reshape(d.shape)


@bwd("circ_conv")
def _circ_conv_b(xs, y, dy, a, d, i):
    other = xs[1 - i].reshape(-1)
    return _grad_like(_shift_matrix(other, -1).T @ dy.reshape(-1), xs[i])


@fwd("circ_corr")
def _circ_corr(xs, a, d):
    u, v = xs[0].reshape(-1), xs[1].reshape(-1)
    return (_shift_matrix(v, 1) @ u).reshape(d.shape)


@bwd("circ_corr")
def _circ_corr_b(xs, y, dy, a, d, i):
    u, v, g = xs[0].reshape(-1), xs[1].reshape(-1), dy.reshape(-1)
    if i == 0:
        return _grad_like(_shift_matrix(v, 1).T @ g, xs[0])
    # y_k = sum_j v_j u_{(j - k) mod n}
    n = u.size
    P = u[(np.arange(n)[None, :] - np.arange(n)[:, None]) % n]
    return _grad_like(P.T @ g, xs[1])


# ------------------------------------------------------------------ convolution and pooling


def _same_pad(n: int, k: int, s: int, out: int) -> tuple[int, int]:
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _conv_geometry(x_shape, k, stride, is_valid, out_hw):
    """Padding (top, bottom), (left, right) of a VALID or SAME (TensorFlow) window."""
    if is_valid:
        return (0, 0), (0, 0)
    return (_same_pad(x_shape[0], k[0], stride[0], out_hw[0]), _same_pad(x_shape[1], k[1], stride[1], out_hw[1]))


def _windows(xp: np.ndarray, k, stride, out_hw) -> np.ndarray:
    """(H', W', ..., kh, kw) view of the strided windows of a padded (H, W, ...) array."""
    w = sliding_window_view(xp, tuple(k), axis=(0, 1))
    return w[: (out_hw[0] - 1) * stride[0] + 1: stride[0], : (out_hw[1] - 1) * stride[1] + 1: stride[1]]


def _pad_hw(x: np.ndarray, ph, pw, value=0.0) -> np.ndarray:
    widths = [ph, pw] + [(0, 0)] * (x.ndim - 2)
    return np.pad(x, widths, constant_values=value)


@fwd("conv2d")
def _conv2d(xs, a, d):
    x, f = xs
    stride, is_valid = a
    kh, kw = f.shape[0], f.shape[1]
    ph, pw = _conv_geometry(x.shape, (kh, kw), stride, is_valid, d.d[:2])
    w = _windows(_pad_hw(x, ph, pw), (kh, kw), stride, d.d[:2])  # (H', W', Ci, B, kh, kw)
    return np.einsum("ijcbrs,rsco->ijob", w, f[..., 0], optimize=True).reshape(d.shape)


@bwd("conv2d")
def _conv2d_b(xs, y, dy, a, d, i):
    x, f = xs
    stride, is_valid = a
    kh, kw = f.shape[0], f.shape[1]
    ho, wo = d.d[0], d.d[1]
    ph, pw = _conv_geometry(x.shape, (kh, kw), stride, is_valid, (ho, wo))
    xp = _pad_hw(x, ph, pw)
    sh, sw = stride
    if i == 1:
        w = _windows(xp, (kh, kw), stride, (ho, wo))
        return np.einsum("ijcbrs,ijob->rsco", w, dy, optimize=True)[..., None].astype(f.dtype, copy=False)
    gp = np.zeros_like(xp)
    for r in range(kh):
        for c in range(kw):
            contrib = np.einsum("ijob,co->ijcb", dy, f[r, c, :, :, 0], optimize=True)
            gp[r: r + (ho - 1) * sh + 1: sh, c: c + (wo - 1) * sw + 1: sw] += contrib
    return gp[ph[0]: ph[0] + x.shape[0], pw[0]: pw[0] + x.shape[1]]


def _pool_argmax(x, a, d):
    """Padded windows of maxpooling2d and the flat (row-major) argmax inside each window."""
    ksize, stride, is_valid = a
    ph, pw = _conv_geometry(x.shape, ksize, stride, is_valid, d.d[:2])
    xp = _pad_hw(pad(x, 3), ph, pw, -np.inf)
    w = _windows(xp, ksize, stride, d.d[:2])  # (H', W', C, B, kh, kw)
    flat = w.reshape(w.shape[:4] + (-1,))
    return xp, ph, pw, flat, flat.argmax(axis=-1)


@fwd("maxpooling2d")
def _maxpool(xs, a, d):
    _, _, _, flat, arg = _pool_argmax(xs[0], a, d)
    return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0].reshape(d.shape)


@bwd("maxpooling2d")
def _maxpool_b(xs, y, dy, a, d, i):
    x = xs[0]
    ksize, stride, _ = a
    xp, ph, pw, _, arg = _pool_argmax(x, a, d)
    ho, wo, ch, bd = arg.shape
    ii, jj, cc, bb = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(ch), np.arange(bd), indexing="ij")
    rows = ii * stride[0] + arg // ksize[1]
    cols = jj * stride[1] + arg % ksize[1]
    gp = np.zeros(xp.shape, x.dtype)
    np.add.at(gp, (rows, cols, cc, bb), dy.reshape(arg.shape))
    return gp[ph[0]: ph[0] + x.shape[0], pw[0]: pw[0] + x.shape[1]].reshape(x.shape)


def _filters(f: np.ndarray) -> np.ndarray:
    """Filters of filter1d_narrow as (rows, width, n_filters)."""
    return f[..., 0] if f.ndim == 4 else f[..., 0][..., None]


@fwd("filter1d_narrow")
def _f1d(xs, a, d):
    x, f = xs[0][..., 0], _filters(xs[1])
    w = sliding_window_view(x, f.shape[1], axis=1)  # (rows, ocols, width)
    return np.einsum("rjk,rkf->fj", w, f).reshape(d.shape)


@bwd("filter1d_narrow")
def _f1d_b(xs, y, dy, a, d, i):
    x, f = xs[0][..., 0], _filters(xs[1])
    g = dy.reshape(f.shape[2], -1)  # (n_filters, ocols)
    if i == 1:
        w = sliding_window_view(x, f.shape[1], axis=1)
        return _grad_like(np.einsum("rjk,fj->rkf", w, g), xs[1])
    gx = np.zeros_like(x)
    for k in range(f.shape[1]):
        gx[:, k: k + g.shape[1]] += np.einsum("rf,fj->rj", f[:, k, :], g)
    return gx[..., None]


@fwd("fold_rows")
def _fold_rows(xs, a, d):
    x = pad(xs[0], 2)
    n = a[0]
    return x.reshape(x.shape[0] // n, n, x.shape[1], 1).sum(axis=1).reshape(d.shape)


@bwd("fold_rows")
def _fold_rows_b(xs, y, dy, a, d, i):
    g = pad(dy, 2)
    return np.repeat(g, a[0], axis=0).reshape(xs[0].shape)


@fwd("kmh_ngram")
def _kmh(xs, a, d):
    x = xs[0]
    n = a[0]
    return sliding_window_view(x, n, axis=1).sum(axis=-1)


@bwd("kmh_ngram")
def _kmh_b(xs, y, dy, a, d, i):
    g = np.zeros_like(xs[0])
    for k in range(a[0]):
        g[:, k: k + dy.shape[1]] += dy
    return g


# ------------------------------------------------------------------ normalisation


@fwd("weight_norm")
def _wnorm(xs, a, d):
    w, g = xs
    return w * (g.reshape(-1)[0] / np.sqrt((w * w).sum()))


@bwd("weight_norm")
def _wnorm_b(xs, y, dy, a, d, i):
    w, g = xs
    sq = (w * w).sum()
    proj = (dy * w).sum()
    if i == 0:
        return dy * (g.reshape(-1)[0] / np.sqrt(sq)) - y * (proj / sq)
    return np.full(g.shape, proj / np.sqrt(sq), g.dtype)


# ------------------------------------------------------------------ fused LSTM pieces (gate order i, f, o, g)

FORGET_GATE_BIAS = 1.0  # DyNet's VanillaLSTMGates adds 1 to the forget gate's pre-activation


def _lstm_inputs(xs, dropout: bool):
    x, h, Wx, Wh, b = xs[:5]
    xm, hm = _vec(x), _vec(h)
    if dropout:
        xm = xm * _vec(xs[5])
        hm = hm * _vec(xs[6])
    return xm, hm, Wx[..., 0], Wh[..., 0], _vec(b)


def _lstm_gates(xs, dropout: bool):
    xm, hm, Wx, Wh, b = _lstm_inputs(xs, dropout)
    pre = Wx @ xm + Wh @ hm + b
    n = pre.shape[0] // 4
    pre[n: 2 * n] += FORGET_GATE_BIAS
    out = np.empty_like(pre)
    out[: 3 * n] = _sig(pre[: 3 * n])
    out[3 * n:] = np.tanh(pre[3 * n:])
    return out


def _lstm_gates_b(xs, y, dy, i, dropout: bool):
    xm, hm, Wx, Wh, b = _lstm_inputs(xs, dropout)
    n = y.shape[0] // 4
    yv, gv = _vec(y), _vec(dy)
    r = np.empty_like(gv)
    r[: 3 * n] = gv[: 3 * n] * yv[: 3 * n] * (1 - yv[: 3 * n])
    r[3 * n:] = gv[3 * n:] * (1 - yv[3 * n:] ** 2)
    if i == 0 or i == 5:
        back = Wx.T @ r
        if i == 0:
            if dropout:
                back = back * _vec(xs[5])
            return unbroadcast(back, _vec(xs[0]).shape).reshape(xs[0].shape)
        return unbroadcast(back * _vec(xs[0]), _vec(xs[5]).shape).reshape(xs[5].shape)
    if i == 1 or i == 6:
        back = Wh.T @ r
        if i == 1:
            if dropout:
                back = back * _vec(xs[6])
            return unbroadcast(back, _vec(xs[1]).shape).reshape(xs[1].shape)
        return unbroadcast(back * _vec(xs[1]), _vec(xs[6]).shape).reshape(xs[6].shape)
    if i == 2:
        return (r @ np.broadcast_to(xm, (xm.shape[0], r.shape[1])).T).reshape(xs[2].shape)
    if i == 3:
        return (r @ np.broadcast_to(hm, (hm.shape[0], r.shape[1])).T).reshape(xs[3].shape)
    return r.sum(axis=1).reshape(xs[4].shape)


FWD["vanilla_lstm_gates"] = lambda xs, a, d: _lstm_gates(xs, False).reshape(d.shape)
BWD["vanilla_lstm_gates"] = lambda xs, y, dy, a, d, i: _lstm_gates_b(xs, y, dy, i, False)
FWD["vanilla_lstm_gates_dropout"] = lambda xs, a, d: _lstm_gates(xs, True).reshape(d.shape)
BWD["vanilla_lstm_gates_dropout"] = lambda xs, y, dy, a, d, i: _lstm_gates_b(xs, y, dy, i, True)


def _split4(g: np.ndarray):
    n = g.shape[0] // 4
    return g[:n], g[n: 2 * n], g[2 * n: 3 * n], g[3 * n:]


@fwd("vanilla_lstm_c")
def _lstm_c(xs, a, d):
    c, gates = xs
    i_, f_, _, g_ = _split4(gates)
    return (i_ * g_ + f_ * c).reshape(d.shape)


@bwd("vanilla_lstm_c")
def _lstm_c_b(xs, y, dy, a, d, i):
    c, gates = xs
    i_, f_, _, g_ = _split4(gates)
    if i == 0:
        return unbroadcast(dy * f_, c.shape)
    cb = np.broadcast_to(c, dy.shape)
    out = np.concatenate([dy * g_, dy * cb, np.zeros_like(dy), dy * i_], axis=0)
    return unbroadcast(out, gates.shape)


@fwd("vanilla_lstm_h")
def _lstm_h(xs, a, d):
    c, gates = xs
    return (_split4(gates)[2] * np.tanh(c)).reshape(d.shape)


@bwd("vanilla_lstm_h")
def _lstm_h_b(xs, y, dy, a, d, i):
    c, gates = xs
    o = _split4(gates)[2]
    t = np.tanh(c)
    if i == 0:
        return unbroadcast(dy * o * (1 - t * t), c.shape)
    z = np.zeros_like(dy)
    return unbroadcast(np.concatenate([z, z, dy * t, z], axis=0), gates.shape)

