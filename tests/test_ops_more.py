"""Values, batch semantics and gradients of the [B] ops (issue 6).

Forward values go through the public API and are compared with independent
NumPy computations written here (explicit loops for convolution and pooling,
numpy.linalg for linear algebra).  Every differentiable op's backward kernel is
checked against central finite differences in float64 by calling the reference
kernels directly on float64 arrays (data dims, then the batch axis).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from dynet_backends.reference_numpy.kernels import BWD, FWD

import dynet_api as dy
from dynet_api.dim import Dim
from dynet_api.ops import OPS, DimError

RTOL, ATOL = 2e-5, 2e-6


def T(a, batched: bool = False):
    return dy.inputTensor(np.asarray(a, dtype=np.float64), batched=batched)


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def close(actual, expected, rtol=RTOL, atol=ATOL) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ===================================================================== finite differences on the kernels


def out_dim(name: str, xs, attrs) -> Dim:
    op = OPS[name]
    return op.shape(op, [Dim(tuple(x.shape[:-1]), x.shape[-1]) for x in xs], attrs)


def kernel_forward(name, xs, attrs=()):
    return FWD[name](xs, attrs, out_dim(name, xs, attrs))


def fd_check(name: str, xs, attrs=(), inputs=None, eps=1e-6, rtol=1e-6, atol=1e-8, seed=0) -> None:
    """Backward of input i against the central difference of sum(w * forward) with random weights w."""
    xs = [np.array(x, dtype=np.float64) for x in xs]
    d = out_dim(name, xs, attrs)
    y = FWD[name](xs, attrs, d)
    assert y.shape == d.shape and y.dtype == np.float64
    w = np.random.default_rng(seed).normal(size=y.shape)
    for i in range(len(xs)) if inputs is None else inputs:
        g = BWD[name](xs, y, w, attrs, d, i)
        assert g.shape == xs[i].shape, (name, i, g.shape, xs[i].shape)
        num = np.zeros_like(xs[i])
        for k in np.ndindex(xs[i].shape):
            old = xs[i][k]
            xs[i][k] = old + eps
            up = (w * FWD[name](xs, attrs, d)).sum()
            xs[i][k] = old - eps
            down = (w * FWD[name](xs, attrs, d)).sum()
            xs[i][k] = old
            num[k] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"{name} input {i}")


def rnd(*shape, seed=1, lo=None, hi=None):
    r = np.random.default_rng(seed)
    if lo is not None:
        return r.uniform(lo, hi, size=shape)
    return r.normal(size=shape)


def distinct(*shape, seed=1):
    """Values with well separated ranks (max/argmax-based ops are smooth around them)."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.37 - n * 0.15).reshape(shape)


# ===================================================================== elementwise unary

TRIG = {
    "sin": (np.sin, None), "cos": (np.cos, None), "tan": (np.tan, (-1.0, 1.0)), "asin": (np.arcsin, (-0.9, 0.9)),
    "acos": (np.arccos, (-0.9, 0.9)), "atan": (np.arctan, None), "sinh": (np.sinh, None), "cosh": (np.cosh, None),
    "asinh": (np.arcsinh, None), "acosh": (np.arccosh, (1.2, 4.0)), "atanh": (np.arctanh, (-0.9, 0.9)),
}


@pytest.mark.parametrize("name", sorted(TRIG))
def test_trig_values_and_gradients(name):
    f, dom = TRIG[name]
    a = f32(rnd(3, 2, seed=3) if dom is None else rnd(3, 2, seed=3, lo=dom[0], hi=dom[1]))
    close(getattr(dy, name)(T(a, batched=True)).npvalue(), f(a))
    fd_check(name, [a])


def test_silu_values_and_gradients():
    a = f32(rnd(4, seed=2) * 2)
    close(dy.silu(T(a)).npvalue(), a * sigmoid(a))
    close(dy.silu(T(a), beta=0.5).npvalue(), a * sigmoid(0.5 * a))
    for beta in (1.0, 0.5, 2.0):
        fd_check("silu", [rnd(4, 2, seed=5)], (beta,))


def test_rounding_values_half_away_from_zero():
    a = np.array([-2.5, -1.5, -0.4, 0.5, 1.5, 2.49, 3.0])
    close(dy.round(T(a)).npvalue(), [-3, -2, 0, 1, 2, 2, 3])
    close(dy.ceil(T(a)).npvalue(), np.ceil(a))
    close(dy.floor(T(a)).npvalue(), np.floor(a))


@pytest.mark.parametrize("fn", ["round", "ceil", "floor"])
def test_rounding_gradient_modes(fn):
    pc = dy.ParameterCollection()
    p = pc.add_parameters((3,), init=dy.NumpyInitializer(np.array([0.2, 1.7, -2.2])))
    for mode, expected in (("zero_gradient", 0.0), ("straight_through_gradient", 1.0)):
        dy.renew_cg()
        loss = dy.sum_elems(getattr(dy, fn)(p, gradient_mode=mode) * 3.0)
        loss.backward()
        close(p.grad_as_array(), np.full(3, 3.0 * expected))
        p.scale_gradient(0.0)
    with pytest.raises(ValueError, match="gradient_mode"):
        getattr(dy, fn)(p, gradient_mode="bogus")


# ===================================================================== sparsemax family


def test_sparsemax_values():
    close(dy.sparsemax(T([1.0, 0.5, -1.0])).npvalue(), [0.75, 0.25, 0.0])
    z = f32(rnd(6, seed=7))
    p = dy.sparsemax(T(z)).npvalue()
    assert abs(p.sum() - 1) < 1e-6 and (p >= 0).all()
    # on its support, sparsemax is z shifted by one threshold
    s = p > 0
    tau = z[s] - p[s]
    close(tau, np.full(s.sum(), tau[0]))
    fd_check("sparsemax", [np.array([1.3, 0.9, -1.0, 0.2, 1.1])[:, None]])


def sparsemax_loss_formula(z, q_idx):
    p = dy.sparsemax(T(z)).npvalue()  # projection itself checked in test_sparsemax_values
    s = p > 0
    tau = (z[s] - p[s])[0]
    q = np.zeros_like(z)
    np.add.at(q, q_idx, 1 / len(q_idx))
    return max(0.0, -q @ z + 0.5 * (z[s] ** 2 - tau ** 2).sum() + 0.5 * q @ q)


def test_sparsemax_loss_values_and_gradient():
    z = f32([1.3, 0.9, -1.0, 0.2, 1.1])
    for q in ([0], [1, 4], [2]):
        close(dy.sparsemax_loss(T(z), q).scalar_value(), sparsemax_loss_formula(z, q), rtol=1e-5, atol=1e-6)
        fd_check("sparsemax_loss", [z[:, None]], (tuple(q),))
    with pytest.raises(IndexError):
        dy.sparsemax_loss(T(z), [5])


def test_constrained_softmax_values_and_gradients():
    z = np.array([2.0, 1.0, 0.0])
    u = np.array([0.5, 1.0, 1.0])
    e = math.e
    close(dy.constrained_softmax(T(z), T(u)).npvalue(), [0.5, 0.5 * e / (e + 1), 0.5 / (e + 1)])
    # loose bounds: plain softmax
    close(dy.constrained_softmax(T(z), T(np.ones(3))).npvalue(), np.exp(z) / np.exp(z).sum())
    zz = np.array([1.5, 0.3, -0.4, 0.8, -1.2])[:, None]
    uu = np.array([0.3, 0.6, 0.5, 0.2, 0.9])[:, None]
    fd_check("constrained_softmax", [zz, uu])


# ===================================================================== selection along dimensions


def test_strided_select_and_slicing():
    a = np.arange(24.0).reshape(4, 6)
    x = T(a)
    close(dy.strided_select(x, [2, 3], [1, 0], [4, 6]).npvalue(), a[1:4:2, 0:6:3])
    close(dy.strided_select(x, [], [1], []).npvalue(), a[1:])
    close(x[::2].npvalue(), a[::2])
    close(x[1::3].npvalue(), a[1::3])
    close(x[1:, ::4].npvalue(), a[1:, ::4])
    close(x[-3:, 1:5:2].npvalue(), a[-3:, 1:5:2])
    b = np.arange(30.0).reshape(5, 2, 3)  # 5x2 matrices, batch of 3
    xb = T(b, batched=True)
    y = xb[::2, :, 1:]
    assert y.dim() == ((3, 2), 2)
    close(y.npvalue(), b[::2, :, 1:])
    with pytest.raises(IndexError, match="steps must be positive"):
        x[::-1]
    with pytest.raises(TypeError, match="slices"):
        x[1, :]
    with pytest.raises(IndexError):
        x[:, :, :, :]
    with pytest.raises(IndexError):
        dy.strided_select(x, [1], [5], [])
    fd_check("strided_select", [rnd(5, 4, 3)], ((2, 3, 2), (1, 0, 0), (5, 4, 3)))


@pytest.mark.parametrize("name,f", [("max_dim", np.max), ("min_dim", np.min)])
def test_max_min_dim(name, f):
    a = distinct(3, 4, 2)
    for d in (0, 1):
        close(getattr(dy, name)(T(a, batched=True), d).npvalue(), f(a, axis=d))
        fd_check(name, [a], (d,))
    close(getattr(dy, name)(T(a[:, 0, 0])).scalar_value(), f(a[:, 0, 0]))
    with pytest.raises(DimError):
        getattr(dy, name)(T(a[:, 0, 0]), 1)


def test_cumsum():
    a = rnd(3, 4, 2)
    for d in (0, 1):
        close(dy.cumsum(T(a, batched=True), d).npvalue(), np.cumsum(a, axis=d), atol=1e-5)
        fd_check("cumsum", [a], (d,))


def kmax_expected(a, k, d):
    moved = np.moveaxis(a, d, -1)
    out = np.empty(moved.shape[:-1] + (k,))
    for idx in np.ndindex(moved.shape[:-1]):
        row = moved[idx]
        keep = sorted(sorted(range(row.size), key=lambda j: (-row[j], j))[:k])
        out[idx] = row[keep]
    return np.moveaxis(out, -1, d)


def test_kmax_pooling():
    a = distinct(3, 5, 2)
    for k, d in ((2, 1), (3, 1), (2, 0)):
        close(dy.kmax_pooling(T(a, batched=True), k, d).npvalue(), kmax_expected(a, k, d))
        fd_check("kmax_pooling", [a], (k, d))
    ties = np.array([[1.0, 3.0, 3.0, 3.0, 0.0]])
    close(dy.kmax_pooling(T(ties), 2).npvalue(), [[3.0, 3.0]])
    with pytest.raises(DimError):
        dy.kmax_pooling(T(ties), 6)


# ===================================================================== moments


def test_moments_and_std():
    a = f32(rnd(3, 4, 2))
    x = T(a, batched=True)
    close(dy.moment_elems(x, 3).value(), (a ** 3).mean(axis=(0, 1)), atol=1e-5)
    close(dy.moment_batches(x, 2).npvalue(), (a ** 2).mean(axis=2), atol=1e-5)
    close(dy.std_elems(x).value(), a.reshape(12, 2).std(axis=0), atol=1e-5)
    close(dy.std_batches(x).npvalue(), a.std(axis=2), atol=1e-5)
    close(dy.std_dim(x, [1]).npvalue(), a.std(axis=1), atol=1e-5)
    close(dy.std_dim(x, [0], b=True).npvalue(), a.std(axis=(0, 2)), atol=1e-5)
    # n overrides the divisor of both the mean and the variance
    m = a.sum(axis=1, keepdims=True) / 5
    close(dy.std_dim(x, [1], n=5).npvalue(), np.sqrt(((a - m) ** 2).sum(axis=1) / 5), atol=1e-5)
    for attrs in (((1,), False, 0), ((0, 1), False, 0), ((0,), True, 0), ((), True, 0), ((1,), False, 5)):
        fd_check("std_dim", [a], attrs)
    with pytest.raises(DimError):
        dy.std_dim(x, [])


# ===================================================================== losses


def hinge_dim_expected(a, idx, d, m):
    x = a if d == 0 else a.T
    out = []
    for i, gold in enumerate(idx):
        col = x[:, i]
        out.append(sum(max(0.0, col[r] - col[gold] + m) for r in range(col.size) if r != gold))
    return np.array(out)


def test_hinge_dim():
    a = f32(rnd(4, 3, seed=4))
    close(dy.hinge_dim(T(a), [0, 2, 3]).npvalue(), hinge_dim_expected(a, [0, 2, 3], 0, 1.0), atol=1e-5)
    close(dy.hinge_dim(T(a), [1, 0, 2, 2], d=1, m=0.5).npvalue(), hinge_dim_expected(a, [1, 0, 2, 2], 1, 0.5),
          atol=1e-5)
    b = f32(rnd(4, 3, 2, seed=6))
    y = dy.hinge_dim(T(b, batched=True), [[0, 1, 2], [3, 3, 0]]).npvalue()
    close(y[:, 0], hinge_dim_expected(b[..., 0], [0, 1, 2], 0, 1.0), atol=1e-5)
    close(y[:, 1], hinge_dim_expected(b[..., 1], [3, 3, 0], 0, 1.0), atol=1e-5)
    # one list for a batched input: the same gold indices for every element, as DyNet
    y = dy.hinge_dim(T(b, batched=True), [0, 1, 2]).npvalue()
    close(y[:, 1], hinge_dim_expected(b[..., 1], [0, 1, 2], 0, 1.0), atol=1e-5)
    fd_check("hinge_dim", [b], (((0, 1, 2), (3, 3, 0)), 0, 1.0))
    fd_check("hinge_dim", [b], (((1, 0, 2, 2),), 1, 0.5))
    with pytest.raises(DimError):
        dy.hinge_dim(T(a), [0, 1])
    with pytest.raises(IndexError):
        dy.hinge_dim(T(a), [0, 1, 4])
    with pytest.raises(ValueError, match="hinge_dim: m must be >= 0"):
        dy.hinge_dim(T(a), [0, 1, 2], m=-1.0)


def test_pairwise_rank_loss():
    x = np.array([[0.5, 2.0, -1.0]])
    yb = np.array([[[0.0, 1.0], [0.3, 2.5], [0.2, -4.0]]])  # {1,3} x 2
    out = dy.pairwise_rank_loss(T(x), T(yb, batched=True), m=1.0).npvalue()
    close(out, np.maximum(0, 1.0 - x[..., None] + yb))
    fd_check("pairwise_rank_loss", [x[..., None] + 0.01, yb], (1.0,))
    with pytest.raises(DimError):
        dy.pairwise_rank_loss(T([1.0, 2.0]), T([1.0, 2.0]))


def test_poisson_loss():
    for ll, k in ((0.3, 2), (-1.0, 0), (1.5, 7)):
        v = dy.poisson_loss(dy.scalarInput(ll), k).scalar_value()
        expected = -(k * ll - math.exp(ll) - math.lgamma(k + 1))  # -log(lambda^k e^-lambda / k!)
        close(v, expected, rtol=1e-5)
        fd_check("poisson_loss", [np.array([[ll]])], (k,))
    with pytest.raises(TypeError):
        dy.poisson_loss(dy.scalarInput(0.0), 1.5)


# ===================================================================== linear algebra


def spd(n, seed=0):
    a = rnd(n, n, seed=seed)
    return a @ a.T + n * np.eye(n)


def test_inverse_logdet_trace():
    a = f32(spd(3))
    close(dy.inverse(T(a)).npvalue(), np.linalg.inv(a), rtol=1e-4, atol=1e-5)
    close(dy.logdet(T(a)).scalar_value(), np.log(np.linalg.det(a)), rtol=1e-5)
    neg = np.diag([1.0, -2.0])
    assert math.isnan(dy.logdet(T(neg)).scalar_value())
    b = f32(rnd(3, 3, seed=9))
    close(dy.trace_of_product(T(a), T(b)).scalar_value(), np.trace(a @ b.T), rtol=1e-5)
    fd_check("inverse", [spd(3)[..., None]])
    fd_check("logdet", [spd(3, seed=2)[..., None]])
    fd_check("trace_of_product", [rnd(2, 3)[..., None], rnd(2, 3, seed=3)[..., None]])


def test_contractions():
    A = f32(rnd(2, 3, 4))
    b = f32(rnd(4, seed=2))
    c = f32(rnd(3, seed=3))
    close(dy.contract3d_1d(T(A), T(b)).npvalue(), np.einsum("ijk,k->ij", A, b), atol=1e-5)
    bias = f32(rnd(2, 3, seed=4))
    close(dy.contract3d_1d_bias(T(A), T(b), T(bias)).npvalue(), np.einsum("ijk,k->ij", A, b) + bias, atol=1e-5)
    close(dy.contract3d_1d_1d(T(A), T(b), T(c)).npvalue(), np.einsum("ijk,k,j->i", A, b, c), atol=1e-5)
    d = f32(rnd(2, seed=5))
    close(dy.contract3d_1d_1d_bias(T(A), T(b), T(c), T(d)).npvalue(), np.einsum("ijk,k,j->i", A, b, c) + d,
          atol=1e-5)
    # contract3d_1d is batched: a batch of vectors against one tensor
    bb = f32(rnd(4, 3, seed=6))
    out = dy.contract3d_1d(T(A), T(bb, batched=True)).npvalue()
    close(out, np.einsum("ijk,kb->ijb", A, bb), atol=1e-5)
    fd_check("contract3d_1d", [A[..., None], bb])
    fd_check("contract3d_1d", [rnd(2, 3, 4, 2), rnd(4, 2, seed=8)])
    fd_check("contract3d_1d_1d", [A[..., None], b[:, None], c[:, None]])
    with pytest.raises(DimError, match="batched"):
        dy.contract3d_1d_1d(T(A), T(bb, batched=True), T(c))


def test_circular_convolution_and_correlation():
    u = f32(rnd(5, seed=1))
    v = f32(rnd(5, seed=2))
    fu, fv = np.fft.fft(u), np.fft.fft(v)
    close(dy.circ_conv(T(u), T(v)).npvalue(), np.real(np.fft.ifft(fu * fv)), atol=1e-5)
    close(dy.circ_corr(T(u), T(v)).npvalue(), np.real(np.fft.ifft(np.conj(fu) * fv)), atol=1e-5)
    fd_check("circ_conv", [u[:, None], v[:, None]])
    fd_check("circ_corr", [u[:, None], v[:, None]])


# ===================================================================== convolution and pooling


def tf_out_and_pad(n, k, s, valid):
    if valid:
        return math.ceil((n - k + 1) / s), 0
    out = math.ceil(n / s)
    return out, max((out - 1) * s + k - n, 0) // 2


def conv2d_loop(x, f, stride, valid):
    """x (H, W, C, B), f (kh, kw, C, O): TensorFlow-style cross-correlation with an explicit loop."""
    H, W, C, B = x.shape
    kh, kw, _, O = f.shape
    ho, top = tf_out_and_pad(H, kh, stride[0], valid)
    wo, left = tf_out_and_pad(W, kw, stride[1], valid)
    y = np.zeros((ho, wo, O, B))
    for b in range(B):
        for i in range(ho):
            for j in range(wo):
                for o in range(O):
                    acc = 0.0
                    for r in range(kh):
                        for c in range(kw):
                            row, col = i * stride[0] + r - top, j * stride[1] + c - left
                            if 0 <= row < H and 0 <= col < W:
                                acc += x[row, col, :, b] @ f[r, c, :, o]
                    y[i, j, o, b] = acc
    return y


def maxpool_loop(x, ksize, stride, valid):
    H, W, C, B = x.shape
    ho, top = tf_out_and_pad(H, ksize[0], stride[0], valid)
    wo, left = tf_out_and_pad(W, ksize[1], stride[1], valid)
    y = np.zeros((ho, wo, C, B))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * stride[0] - top, j * stride[1] - left
            win = x[max(r0, 0): r0 + ksize[0], max(c0, 0): c0 + ksize[1]]
            y[i, j] = win.max(axis=(0, 1))
    return y


CONV_CASES = [((5, 6), (3, 3), (1, 1)), ((7, 5), (3, 2), (2, 2)), ((6, 7), (2, 3), (2, 3)), ((4, 4), (4, 4), (3, 1))]


@pytest.mark.parametrize("valid", [True, False], ids=["VALID", "SAME"])
@pytest.mark.parametrize("hw,k,stride", CONV_CASES)
def test_conv2d_against_explicit_loop(hw, k, stride, valid):
    x = f32(rnd(hw[0], hw[1], 2, 3, seed=11))
    f = f32(rnd(k[0], k[1], 2, 4, seed=12))
    y = dy.conv2d(T(x, batched=True), T(f), stride, is_valid=valid)
    expected = conv2d_loop(x, f, stride, valid)
    assert y.dim() == (expected.shape[:3], 3)
    close(y.npvalue(), expected, rtol=1e-4, atol=1e-5)
    b = f32(rnd(4, seed=13))
    yb = dy.conv2d_bias(T(x, batched=True), T(f), T(b), stride, is_valid=valid)
    close(yb.npvalue(), expected + b[None, None, :, None], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("valid", [True, False], ids=["VALID", "SAME"])
def test_conv2d_gradients(valid):
    x = rnd(5, 4, 2, 2, seed=3)
    f = rnd(3, 2, 2, 3, seed=4)[..., None]
    fd_check("conv2d", [x, f], ((2, 1), valid))
    fd_check("conv2d", [x, f], ((1, 2), valid))


def test_conv2d_shape_errors():
    x = T(rnd(3, 3, 2))
    with pytest.raises(DimError, match="VALID"):
        dy.conv2d(x, T(rnd(4, 4, 2, 1)), [1, 1])
    with pytest.raises(DimError):
        dy.conv2d(x, T(rnd(2, 2, 3, 1)), [1, 1])
    with pytest.raises(DimError, match="stride"):
        dy.conv2d(x, T(rnd(2, 2, 2, 1)), [0, 1])
    y = dy.conv2d(x, T(rnd(4, 4, 2, 1)), [1, 1], is_valid=False)
    assert y.dim() == ((3, 3, 1), 1)


@pytest.mark.parametrize("valid", [True, False], ids=["VALID", "SAME"])
@pytest.mark.parametrize("hw,k,stride", CONV_CASES + [((5, 5), (2, 2), (3, 3))])
def test_maxpooling2d_against_explicit_loop(hw, k, stride, valid):
    x = f32(rnd(hw[0], hw[1], 3, 2, seed=21))
    y = dy.maxpooling2d(T(x, batched=True), k, stride, is_valid=valid)
    expected = maxpool_loop(x, k, stride, valid)
    assert y.dim() == (expected.shape[:3], 2)
    close(y.npvalue(), expected)
    fd_check("maxpooling2d", [distinct(hw[0], hw[1], 2, 2)], (k, stride, valid))


def test_maxpooling2d_two_dim_input_and_gradient_to_first_max():
    x = np.array([[1.0, 5.0, 5.0], [0.0, 2.0, 5.0], [3.0, 1.0, 0.0]])
    y = dy.maxpooling2d(T(x), [2, 2], [1, 1])
    close(y.npvalue(), [[5.0, 5.0], [3.0, 5.0]])
    a = np.array(x)[..., None]
    d = out_dim("maxpooling2d", [a], ((2, 2), (1, 1), True))
    g = BWD["maxpooling2d"]([a], FWD["maxpooling2d"]([a], ((2, 2), (1, 1), True), d), np.ones(d.shape),
                            ((2, 2), (1, 1), True), d, 0)
    # ties go to the first maximum in row-major order inside each window
    close(g[..., 0], [[0, 2, 0], [0, 0, 1], [1, 0, 0]])


def test_filter1d_narrow_fold_rows_kmh_ngram():
    x = f32(rnd(3, 6, seed=1))
    f = f32(rnd(3, 2, seed=2))
    expected = np.array([[(x[:, j: j + 2] * f).sum() for j in range(5)]])
    close(dy.filter1d_narrow(T(x), T(f)).npvalue(), expected, atol=1e-5)
    fs = f32(rnd(3, 2, 4, seed=3))
    expected = np.array([[(x[:, j: j + 2] * fs[:, :, k]).sum() for j in range(5)] for k in range(4)])
    close(dy.filter1d_narrow(T(x), T(fs)).npvalue(), expected, atol=1e-5)
    fd_check("filter1d_narrow", [x[..., None], f[..., None]])
    fd_check("filter1d_narrow", [x[..., None], fs[..., None]])

    m = f32(rnd(6, 2, seed=4))
    close(dy.fold_rows(T(m), 3).npvalue(), m.reshape(2, 3, 2).sum(axis=1))
    v = dy.fold_rows(T(m[:, 0]))
    assert v.dim() == ((3, 1), 1)
    close(v.npvalue(), m[:, 0].reshape(3, 2).sum(axis=1)[:, None])
    fd_check("fold_rows", [m[..., None]], (2,))
    with pytest.raises(DimError):
        dy.fold_rows(T(m), 4)

    close(dy.kmh_ngram(T(x), 3).npvalue(), np.stack([x[:, j: j + 3].sum(axis=1) for j in range(4)], axis=1),
          atol=1e-5)
    fd_check("kmh_ngram", [x[..., None]], (3,))


# ===================================================================== normalisation


def test_layer_norm_and_weight_norm():
    a = f32(rnd(5, 2, seed=1))
    g = f32(rnd(5, seed=2))
    b = f32(rnd(5, seed=3))
    y = dy.layer_norm(T(a, batched=True), T(g), T(b)).npvalue()
    mu, sd = a.mean(axis=0), a.std(axis=0)
    close(y, g[:, None] * (a - mu) / (sd + 1e-8) + b[:, None], atol=1e-5)
    w = f32(rnd(3, 2, seed=4))
    close(dy.weight_norm(T(w), dy.scalarInput(1.5)).npvalue(), 1.5 * w / np.linalg.norm(w), atol=1e-6)
    fd_check("weight_norm", [w[..., None], np.array([[0.7]])])
    with pytest.raises(DimError, match="batched"):
        dy.weight_norm(T(a, batched=True), dy.scalarInput(1.0))


def test_layer_norm_gradient_through_public_api():
    pc = dy.ParameterCollection()
    rng = np.random.default_rng(0)
    a = rng.normal(size=4)
    g = pc.add_parameters((4,), init=dy.NumpyInitializer(rng.normal(size=4)))
    b = pc.add_parameters((4,), init=dy.NumpyInitializer(rng.normal(size=4)))
    w = rng.normal(size=4)
    loss = dy.dot_product(dy.layer_norm(T(a), g, b), T(w))
    loss.backward()
    xn = (f32(a) - f32(a).mean()) / (f32(a).std() + 1e-8)
    close(g.grad_as_array(), w * xn, atol=1e-5)
    close(b.grad_as_array(), f32(w), atol=1e-6)


# ===================================================================== fused LSTM pieces


def lstm_reference(x, h, Wx, Wh, b):
    pre = Wx @ x + Wh @ h + b[:, None]
    n = pre.shape[0] // 4
    i, f, o, g = sigmoid(pre[:n]), sigmoid(pre[n: 2 * n] + 1.0), sigmoid(pre[2 * n: 3 * n]), np.tanh(pre[3 * n:])
    return np.concatenate([i, f, o, g])


def test_vanilla_lstm_pieces_values():
    n, d, B = 3, 4, 2
    x = f32(rnd(d, B, seed=1))
    h = f32(rnd(n, seed=2))
    Wx, Wh, b = f32(rnd(4 * n, d, seed=3)), f32(rnd(4 * n, n, seed=4)), f32(rnd(4 * n, seed=5))
    gates = dy.vanilla_lstm_gates(T(x, batched=True), T(h), T(Wx), T(Wh), T(b))
    expected = lstm_reference(x, h[:, None], Wx, Wh, b)
    close(gates.npvalue(), expected, atol=1e-5)
    c_prev = f32(rnd(n, B, seed=6))
    c = dy.vanilla_lstm_c(T(c_prev, batched=True), gates)
    i_, f_, o_, g_ = np.split(expected, 4)
    close(c.npvalue(), i_ * g_ + f_ * c_prev, atol=1e-5)
    close(dy.vanilla_lstm_h(c, gates).npvalue(), o_ * np.tanh(i_ * g_ + f_ * c_prev), atol=1e-5)
    # the concat form equals gates of the concatenated inputs
    cat = dy.vanilla_lstm_gates_concat([T(x[:2], batched=True), T(x[2:], batched=True)], T(h), T(Wx), T(Wh), T(b))
    close(cat.npvalue(), expected, atol=1e-5)
    mx, mh = f32([1.0, 0.0, 2.0, 1.0]), f32([0.0, 2.0, 1.0])
    drop = dy.vanilla_lstm_gates_dropout(T(x, batched=True), T(h), T(Wx), T(Wh), T(b), T(mx), T(mh))
    close(drop.npvalue(), lstm_reference(x * mx[:, None], (h * mh)[:, None], Wx, Wh, b), atol=1e-5)
    dcat = dy.vanilla_lstm_gates_dropout_concat([T(x, batched=True)], T(h), T(Wx), T(Wh), T(b), T(mx), T(mh))
    close(dcat.npvalue(), drop.npvalue())
    noisy = dy.vanilla_lstm_gates(T(x, batched=True), T(h), T(Wx), T(Wh), T(b), weightnoise_std=0.5)
    assert noisy.dim() == ((4 * n,), B) and not np.allclose(noisy.npvalue(), expected)
    with pytest.raises(DimError):
        dy.vanilla_lstm_gates(T(x, batched=True), T(h), T(Wh), T(Wh), T(b))
    with pytest.raises(DimError):
        dy.vanilla_lstm_c(T(h), T(h))


def test_vanilla_lstm_pieces_gradients():
    n, d = 2, 3
    x, h = rnd(d, 2, seed=1), rnd(n, 1, seed=2)
    Wx, Wh, b = rnd(4 * n, d, 1, seed=3), rnd(4 * n, n, 1, seed=4), rnd(4 * n, 1, seed=5)
    fd_check("vanilla_lstm_gates", [x, h, Wx, Wh, b])
    mx, mh = rnd(d, 1, seed=6), rnd(n, 2, seed=7)
    fd_check("vanilla_lstm_gates_dropout", [x, h, Wx, Wh, b, mx, mh])
    gates = rnd(4 * n, 2, seed=8)
    fd_check("vanilla_lstm_c", [rnd(n, 1, seed=9), gates])
    fd_check("vanilla_lstm_h", [rnd(n, 2, seed=9), rnd(4 * n, 1, seed=10)])


# ===================================================================== devices and batch rejections


def test_to_device():
    a = rnd(3, 2)
    y = dy.to_device(T(a), "CPU")
    close(y.npvalue(), a, atol=1e-6)
    assert dy.cg().nodes[y.i][0].name == "to_device" and dy.cg().nodes[y.i][2] == ("CPU",)
    fd_check("to_device", [a[..., None]], ("CPU",))
    with pytest.raises(ValueError, match="not a device of backend"):
        dy.to_device(T(a), "GPU:0")


BATCH_REJECTING = {
    "sparsemax": lambda x: dy.sparsemax(x),
    "constrained_softmax": lambda x: dy.constrained_softmax(x, x),
    "circ_conv": lambda x: dy.circ_conv(x, x),
    "circ_corr": lambda x: dy.circ_corr(x, x),
    "fold_rows": lambda x: dy.fold_rows(x, 1),
    "poisson_loss": lambda x: dy.poisson_loss(dy.pick(x, 0), 1),
    "sparsemax_loss": lambda x: dy.sparsemax_loss(x, [0]),
}


@pytest.mark.parametrize("name", sorted(BATCH_REJECTING))
def test_ops_without_minibatch_support_reject_batched_vectors(name):
    x = T(rnd(4, 2), batched=True)
    with pytest.raises(DimError, match="batched"):
        BATCH_REJECTING[name](x)
    dy.renew_cg()
    BATCH_REJECTING[name](T(rnd(4)))  # the unbatched form is fine


@pytest.mark.parametrize("fn", [dy.inverse, dy.logdet, lambda m: dy.trace_of_product(m, m),
                                lambda m: dy.filter1d_narrow(m, m), lambda m: dy.kmh_ngram(m, 1)])
def test_matrix_ops_without_minibatch_support_reject_batched_matrices(fn):
    with pytest.raises(DimError, match="batched"):
        fn(T(rnd(3, 3, 2), batched=True))


# ===================================================================== the convolutional example


def test_cnn_example_quick_run_learns():
    import os
    import re
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "examples", "cnn.py"), "--quick", "--no-progress"],
                       capture_output=True, text=True, timeout=300, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"train loss ([0-9.]+)", r.stdout)]
    acc = float(re.search(r"final held-out accuracy: ([0-9.]+)", r.stdout).group(1))
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], r.stdout
    assert acc > 0.5, r.stdout  # ten classes: chance is 0.1


def test_std_of_a_single_element_has_zero_gradient():
    """std over one element is identically 0; its gradient is 0 (DyNet's formula divides 0 by 0)."""
    fd_check("std_dim", [rnd(1, 3)], ((0,), False, 0))
    pc = dy.ParameterCollection()
    p = pc.add_parameters((1, 2), init=1.5)
    dy.sum_elems(dy.std_dim(p, [0])).backward()
    close(p.grad_as_array(), np.zeros((1, 2)))


def test_bad_arguments_raise_errors_naming_the_function():
    x = T(rnd(3, 4))
    for call, err in ((lambda: dy.kmax_pooling(x, "2"), TypeError), (lambda: dy.max_dim(x, 0.5), TypeError),
                      (lambda: dy.conv2d_bias(T(rnd(3, 3, 1)), T(rnd(2, 2, 1, 2)), [1, 2], [1, 1]), TypeError),
                      (lambda: dy.maxpooling2d(x, [2, 2, 2], [1, 1]), ValueError),
                      (lambda: dy.round(x, "nearest"), ValueError), (lambda: dy.layer_norm(3, x, x), TypeError)):
        with pytest.raises(err) as info:
            call()
        assert any(n in str(info.value) for n in ("kmax_pooling", "max_dim", "conv2d_bias", "maxpooling2d", "round",
                                                  "layer_norm")), str(info.value)


@pytest.mark.parametrize("n,pos", [(1, (0, 0)), (2, (0, 0)), (2, (1, 0)), (3, (0, 0)), (3, (2, 1))])
def test_inverse_of_a_matrix_with_a_nan_is_all_nan_on_every_backend(each_backend, n, pos):
    """A NaN anywhere poisons the whole inverse (LU solvers differ in where it shows; on a GPU,
    cuSOLVER turned a 1x1 NaN into +Inf), while an infinite entry keeps the solver's finite values."""
    a = (2 * np.eye(n) + 0.1).astype(np.float32)
    a[pos] = np.nan
    assert np.isnan(dy.inverse(dy.inputTensor(a)).npvalue()).all()
    dy.renew_cg()
    a[pos] = np.inf if n == 1 else 2.1
    y = dy.inverse(dy.inputTensor(a)).npvalue()
    close(y.reshape(n, n), np.linalg.inv(a.astype(np.float64)) if n > 1 else [[0.0]], rtol=1e-4, atol=1e-5)
