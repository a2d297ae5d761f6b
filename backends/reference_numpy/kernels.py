"""Reference kernels: the executable specification of every op, in plain NumPy.

Every tensor is an ndarray shaped ``Dim.shape`` (data dims, then the batch).
``fwd_<op>(xs, attrs, dim)`` returns the output; ``bwd_<op>(xs, y, dy, attrs,
dim, i)`` returns the gradient of input ``i`` in that input's shape.  Written for
clarity first: the conformance suite compares every other backend to these.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
FLT_MIN = float(np.finfo(np.float32).tiny)
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

FWD: dict = {}
BWD: dict = {}


def fwd(name):
    def deco(f):
        FWD[name] = f
        return f

    return deco


def bwd(name):
    def deco(f):
        BWD[name] = f
        return f

    return deco


# ------------------------------------------------------------------ helpers


def pad(x: np.ndarray, nd: int) -> np.ndarray:
    """View x (data dims + batch) with ``nd`` data dims, padding size-1 dims before the batch."""
    have = x.ndim - 1
    if have == nd:
        return x
    if have > nd:
        return x.reshape(x.shape[:nd] + (-1,)) if all(s == 1 for s in x.shape[nd:-1]) else x
    return x.reshape(x.shape[:-1] + (1,) * (nd - have) + x.shape[-1:])


def _vec(x: np.ndarray) -> np.ndarray:
    """A vector-like tensor (n, 1, ..., 1, B) viewed as (n, B)."""
    return x.reshape(x.shape[0], -1)


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` over the axes that were broadcast from ``shape`` and give it that shape."""
    if g.shape == shape:
        return g
    nd = g.ndim - 1
    have = len(shape) - 1
    if nd < have:  # the target keeps trailing size-1 dims the output dropped ({3,1} against {3})
        g, nd = pad(g, have), have
    padded = shape[:-1] + (1,) * (nd - have) + shape[-1:]
    axes = tuple(k for k in range(g.ndim) if padded[k] == 1 and g.shape[k] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def batch_bc(v: np.ndarray, nd: int) -> np.ndarray:
    """A per-batch scalar (shape (1, B)) viewed to broadcast over ``nd`` data dims."""
    return v.reshape((1,) * nd + v.shape[-1:])


def _f(a) -> np.ndarray:
    return np.asarray(a, dtype=F32)


# ------------------------------------------------------------------ leaves


@fwd("input")
def _input(xs, a, d):
    return a[0]


@fwd("constant")
def _constant(xs, a, d):
    return np.full(d.shape, a[0], F32)


class Random:
    """The backend's generator, reseeded by ``Backend.seed``."""

    rng = np.random.default_rng()


@fwd("random_normal")
def _rnormal(xs, a, d):
    return _f(Random.rng.normal(a[0], a[1], d.shape))


@fwd("random_bernoulli")
def _rbern(xs, a, d):
    return _f((Random.rng.random(d.shape) < a[0]) * a[1])


@fwd("random_uniform")
def _runif(xs, a, d):
    return _f(Random.rng.uniform(a[0], a[1], d.shape))


@fwd("random_gumbel")
def _rgumbel(xs, a, d):
    u = Random.rng.random(d.shape)
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return _f(a[0] - a[1] * np.log(-np.log(u)))


@fwd("parameter")
def _param(xs, a, d):  # the weights: the stored values times the collection's weight-decay factor
    f = a[0].wscale.factor
    return a[0].value if f == 1.0 else a[0].value * f


@fwd("lookup")
def _lookup(xs, a, d):
    rows, f = a[0].value[..., list(a[1])], a[0].wscale.factor
    return rows if f == 1.0 else rows * f


# ------------------------------------------------------------------ arithmetic


def _bin_fwd(f):
    def k(xs, a, d):
        nd = len(d.d)
        return f(pad(xs[0], nd), pad(xs[1], nd)).reshape(d.shape)

    return k


FWD["add"] = _bin_fwd(np.add)
FWD["cmult"] = _bin_fwd(np.multiply)
FWD["cdiv"] = _bin_fwd(np.divide)
FWD["bmin"] = _bin_fwd(np.minimum)
FWD["bmax"] = _bin_fwd(np.maximum)


def _padded_pair(xs, d):
    nd = len(d.d)
    return pad(xs[0], nd), pad(xs[1], nd), nd


@bwd("add")
def _add_b(xs, y, dy, a, d, i):
    return unbroadcast(pad(dy, max(xs[i].ndim - 1, dy.ndim - 1)), xs[i].shape)


@bwd("cmult")
def _cmult_b(xs, y, dy, a, d, i):
    x0, x1, nd = _padded_pair(xs, d)
    other = x1 if i == 0 else x0
    return unbroadcast(dy.reshape(pad(dy, nd).shape) * other, xs[i].shape)


@bwd("cdiv")
def _cdiv_b(xs, y, dy, a, d, i):
    x0, x1, nd = _padded_pair(xs, d)
    g = pad(dy, nd)
    if i == 0:
        return unbroadcast(g / x1, xs[0].shape)
    return unbroadcast(-g * x0 / (x1 * x1), xs[1].shape)


def _minmax_b(first_wins):
    def k(xs, y, dy, a, d, i):
        x0, x1, nd = _padded_pair(xs, d)
        m0 = first_wins(x0, x1)
        mask = m0 if i == 0 else ~m0
        return unbroadcast(pad(dy, nd) * mask, xs[i].shape)

    return k


BWD["bmin"] = _minmax_b(lambda a, b: a <= b)
BWD["bmax"] = _minmax_b(lambda a, b: a >= b)


@fwd("negate")
def _neg(xs, a, d):
    return -xs[0]


@bwd("negate")
def _neg_b(xs, y, dy, a, d, i):
    return -dy


@fwd("plus_const")
def _pc(xs, a, d):
    return xs[0] + F32(a[0])


@bwd("plus_const")
def _pc_b(xs, y, dy, a, d, i):
    return dy


@fwd("const_minus")
def _cm(xs, a, d):
    return F32(a[0]) - xs[0]


@bwd("const_minus")
def _cm_b(xs, y, dy, a, d, i):
    return -dy


@fwd("scalar_mult")
def _sm(xs, a, d):
    return xs[0] * F32(a[0])


@bwd("scalar_mult")
def _sm_b(xs, y, dy, a, d, i):
    return dy * F32(a[0])


# matrix products: every operand viewed as (rows, cols, batch)


def _as3(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, x.shape[1])
    return x


def _mm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Batched (r, c, ba) @ (c, k, bb) -> (r, k, max(ba, bb)), batch 1 broadcasting."""
    r, c, ba = A.shape
    _, k, bb = B.shape
    if ba == 1:
        return (A[:, :, 0] @ B.reshape(c, k * bb)).reshape(r, k, bb)
    out = np.matmul(np.moveaxis(A, -1, 0), np.moveaxis(B, -1, 0))
    return np.moveaxis(out, 0, -1)


def _mm_grads(A, B, G, i):
    """Gradient of A@B for operand i, given G shaped (r, k, batch)."""
    if A.shape[-1] == 1 and B.shape[-1] == 1 and G.shape[-1] == 1:  # G is batched inside a batched affine_transform
        if i == 0:
            return (G[:, :, 0] @ B[:, :, 0].T)[:, :, None]
        return (A[:, :, 0].T @ G[:, :, 0])[:, :, None]
    r, c, _ = A.shape
    k, nb = B.shape[1], G.shape[-1]
    if i == 0 and A.shape[-1] == 1:  # A shared by the batch: sum_b G_b B_b^T as one product, no (b, r, c) temporary
        Bb = np.broadcast_to(B, (c, k, nb))
        return (G.reshape(r, k * nb) @ Bb.reshape(c, k * nb).T)[:, :, None]
    if i == 1 and B.shape[-1] == 1:  # B shared by the batch: sum_b A_b^T G_b as one product
        Ab = np.broadcast_to(A, (r, c, nb)).transpose(1, 0, 2).reshape(c, r * nb)
        return (Ab @ G.transpose(0, 2, 1).reshape(r * nb, k))[:, :, None]
    if i == 1 and A.shape[-1] == 1:  # batched B under a shared A: A^T [G_1 ... G_b] as one product
        return (A[:, :, 0].T @ G.reshape(r, k * nb)).reshape(c, k, nb)
    if i == 0 and B.shape[-1] == 1:  # batched A under a shared B: [G_1; ...; G_b] B^T as one product
        g = G.transpose(0, 2, 1).reshape(r * nb, k) @ B[:, :, 0].T
        return g.reshape(r, nb, c).transpose(0, 2, 1)
    if i == 0:
        g = np.matmul(np.moveaxis(G, -1, 0), np.moveaxis(B, -1, 0).transpose(0, 2, 1))  # (b, r, c)
        g = np.moveaxis(g, 0, -1)
        return g.sum(axis=-1, keepdims=True) if A.shape[-1] == 1 and g.shape[-1] != 1 else g
    g = np.matmul(np.moveaxis(A, -1, 0).transpose(0, 2, 1), np.moveaxis(G, -1, 0))  # (b, c, k)
    g = np.moveaxis(g, 0, -1)
    return g.sum(axis=-1, keepdims=True) if B.shape[-1] == 1 and g.shape[-1] != 1 else g


@fwd("matmul")
def _matmul(xs, a, d):
    return _mm(_as3(xs[0]), _as3(xs[1])).reshape(d.shape)


@bwd("matmul")
def _matmul_b(xs, y, dy, a, d, i):
    A, B = _as3(xs[0]), _as3(xs[1])
    G = dy.reshape(A.shape[0], B.shape[1], dy.shape[-1])
    return _mm_grads(A, B, G, i).reshape(xs[i].shape)


@fwd("affine_transform")
def _affine(xs, a, d):
    r = d.d[0]
    k = d.d[1] if len(d.d) > 1 else 1
    acc = None
    for j in range(1, len(xs), 2):
        p = _mm(_as3(xs[j]), _as3(xs[j + 1]))
        acc = p if acc is None else acc + p
    b = xs[0]
    if acc is None:
        return b
    b3 = b.reshape(r, -1, b.shape[-1])  # a vector bias broadcasts over the k columns
    assert b3.shape[1] in (1, k)
    return (acc + b3).reshape(d.shape)


@bwd("affine_transform")
def _affine_b(xs, y, dy, a, d, i):
    if len(xs) == 1:  # the bias alone (any number of dims) is copied through
        return dy
    if i == 0:
        b = xs[0]
        r = d.d[0]
        k = d.d[1] if len(d.d) > 1 else 1
        g = dy.reshape(r, k, dy.shape[-1])
        b3 = b.reshape(r, -1, b.shape[-1])
        return unbroadcast(g, b3.shape).reshape(b.shape)
    j = i if i % 2 == 1 else i - 1
    A, B = _as3(xs[j]), _as3(xs[j + 1])
    G = dy.reshape(A.shape[0], B.shape[1], dy.shape[-1])
    return _mm_grads(A, B, G, 0 if i == j else 1).reshape(xs[i].shape)


@fwd("colwise_add")
def _colwise(xs, a, d):
    x, b = xs
    return (pad(x, 2) + b.reshape(b.shape[0], 1, b.shape[-1])).reshape(d.shape)


@bwd("colwise_add")
def _colwise_b(xs, y, dy, a, d, i):
    g = pad(dy, 2)
    if i == 0:
        return unbroadcast(g, pad(xs[0], 2).shape).reshape(xs[0].shape)
    b = xs[1]
    return unbroadcast(g, (b.shape[0], 1, b.shape[-1])).reshape(b.shape)


def _as_out(x, d):
    """An operand of esum / logsumexp in the output's data dims (they may differ from x's by
    trailing 1s), keeping its own batch."""
    return x.reshape(d.shape[:-1] + x.shape[-1:])


@fwd("sum")
def _sum(xs, a, d):
    out = np.zeros(d.shape, np.result_type(*xs))
    for x in xs:
        out = out + _as_out(x, d)
    return out


@bwd("sum")
def _sum_b(xs, y, dy, a, d, i):
    return unbroadcast(dy, _as_out(xs[i], d).shape).reshape(xs[i].shape)


@fwd("average")
def _avg(xs, a, d):
    return _sum(xs, a, d) / F32(len(xs))


@bwd("average")
def _avg_b(xs, y, dy, a, d, i):
    return unbroadcast(dy / F32(len(xs)), xs[i].shape)


@fwd("pow")
def _pow(xs, a, d):
    x, e = xs
    return np.power(x, batch_bc(e.reshape(1, -1), x.ndim - 1)).reshape(d.shape)


@bwd("pow")
def _pow_b(xs, y, dy, a, d, i):
    x, e = xs
    eb = batch_bc(e.reshape(1, -1), x.ndim - 1)
    if i == 0:
        return unbroadcast(dy * eb * np.power(x, eb - 1), x.shape)
    g = (dy * y * np.log(x)).reshape(-1, dy.shape[-1]).sum(axis=0, keepdims=True)
    return unbroadcast(g, (1, e.shape[-1])).reshape(e.shape)


def _data_sum(v: np.ndarray) -> np.ndarray:
    return v.reshape(-1, v.shape[-1]).sum(axis=0, keepdims=True)


@fwd("dot_product")
def _dot(xs, a, d):
    return _data_sum(xs[0] * xs[1])


@bwd("dot_product")
def _dot_b(xs, y, dy, a, d, i):
    other = xs[1 - i]
    return unbroadcast(batch_bc(dy, other.ndim - 1) * other, xs[i].shape)


@fwd("squared_norm")
def _sqn(xs, a, d):
    return _data_sum(xs[0] * xs[0])


@bwd("squared_norm")
def _sqn_b(xs, y, dy, a, d, i):
    return 2 * xs[0] * batch_bc(dy, xs[0].ndim - 1)


@fwd("l2_norm")
def _l2(xs, a, d):
    return np.sqrt(_data_sum(xs[0] * xs[0]))


@bwd("l2_norm")
def _l2_b(xs, y, dy, a, d, i):
    x = xs[0]
    return x * batch_bc(dy / y, x.ndim - 1)


# ------------------------------------------------------------------ unary


def _unary(name, f, df):
    """``df(x, y, dy)`` gives the input gradient."""
    FWD[name] = lambda xs, a, d: f(xs[0], a)
    BWD[name] = lambda xs, y, dy, a, d, i: df(xs[0], y, dy, a)


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))).astype(x.dtype)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _lgamma(x):
    return np.vectorize(math.lgamma, otypes=[np.float64])(x).astype(x.dtype)


def digamma(x: np.ndarray) -> np.ndarray:
    """psi(x) for x > 0: recurrence up to x >= 6, then the asymptotic series."""
    x = np.asarray(x, np.float64).copy()
    acc = np.zeros_like(x)
    # from below 6 - 2**16 (or -inf) the recurrence takes too long or never ends: NaN there, not a hang
    far = x < 6 - 2**16
    acc[far] = np.nan
    x[far] = 6.0
    while True:
        small = x < 6
        if not small.any():
            break
        acc[small] -= 1 / x[small]
        x[small] += 1
    inv = 1 / x
    inv2 = inv * inv
    tail = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    series = np.log(x) - 0.5 * inv - tail
    return acc + series


_unary("tanh", lambda x, a: np.tanh(x), lambda x, y, g, a: g * (1 - y * y))
_unary("logistic", lambda x, a: _sigmoid(x), lambda x, y, g, a: g * y * (1 - y))
_unary("rectify", lambda x, a: np.maximum(x, 0), lambda x, y, g, a: g * (y > 0))
_unary("elu", lambda x, a: np.where(x > 0, x, F32(a[0]) * np.expm1(np.minimum(x, 0))).astype(x.dtype),
       lambda x, y, g, a: g * np.where(x > 0, 1, F32(a[0]) * np.exp(np.minimum(x, 0))).astype(x.dtype))
_unary("selu", lambda x, a: (SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))).astype(x.dtype),
       lambda x, y, g, a: g * (SELU_LAMBDA * np.where(x > 0, 1, SELU_ALPHA * np.exp(np.minimum(x, 0))))
       .astype(x.dtype))
_unary("softsign", lambda x, a: x / (1 + np.abs(x)), lambda x, y, g, a: g * (1 - np.abs(y)) ** 2)
_unary("exp", lambda x, a: np.exp(x), lambda x, y, g, a: g * y)
_unary("log", lambda x, a: np.log(x), lambda x, y, g, a: g / x)
_unary("sqrt", lambda x, a: np.sqrt(x), lambda x, y, g, a: g / (2 * y))
_unary("square", lambda x, a: x * x, lambda x, y, g, a: g * 2 * x)
_unary("cube", lambda x, a: x * x * x, lambda x, y, g, a: g * 3 * x * x)
_unary("abs", lambda x, a: np.abs(x), lambda x, y, g, a: g * np.sign(x))
_unary("log_sigmoid", lambda x, a: (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype),
       lambda x, y, g, a: g * (1 - np.exp(y)))
_unary("erf", lambda x, a: _erf(x), lambda x, y, g, a: g * F32(2 / math.sqrt(math.pi)) * np.exp(-x * x))
_unary("lgamma", lambda x, a: _lgamma(x), lambda x, y, g, a: g * digamma(x).astype(x.dtype))
_unary("nobackprop", lambda x, a: x, lambda x, y, g, a: np.zeros_like(g))
_unary("scale_gradient", lambda x, a: x, lambda x, y, g, a: g * F32(a[0]))


# ------------------------------------------------------------------ softmax family


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(x))) along ``axis``: NaN if any NaN, +Inf if any +Inf, -Inf if all are -Inf."""
    m = x.max(axis=axis, keepdims=True)  # NaN where the line has a NaN
    shift = np.where(np.isinf(m), 0, m)
    with np.errstate(divide="ignore"):
        return np.where(np.isinf(m), m, shift + np.log(np.exp(x - shift).sum(axis=axis, keepdims=True)))


@fwd("softmax")
def _softmax(xs, a, d):
    x = xs[0]
    e = np.exp(x - x.max(axis=a[0], keepdims=True))
    return e / e.sum(axis=a[0], keepdims=True)


@bwd("softmax")
def _softmax_b(xs, y, dy, a, d, i):
    return (dy - (y * dy).sum(axis=a[0], keepdims=True)) * y


@fwd("log_softmax")
def _logsoftmax(xs, a, d):
    x = xs[0]
    if a[0] is None:
        return x - _lse(x, 0)
    r = list(a[0])
    out = np.full(x.shape, -np.inf, x.dtype)
    out[r] = x[r] - _lse(x[r], 0)
    return out


@bwd("log_softmax")
def _logsoftmax_b(xs, y, dy, a, d, i):
    if a[0] is None:
        return dy - np.exp(y) * dy.sum(axis=0, keepdims=True)
    r = list(a[0])
    g = np.zeros_like(dy)
    g[r] = dy[r] - np.exp(y[r]) * dy[r].sum(axis=0, keepdims=True)
    return g


@fwd("logsumexp")
def _logsumexp(xs, a, d):
    x = np.stack(np.broadcast_arrays(*(_as_out(x, d) for x in xs)))
    return _lse(x, 0)[0].reshape(d.shape)


@bwd("logsumexp")
def _logsumexp_b(xs, y, dy, a, d, i):
    x = _as_out(xs[i], d)
    return unbroadcast(np.exp(x - y) * dy, x.shape).reshape(xs[i].shape)


def _keep(x_shape, axes) -> tuple[int, ...]:
    s = list(x_shape)
    for ax in axes:
        s[ax] = 1
    return tuple(s)


@fwd("logsumexp_dim")
def _lsed(xs, a, d):
    return _lse(xs[0], a[0]).reshape(d.shape)


@bwd("logsumexp_dim")
def _lsed_b(xs, y, dy, a, d, i):
    x = xs[0]
    ks = _keep(x.shape, (a[0],))
    return np.exp(x - y.reshape(ks)) * dy.reshape(ks)


# ------------------------------------------------------------------ shape


def _perm_full(perm, nd):
    return list(perm) + [nd]


@fwd("transpose")
def _transpose(xs, a, d):
    perm = a[0]
    x = pad(xs[0], len(perm))
    return np.transpose(x, _perm_full(perm, len(perm))).reshape(d.shape)


@bwd("transpose")
def _transpose_b(xs, y, dy, a, d, i):
    perm = a[0]
    x = xs[0]
    px = pad(x, len(perm))
    g = dy.reshape(tuple(px.shape[p] for p in perm) + dy.shape[-1:])
    return np.transpose(g, _perm_full(np.argsort(perm), len(perm))).reshape(x.shape)


@fwd("reshape")
def _reshape(xs, a, d):
    return xs[0].reshape(d.shape, order="F")


@bwd("reshape")
def _reshape_b(xs, y, dy, a, d, i):
    return dy.reshape(xs[0].shape, order="F")


@fwd("concatenate")
def _concat(xs, a, d):
    nd = len(d.d)
    ax = a[0]
    parts = []
    for x in xs:
        px = pad(x, max(nd, ax + 1))
        if px.shape[-1] != d.bd:
            px = np.broadcast_to(px, px.shape[:-1] + (d.bd,))
        parts.append(px)
    return np.concatenate(parts, axis=ax).reshape(d.shape)


@bwd("concatenate")
def _concat_b(xs, y, dy, a, d, i):
    ax = a[0]
    nd = max(len(d.d), ax + 1)
    g = pad(dy, nd)
    start = sum(pad(x, nd).shape[ax] for x in xs[:i])
    n = pad(xs[i], nd).shape[ax]
    sl = [slice(None)] * g.ndim
    sl[ax] = slice(start, start + n)
    part = g[tuple(sl)]
    return unbroadcast(part, pad(xs[i], nd).shape).reshape(xs[i].shape)


@fwd("concatenate_to_batch")
def _concat_b_fwd(xs, a, d):
    return np.concatenate(xs, axis=-1)


@bwd("concatenate_to_batch")
def _concat_to_batch_b(xs, y, dy, a, d, i):
    start = sum(x.shape[-1] for x in xs[:i])
    return dy[..., start:start + xs[i].shape[-1]]


@fwd("select_rows")
def _select_rows(xs, a, d):
    return xs[0][list(a[0])]


@bwd("select_rows")
def _select_rows_b(xs, y, dy, a, d, i):
    g = np.zeros_like(xs[0])
    np.add.at(g, list(a[0]), dy)
    return g


@fwd("select_cols")
def _select_cols(xs, a, d):
    return pad(xs[0], 2)[:, list(a[0])].reshape(d.shape)


@bwd("select_cols")
def _select_cols_b(xs, y, dy, a, d, i):
    g = np.zeros_like(pad(xs[0], 2))
    np.add.at(g, (slice(None), list(a[0])), pad(dy, 2))
    return g.reshape(xs[0].shape)


def _pick_index(x, idx, ax, bd):
    """Index array for take_along_axis: one index per batch element along axis ax."""
    shape = [1] * x.ndim
    shape[-1] = bd
    ind = np.asarray(idx if len(idx) == bd else idx * bd, dtype=np.intp).reshape(shape)
    return ind


@fwd("pick")
def _pick(xs, a, d):
    x = xs[0]
    idx, ax = a
    if len(idx) == 1:
        return np.take(x, idx[0], axis=ax).reshape(d.shape)
    xb = np.broadcast_to(x, x.shape[:-1] + (d.bd,))
    return np.take_along_axis(xb, _pick_index(xb, idx, ax, d.bd), axis=ax).reshape(d.shape)


@bwd("pick")
def _pick_b(xs, y, dy, a, d, i):
    x = xs[0]
    idx, ax = a
    full = x.shape[:-1] + (d.bd,)
    g = np.zeros(full, dy.dtype)
    ks = list(full)
    ks[ax] = 1
    np.put_along_axis(g, _pick_index(g, idx, ax, d.bd), dy.reshape(ks), axis=ax)
    return unbroadcast(g, x.shape)


@fwd("pick_batch_elems")
def _pbe(xs, a, d):
    return xs[0][..., list(a[0])]


@bwd("pick_batch_elems")
def _pbe_b(xs, y, dy, a, d, i):
    g = np.zeros_like(xs[0])
    np.add.at(g, (Ellipsis, list(a[0])), dy)
    return g


@fwd("pickrange")
def _pickrange(xs, a, d):
    s, e, ax = a
    sl = [slice(None)] * xs[0].ndim
    sl[ax] = slice(s, e)
    return xs[0][tuple(sl)]


@bwd("pickrange")
def _pickrange_b(xs, y, dy, a, d, i):
    s, e, ax = a
    g = np.zeros_like(xs[0])
    sl = [slice(None)] * g.ndim
    sl[ax] = slice(s, e)
    g[tuple(sl)] = dy
    return g


# ------------------------------------------------------------------ reductions


def _red_axes(x, a):
    axes = tuple(a[0])
    return axes + ((x.ndim - 1,) if a[1] else ())


@fwd("sum_dim")
def _sum_dim(xs, a, d):
    x = xs[0]
    return x.sum(axis=_red_axes(x, a)).reshape(d.shape)


@bwd("sum_dim")
def _sum_dim_b(xs, y, dy, a, d, i):
    x = xs[0]
    return np.broadcast_to(dy.reshape(_keep(x.shape, _red_axes(x, a))), x.shape)


def _moment_n(x, a) -> float:
    n = a[3]
    if n > 0:
        return float(n)
    return float(np.prod([x.shape[k] for k in _red_axes(x, a)]) if _red_axes(x, a) else 1.0)


@fwd("moment_dim")
def _moment(xs, a, d):
    x = xs[0]
    r = a[2]
    return ((x ** r).sum(axis=_red_axes(x, a)) / F32(_moment_n(x, a))).reshape(d.shape)


@bwd("moment_dim")
def _moment_b(xs, y, dy, a, d, i):
    x = xs[0]
    r = a[2]
    g = dy.reshape(_keep(x.shape, _red_axes(x, a)))
    scale = x ** (r - 1) if r != 1 else np.ones_like(x)  # ones: the result must have x's shape
    return g * F32(r / _moment_n(x, a)) * scale


# ------------------------------------------------------------------ losses


@fwd("pickneglogsoftmax")
def _pnls(xs, a, d):
    x = _vec(xs[0])
    z = _lse(x, 0)[0]
    picked = x[list(a[0]), np.arange(x.shape[-1])]
    return (z - picked).reshape(d.shape)


@bwd("pickneglogsoftmax")
def _pnls_b(xs, y, dy, a, d, i):
    x = _vec(xs[0])
    dy = dy.reshape(1, -1)
    g = np.exp(x - _lse(x, 0)) * dy
    g[list(a[0]), np.arange(x.shape[-1])] -= dy[0]
    return g.reshape(xs[0].shape)


def _hinge_losses(x, idx, m):
    cols = np.arange(x.shape[-1])
    gold = x[list(idx), cols]
    el = np.maximum(0, x - gold + F32(m))
    el[list(idx), cols] = 0
    return el


@fwd("hinge")
def _hinge(xs, a, d):
    return _hinge_losses(_vec(xs[0]), a[0], a[1]).sum(axis=0, keepdims=True).reshape(d.shape)


@bwd("hinge")
def _hinge_b(xs, y, dy, a, d, i):
    x = _vec(xs[0])
    dy = dy.reshape(1, -1)
    active = _hinge_losses(x, a[0], a[1]) > 0
    # Only active terms receive dy (as in DyNet, which skips elements without loss): an
    # element whose loss is 0 gets no gradient even where dy is Inf or NaN.
    g = np.where(active, dy, F32(0)).astype(x.dtype)
    count = active.sum(axis=0)
    g[list(a[0]), np.arange(x.shape[-1])] -= np.where(count > 0, count * dy[0], F32(0))
    return g.reshape(xs[0].shape)


# DyNet's binary log loss (FBinaryLogLoss): a prediction of exactly 0 or 1 where the
# target puts weight on the other side costs -log(FLT_MIN) = 87.3365 instead of Inf.
BLL_CAP = F32(-np.log(np.float32(FLT_MIN)))
# DyNet's backward moves a prediction of exactly 0 to FLT_MIN and of exactly 1 to 0.9999999f.
BLL_HI = F32(0.9999999)


@fwd("binary_log_loss")
def _bll(xs, a, d):
    x, t = xs[0], xs[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        el = -(t * np.log(x) + (1 - t) * np.log1p(-x))
        el = np.where(t == 1, np.where(x == 0, BLL_CAP, -np.log(x)), el)
        el = np.where(t == 0, np.where(x == 1, BLL_CAP, -np.log1p(-x)), el)
        el = np.where((t != 1) & (t != 0) & ((x == 0) | (x == 1)), BLL_CAP, el)
    return _data_sum(el).astype(x.dtype)


@bwd("binary_log_loss")
def _bll_b(xs, y, dy, a, d, i):
    t = xs[1]
    x = np.where(xs[0] == 0, F32(FLT_MIN), np.where(xs[0] == 1, BLL_HI, xs[0])).astype(xs[0].dtype)
    dy = batch_bc(dy, x.ndim - 1)
    if i == 0:
        g = np.where(t == 1, -t / x, np.where(t == 0, (1 - t) / (1 - x), (1 - t) / (1 - x) - t / x))
        # DyNet's FBinaryLogLossBackward: no gradient where the prediction equals the target.
        return np.where(xs[0] == t, F32(0), dy * g).astype(x.dtype)
    return (dy * (np.log1p(-x) - np.log(x))).astype(x.dtype)


@fwd("squared_distance")
def _sqd(xs, a, d):
    x0, x1, nd = _padded_pair(xs, d)
    diff = x0 - x1
    return _data_sum(diff * diff)


@bwd("squared_distance")
def _sqd_b(xs, y, dy, a, d, i):
    x0, x1, nd = _padded_pair(xs, d)
    g = 2 * (x0 - x1) * batch_bc(dy, nd)
    return unbroadcast(g if i == 0 else -g, xs[i].shape)


@fwd("l1_distance")
def _l1(xs, a, d):
    return _data_sum(np.abs(xs[0] - xs[1]))


@bwd("l1_distance")
def _l1_b(xs, y, dy, a, d, i):
    return np.sign(xs[i] - xs[1 - i]) * batch_bc(dy, xs[i].ndim - 1)


@fwd("huber_distance")
def _huber(xs, a, d):
    c = F32(a[0])
    diff = np.abs(xs[0] - xs[1])
    # DyNet's HuberDistance::forward_dev_impl halves the sum (its functor and docstring don't show it).
    return (F32(0.5) * _data_sum(np.where(diff < c, diff * diff, c * (2 * diff - c)))).astype(diff.dtype)


@bwd("huber_distance")
def _huber_b(xs, y, dy, a, d, i):
    c = F32(a[0])
    diff = xs[i] - xs[1 - i]
    return batch_bc(dy, diff.ndim - 1) * np.where(np.abs(diff) < c, diff, c * np.sign(diff)).astype(diff.dtype)


@fwd("argmax")
def _argmax(xs, a, d):
    x = xs[0]
    out = np.zeros_like(x)
    out[x.argmax(axis=0), np.arange(x.shape[-1])] = 1
    return out


@bwd("argmax")
def _argmax_b(xs, y, dy, a, d, i):
    return dy.copy() if a[0] else np.zeros_like(dy)
