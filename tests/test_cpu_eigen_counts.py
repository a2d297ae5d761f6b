"""cpu_eigen's kernel-call counters (dynet_api.profiling's one definition of a kernel call): its
C++ executor counts the graph that the front end counts on reference_numpy the same, node for
node and call for call, and its batching of products sharing a weight saves calls."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config, profiling
from dynet_api.plugins import registry

try:
    CE = registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)


@pytest.fixture(autouse=True)
def back_to_default():
    yield
    dy.set_backend("cpu_eigen")
    dy.renew_cg()


def _tagger_counts(backend: str, autobatching: bool, update_emb: bool = True) -> dict:
    """Per-op (nodes, calls) of one forward and backward of a small tagger on ``backend``."""
    dy.set_backend(backend)
    m = dy.ParameterCollection()
    emb = m.add_lookup_parameters((10, 4), init=dy.NormalInitializer(0, 0.3))
    W = m.add_parameters((5, 8), init=dy.NormalInitializer(0, 0.3))
    b = m.add_parameters(5, init=dy.ConstInitializer(0.1))
    dy.renew_cg(autobatching=autobatching)
    profiling.reset()
    words = [3, 1, 4, 1, 5]
    xs = [dy.lookup(emb, w, update=update_emb) for w in words]
    losses = []
    for k, x in enumerate(xs):
        h = dy.tanh(dy.concatenate([x, xs[k - 1]]))
        y = dy.affine_transform([b, W, h])
        losses.append(dy.pickneglogsoftmax(y, k % 5))
    loss = dy.esum(losses)
    value = loss.value()
    loss.backward()
    got = {name: (c.nodes, c.calls) for name, c in profiling.counts().items()}
    return got, value


@pytest.mark.parametrize("update_emb", [True, False])
def test_unbatched_counts_equal_the_front_ends(update_emb):
    want, want_v = _tagger_counts("reference_numpy", False, update_emb)
    got, got_v = _tagger_counts("cpu_eigen", False, update_emb)
    assert got_v == pytest.approx(want_v, rel=1e-5)
    assert got == want
    # by hand: 5 lookups (one call each, one hand-over each when updated); each affine_transform's
    # backward reaches b and W, and h only when the embeddings need a gradient; W and b are one
    # node each per graph, with one gradient hand-over each
    assert got["lookup"] == (5, 10 if update_emb else 5)
    assert got["affine_transform"] == (5, 5 + 5 * (3 if update_emb else 2))
    assert got["parameter"] == (2, 4)
    assert got["sum"] == (1, 1 + 5)


def _forest_counts(autobatching: bool) -> dict:
    dy.set_backend("cpu_eigen")
    m = dy.ParameterCollection()
    W = m.add_parameters((6, 6), init=dy.NormalInitializer(0, 0.3))
    dy.renew_cg(autobatching=autobatching)
    profiling.reset()
    rng = np.random.default_rng(0)
    outs = [dy.tanh(W * dy.inputVector(rng.normal(size=6))) for _ in range(8)]
    loss = dy.sum_elems(dy.esum(outs))
    loss.value()
    loss.backward()
    return {name: (c.nodes, c.calls) for name, c in profiling.counts().items()}


def test_batching_products_and_elementwise_ops_saves_calls():
    off = _forest_counts(False)
    on = _forest_counts(True)
    assert off["matmul"] == (8, 8 + 8)  # each product alone, and its dW (the inputs need none)
    assert on["matmul"][0] == 8  # the same nodes
    assert on["matmul"][1] < off["matmul"][1]
    assert off["tanh"] == (8, 16)  # each alone, forward and backward
    assert on["matmul"] == (8, 2) and on["tanh"] == (8, 2)  # one group: one call forward, one backward


def test_profiling_times_the_executors_calls(monkeypatch):
    monkeypatch.setitem(config.settings, "profiling", 1)
    dy.set_backend("reference_numpy")  # a fresh executor on the way back reads the setting
    dy.set_backend("cpu_eigen")
    try:
        CE.make_executor(dy.cg())
        profiling.reset()
        x = dy.inputVector([1.0, 2.0])
        dy.tanh(x).value()
        secs = CE.kernel_counts()["tanh"][2]
        assert secs > 0
    finally:
        monkeypatch.setitem(config.settings, "profiling", 0)
        CE.make_executor(dy.cg())


def test_reset_clears_the_executors_counts():
    dy.set_backend("cpu_eigen")
    dy.renew_cg()
    dy.tanh(dy.inputVector([1.0])).value()
    assert CE.kernel_counts()
    profiling.reset()
    assert CE.kernel_counts() == {}


def _lstm_counts(backend: str) -> dict:
    dy.set_backend(backend)
    m = dy.ParameterCollection()
    lstm = dy.VanillaLSTMBuilder(1, 3, 4, m)
    emb = m.add_lookup_parameters((6, 3), init=dy.NormalInitializer(0, 0.3))
    dy.renew_cg(autobatching=False)
    profiling.reset()
    s = lstm.initial_state()
    for w in (1, 4, 2):
        s = s.add_input(emb[w])
    loss = dy.squared_norm(s.output())
    loss.value()
    loss.backward()
    return {name: (c.nodes, c.calls) for name, c in profiling.counts().items()}


def test_unbatched_lstm_counts_equal_the_front_ends():
    got = _lstm_counts("cpu_eigen")
    assert got == _lstm_counts("reference_numpy")
    assert any(name.startswith("vanilla_lstm") for name in got)
