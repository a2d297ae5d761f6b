"""cpu_eigen's fast paths for the LM's output layer: large products through OpenBLAS (when the
scipy-openblas32 wheel is installed) and the vectorised log-sum-exp / softmax gradient of
pickneglogsoftmax, log_softmax and logsumexp, checked against float64 formulas, with the
line lengths that hit every vector tail and values that stress exp's range."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry

try:
    CE = registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)

from dynet_backends.cpu_eigen import _cpu_eigen as M  # noqa: E402


@pytest.fixture(autouse=True)
def on_cpu_eigen():
    dy.set_backend("cpu_eigen")
    yield


def _lse(x: np.ndarray) -> np.ndarray:
    """log-sum-exp over axis 0 in float64."""
    m = x.max(axis=0)
    return m + np.log(np.exp(x - m).sum(axis=0))


LENGTHS = [1, 5, 8, 15, 16, 17, 31, 33, 47, 100, 10000]


@pytest.mark.parametrize("n", LENGTHS)
def test_pickneglogsoftmax_batch_values_and_gradient(n):
    rng = np.random.default_rng(n)
    B = 3
    x = rng.normal(scale=4.0, size=(n, B)).astype(np.float32)
    x[0, 1] = 60.0  # a dominant entry: exp of the others underflows towards 0
    idx = [int(rng.integers(n)) for _ in range(B)]
    m = dy.ParameterCollection()
    p = m.add_parameters((n, B))
    p.set_value(x)
    dy.renew_cg()
    xe = dy.reshape(p, (n,), batch_size=B)  # column b is batch element b
    loss = dy.sum_batches(dy.pickneglogsoftmax_batch(xe, idx) * 1.5)
    got = loss.value()
    x64 = x.astype(np.float64)
    z = _lse(x64)
    want = 1.5 * sum(z[b] - x64[idx[b], b] for b in range(B))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-4)
    loss.backward()
    g = p.grad_as_array()
    want_g = 1.5 * np.exp(x64 - z)
    for b in range(B):
        want_g[idx[b], b] -= 1.5
    np.testing.assert_allclose(g.reshape(n, B), want_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", LENGTHS)
def test_log_softmax_and_logsumexp_lines(n):
    rng = np.random.default_rng(100 + n)
    x = rng.uniform(-90.0, 90.0, size=n).astype(np.float32)  # beyond exp's float range either way
    dy.renew_cg()
    xe = dy.inputVector(x.tolist())
    x64 = x.astype(np.float64)
    z = _lse(x64)
    np.testing.assert_allclose(dy.log_softmax(xe).npvalue(), x64 - z, rtol=1e-5, atol=1e-4)
    parts = [dy.pick(xe, i) for i in range(min(n, 4))]
    want = _lse(x64[: len(parts)])
    assert dy.logsumexp(parts).value() == pytest.approx(want, rel=1e-6, abs=1e-5)


def test_minus_infinity_entries():
    m = dy.ParameterCollection()
    p = m.add_parameters((22,))
    p.set_value(np.array([-np.inf] * 20 + [0.0, 1.0], np.float32))
    dy.renew_cg()
    xe = dy.parameter(p) if hasattr(dy, "parameter") else p
    loss = dy.pickneglogsoftmax(xe, 21)
    assert loss.value() == pytest.approx(np.log(1 + np.e) - 1.0, rel=1e-6)
    loss.backward()
    g = p.grad_as_array().ravel()
    assert np.all(g[:20] == 0.0)
    np.testing.assert_allclose(g[20:], [1 / (1 + np.e), np.e / (1 + np.e) - 1.0], rtol=1e-6)


def test_rowops_isa_is_named():
    assert M.rowops_isa() in ("avx512", "avx2", "baseline")


def test_baseline_isa_gives_the_same_values():
    """DYNET_CPU_EIGEN_ISA=baseline runs the portable Eigen code: same loss and gradient."""
    code = (
        "import numpy as np, dynet_api as dy\n"
        "dy.set_backend('cpu_eigen')\n"
        "from dynet_backends.cpu_eigen import _cpu_eigen as M\n"
        "x = np.random.default_rng(7).normal(scale=3, size=(1003, 4)).astype(np.float32)\n"
        "m = dy.ParameterCollection(); p = m.add_parameters((1003, 4)); p.set_value(x)\n"
        "xe = dy.reshape(p, (1003,), batch_size=4)\n"
        "l = dy.sum_batches(dy.pickneglogsoftmax_batch(xe, [0, 5, 1002, 77]))\n"
        "v = l.value(); l.backward()\n"
        "print(M.rowops_isa(), repr(v), repr(float(np.abs(p.grad_as_array()).sum())))\n"
    )
    outs = []
    for isa in ("", "baseline"):
        env = dict(os.environ, DYNET_CPU_EIGEN_ISA=isa)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split())
    assert outs[1][0] == "baseline"
    assert float(outs[0][1]) == pytest.approx(float(outs[1][1]), rel=1e-6)
    assert float(outs[0][2]) == pytest.approx(float(outs[1][2]), rel=1e-5)


# ------------------------------------------------------------------ the BLAS route


def _product_check(r, c, n):
    rng = np.random.default_rng(r + c + n)
    W = rng.normal(size=(r, c)).astype(np.float32)
    X = rng.normal(size=(c, n)).astype(np.float32)
    G = rng.normal(size=(r, n)).astype(np.float32)
    m = dy.ParameterCollection()
    p = m.add_parameters((r, c))
    p.set_value(W)
    q = m.add_parameters((c, n))
    q.set_value(X)
    dy.renew_cg()
    xe = dy.parameter(q) if hasattr(dy, "parameter") else q
    y = p * xe
    np.testing.assert_allclose(y.npvalue(), W.astype(np.float64) @ X, rtol=1e-4, atol=1e-3)
    loss = dy.dot_product(dy.reshape(y, (r * n,)), dy.inputVector(G.T.ravel().tolist()))
    loss.value()
    loss.backward()
    np.testing.assert_allclose(p.grad_as_array(), G.astype(np.float64) @ X.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(q.grad_as_array(), W.T.astype(np.float64) @ G, rtol=1e-4, atol=1e-3)


def test_large_products_through_blas_when_installed():
    try:
        import scipy_openblas32  # noqa: F401
    except ImportError:
        pytest.skip("scipy-openblas32 not installed: products stay on Eigen")
    be = dy.get_backend() if hasattr(dy, "get_backend") else None
    assert M.blas().startswith("OpenBLAS"), getattr(be, "blas", None)
    _product_check(300, 150, 120)  # 5.4M multiply-adds: above the threshold


def test_every_product_through_blas_matches():
    if not M.blas():
        pytest.skip("no BLAS loaded")
    old, old_side = M.blas_min_work(), M.blas_min_side()
    M.set_blas_min_work(0)
    M.set_blas_min_side(0)
    try:
        _product_check(7, 5, 3)
        _product_check(33, 17, 9)
    finally:
        M.set_blas_min_work(old)
        M.set_blas_min_side(old_side)


def test_thin_large_product_stays_off_blas_and_matches():
    # 1024 x 256 times 16 columns (an LSTM step of rnnlm-batch): above the work threshold
    # but thinner than the shortest side handed to the BLAS; same values either way.
    assert M.blas_min_side() > 16
    _product_check(1024, 256, 16)


def test_blas_switched_off_by_environment():
    code = ("import dynet_api as dy\ndy.set_backend('cpu_eigen')\n"
            "from dynet_backends.cpu_eigen import _cpu_eigen as M\nprint(repr(M.blas()))\n")
    env = dict(os.environ, DYNET_CPU_EIGEN_BLAS="0")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "''"
