"""cpu_eigen's kernels for products with a short side (csrc/gemm_thin_impl.h), on each
instruction set this CPU runs, against float64 NumPy: the value W X (C += A B), the
gradient of X (C += A^T B) and of W (C += A B^T with a short k, or any k for a weight the cache
holds), over shapes that hit every
tail (rows not a multiple of the vector width, column counts around the tile widths, k
below and around a vector), and the one-column products (GEMV) both ways."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import dynet_api as dy

pytest.importorskip("dynet_backends.cpu_eigen._cpu_eigen", reason="cpu_eigen is not built")
from dynet_backends.cpu_eigen import _cpu_eigen as M  # noqa: E402

SHAPES = [  # (rows of W, k, columns of X)
    *itertools.product([1, 5, 16, 17, 33, 100], [3, 31, 32, 70], [2, 7, 9]),
    (128, 256, 16), (1024, 64, 16), (40, 300, 64), (64, 48, 65), (7, 20, 8), (50, 17, 6),
    # a weight the L2 cache holds times many columns (gemm_thin.h's weight_in_cache: the product and
    # dW taken here at any width; dW's k in blocks of 128), and one too large for it (the BLAS's)
    (128, 256, 300), (100, 70, 129), (40, 300, 200), (17, 33, 1000), (300, 300, 100),
    # one column (a GEMV both ways): row tails of 1 to 4 vectors, k below and around a vector
    *itertools.product([5, 16, 17, 48, 100], [3, 16, 31, 70], [1]),
]


@pytest.fixture(params=["avx512", "avx2", "off"])
def thin_isa(request):
    before = M.thin_gemm_isa()
    got = M.select_thin_gemm(request.param)
    try:
        if got != request.param:
            pytest.skip(f"{request.param} kernels are not available on this CPU or build")
        dy.set_backend("cpu_eigen")
        yield got
    finally:
        M.select_thin_gemm(before)


def _product_and_grads(W: np.ndarray, X: np.ndarray, G: np.ndarray, batched: bool):
    dy.renew_cg()
    w = dy.inputTensor(W)
    x = dy.inputTensor(X.T[..., None].transpose(1, 2, 0), batched=True) if batched else dy.inputTensor(X)
    y = w * x
    g = dy.inputTensor(G.T[..., None].transpose(1, 2, 0), batched=True) if batched else dy.inputTensor(G)
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(y, g)))
    loss.backward(full=True)
    yv = y.npvalue().reshape(W.shape[0], X.shape[1])
    gx = x.gradient().reshape(X.shape)
    return yv, w.gradient(), gx


@pytest.mark.parametrize("batched", [False, True], ids=["columns", "batch"])
@pytest.mark.parametrize("m,k,n", SHAPES, ids=lambda v: str(v))
def test_products_match_float64(thin_isa, m, k, n, batched):
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    W, X, G = (rng.normal(size=s).astype(np.float32) for s in [(m, k), (k, n), (m, n)])
    y, gw, gx = _product_and_grads(W, X, G, batched)
    W64, X64, G64 = W.astype(np.float64), X.astype(np.float64), G.astype(np.float64)
    tol = dict(rtol=1e-4, atol=2e-5 * np.sqrt(max(k, n)))
    np.testing.assert_allclose(y, W64 @ X64, **tol, err_msg=f"W X, {m}x{k} times {k}x{n} ({thin_isa})")
    np.testing.assert_allclose(gw, G64 @ X64.T, **tol, err_msg=f"dW = G X^T ({thin_isa})")
    np.testing.assert_allclose(gx, W64.T @ G64, **tol, err_msg=f"dX = W^T G ({thin_isa})")


def test_isa_is_named_and_default_is_the_widest():
    assert M.thin_gemm_isa() in ("avx512", "avx2", "off")
    before = M.thin_gemm_isa()
    try:
        assert M.select_thin_gemm("best") == before or before == "avx2"  # DYNET_CPU_EIGEN_ISA=avx2 caps it
        assert M.select_thin_gemm("off") == "off"
    finally:
        M.select_thin_gemm(before)


@pytest.mark.usefixtures("restore_autobatch")
@pytest.mark.parametrize("form", ["group", "columns", "batch"])
@pytest.mark.parametrize("m,k,n", [(5, 4, 3), (17, 33, 9), (100, 70, 129), (128, 256, 40)], ids=str)
def test_affine_output_starts_as_its_bias(thin_isa, m, k, n, form):
    """b + W X written in one pass (ku::gemm_bias: the thin kernels' first k block stores, no fill of
    the output first), for n affine_transform([b, W, x_j]) run as one group (autobatching), and for
    one affine_transform over a k x n matrix or a batch of n; against float64 NumPy, values and the
    gradients of W, b and X."""
    from dynet_api import config

    config.set_values(autobatch=1)
    rng = np.random.default_rng(m * 31 + k * 7 + n)
    W, b, X, G = (rng.normal(size=s).astype(np.float32) for s in [(m, k), (m,), (k, n), (m, n)])
    pc = dy.ParameterCollection()
    pw, pb = pc.add_parameters((m, k)), pc.add_parameters(m)
    pw.set_value(W), pb.set_value(b)
    dy.renew_cg()
    if form == "group":
        xs = [dy.inputTensor(X[:, j]) for j in range(n)]
        ys = [dy.affine_transform([pb, pw, x]) for x in xs]
        loss = dy.esum([dy.dot_product(y, dy.inputTensor(G[:, j])) for j, y in enumerate(ys)])
    else:
        batched = form == "batch"
        x = dy.inputTensor(X.T[..., None].transpose(1, 2, 0), batched=True) if batched else dy.inputTensor(X)
        y = dy.affine_transform([pb, pw, x])
        g = dy.inputTensor(G.T[..., None].transpose(1, 2, 0), batched=True) if batched else dy.inputTensor(G)
        loss = dy.sum_batches(dy.sum_elems(dy.cmult(y, g)))
    loss.backward(full=True)
    W64, X64, G64 = W.astype(np.float64), X.astype(np.float64), G.astype(np.float64)
    tol = dict(rtol=1e-4, atol=2e-5 * np.sqrt(max(k, n)))
    if form == "group":
        got, gx = np.stack([y.npvalue() for y in ys], axis=1), np.stack([x.gradient() for x in xs], axis=1)
    else:
        got, gx = y.npvalue().reshape(m, n), x.gradient().reshape(k, n)
    np.testing.assert_allclose(got, W64 @ X64 + b[:, None], **tol, err_msg=f"b + W X ({form}, {thin_isa})")
    np.testing.assert_allclose(pw.grad_as_array(), G64 @ X64.T, **tol, err_msg="dW")
    np.testing.assert_allclose(pb.grad_as_array(), G64.sum(axis=1), **tol, err_msg="db")
    np.testing.assert_allclose(gx, W64.T @ G64, **tol, err_msg="dX")
