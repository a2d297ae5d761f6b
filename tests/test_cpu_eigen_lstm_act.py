"""cpu_eigen's fused LSTM gates and output, and its plain logistic and tanh (their AVX2 paths where the CPU
has one) against the NumPy reference backend, over pre-activations from -30 to 30 (logistic's exp branch below -9,
tanh's clamp and its tiny-value branch), gate sizes that leave vector tails, and batches."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry


def _have(name: str) -> bool:
    return name in registry.names() and registry.load(name).backend is not None


pytestmark = pytest.mark.skipif(not (_have("cpu_eigen") and _have("reference_numpy")),
                                reason="needs cpu_eigen and reference_numpy")


def _run(backend, xs, hs, Wx, Wh, b, c0):
    before = dy.backend_name()
    dy.set_backend(backend)
    try:
        dy.renew_cg()
        bd = xs.shape[-1]
        x = dy.inputTensor(xs, batched=True) if bd > 1 else dy.inputTensor(xs[:, 0])
        h = dy.inputTensor(hs, batched=True) if bd > 1 else dy.inputTensor(hs[:, 0])
        c = dy.inputTensor(c0[:, 0])
        g = dy.vanilla_lstm_gates(x, h, dy.inputTensor(Wx), dy.inputTensor(Wh), dy.inputTensor(b))
        y = dy.vanilla_lstm_h(dy.vanilla_lstm_c(c, g), g)
        return g.npvalue(), y.npvalue()
    finally:
        dy.set_backend(before)
        dy.renew_cg()


@pytest.mark.parametrize("hid,bd", [(50, 1), (64, 1), (3, 1), (13, 2), (50, 3)])
def test_gates_and_output_match_reference_over_wide_range(hid, bd):
    rng = np.random.default_rng(hid * 10 + bd)
    X, G = 7, 4 * hid
    xs = rng.standard_normal((X, bd)).astype(np.float32)
    hs = rng.standard_normal((hid, bd)).astype(np.float32)
    Wx = (rng.standard_normal((G, X)) * 0.05).astype(np.float32)
    Wh = (rng.standard_normal((G, hid)) * 0.05).astype(np.float32)
    # the bias sets the pre-activations: a sweep over [-30, 30] plus values near zero
    b = np.linspace(-30, 30, G).astype(np.float32)
    b[::5] = rng.uniform(-1e-3, 1e-3, b[::5].shape)
    c0 = (rng.standard_normal((hid, 1)) * 10).astype(np.float32)
    g1, y1 = _run("cpu_eigen", xs, hs, Wx, Wh, b, c0)
    g2, y2 = _run("reference_numpy", xs, hs, Wx, Wh, b, c0)
    np.testing.assert_allclose(g1, g2, rtol=2e-5, atol=1e-7)
    # the cell sums terms of up to ~30 that may cancel: absolute tolerance at float32 rounding of those
    np.testing.assert_allclose(y1, y2, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("n", [1, 7, 8, 16, 21])
def test_elementwise_tanh_shares_the_gates_tanh_and_matches_numpy(n):
    """dy.tanh runs the gates' vectorised tanh (vector tails of every length below 8 included):
    NaN stays NaN, +-inf and the clamp give +-1, tiny values pass through, and its gradient holds."""
    rng = np.random.default_rng(n)
    v = rng.uniform(-12.0, 12.0, size=n).astype(np.float32)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 3e-4, -1e-6, 8.5, -30.0], dtype=np.float32)
    v[: min(n, len(special))] = special[: min(n, len(special))]
    before = dy.backend_name()
    dy.set_backend("cpu_eigen")
    try:
        dy.renew_cg()
        x = dy.inputVector(v)
        y = dy.tanh(x)
        got = y.npvalue().reshape(-1)
        np.testing.assert_allclose(got, np.tanh(v.astype(np.float64)), rtol=2e-6, atol=2e-7)
        finite = np.isfinite(v)
        dy.sum_elems(dy.cmult(y, dy.inputVector(np.where(finite, 1.0, 0.0)))).backward(full=True)
        g = x.gradient().reshape(-1)
        t = np.tanh(v.astype(np.float64))
        np.testing.assert_allclose(g[finite], (1 - t * t)[finite], rtol=1e-5, atol=1e-6)
    finally:
        dy.set_backend(before)
        dy.renew_cg()


def _act_values_and_grads(backend, op, xs):
    before = dy.backend_name()
    dy.set_backend(backend)
    try:
        dy.renew_cg()
        p = dy.inputTensor(xs)
        y = op(p)
        w = dy.inputTensor(np.linspace(-1.0, 1.0, xs.size, dtype=np.float32).reshape(xs.shape))
        loss = dy.sum_elems(dy.cmult(y, w))
        loss.backward(full=True)
        return y.npvalue(), p.gradient()
    finally:
        dy.set_backend(before)
        dy.renew_cg()


@pytest.mark.parametrize("op", ["logistic", "tanh"])
@pytest.mark.parametrize("n", [1, 7, 8, 13, 64, 301])
def test_plain_logistic_and_tanh_match_reference_over_wide_range(op, n):
    """The plain kernels (AVX2 blocks of 8 and a masked tail where the CPU has them)."""
    xs = np.linspace(-30.0, 30.0, n, dtype=np.float32)
    xs[::5] *= 1e-4  # tanh's tiny-value branch
    f = getattr(dy, op)
    v_ce, g_ce = _act_values_and_grads("cpu_eigen", f, xs)
    v_ref, g_ref = _act_values_and_grads("reference_numpy", f, xs)
    np.testing.assert_allclose(v_ce, v_ref, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(g_ce, g_ref, rtol=1e-5, atol=1e-6)  # 1 - y^2 where y rounds to +-1


@pytest.mark.parametrize("op", ["logistic", "tanh"])
def test_plain_logistic_and_tanh_keep_non_finite_values(op):
    xs = np.array([np.nan, np.inf, -np.inf, 0.5, -0.5, 3.0, -12.0, 40.0, 0.0], dtype=np.float32)
    v_ce, _ = _act_values_and_grads("cpu_eigen", getattr(dy, op), xs)
    v_ref, _ = _act_values_and_grads("reference_numpy", getattr(dy, op), xs)
    np.testing.assert_allclose(v_ce, v_ref, rtol=2e-6, atol=1e-7)
