"""The LSTM builders' fused path (vanilla_lstm_gates/_c/_h nodes) against their split-op path.

VanillaLSTMBuilder (forget bias 1, no ln_lstm) and CompactVanillaLSTMBuilder step with
three fused nodes per layer; ``transduce`` appends them straight to the graph, and for an
unbatched sequence computes each layer's input products as one matrix product.  The
split path (``_split_step``, the general ops) is the independent computation here:
outputs and parameter gradients must agree on every available backend, for
unbatched and batched inputs, several layers, states set by ``set_s``, dropout masks,
and an input the fused ops do not take (an {n, 1} column), which takes the split ops.
The NumPy-equation checks of both builders are in test_builders.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.builders.lstm import VanillaLSTMBuilder
from dynet_api.graph import StaleExpressionError
from dynet_api.plugins import registry

IN, HID, LAYERS, T = 4, 3, 2, 4
TOL = dict(rtol=1e-5, atol=1e-6)


def _backends():
    out = []
    for name in registry.names():
        rec = registry.load(name)
        out.append(pytest.param(name, marks=[] if rec.backend else pytest.mark.skip(reason=f"{name}: {rec.error}")))
    return out


@pytest.fixture(params=_backends())
def backend(request):
    before = dy.backend_name()
    dy.set_backend(request.param)
    dy.renew_cg()
    yield request.param
    dy.set_backend(before)
    dy.renew_cg()


def _model(cls, layers=LAYERS, seed=0):
    m = dy.ParameterCollection()
    b = cls(layers, IN, HID, m)
    rng = np.random.default_rng(seed)
    for p in m.parameters_list():
        p.set_value(rng.normal(0.0, 0.5, p.shape()))
    return m, b


def _inputs(batch, seed=1):
    rng = np.random.default_rng(seed)
    return [dy.inputTensor(rng.normal(0.0, 1.0, (IN, batch)).astype(np.float32), batched=True) for _ in range(T)]


def _split(b):
    """Force the split-op path for this builder (instance attributes only)."""
    b._fusable = False
    b._direct_layers = lambda: None
    b._step = b._split_step if isinstance(b, VanillaLSTMBuilder) else (
        lambda x, h, c: b._split_step(x, h, c, b._input_batch(x)[0], b._dropping()))


def _run(m, b, batch, mode, s0=None):
    """Outputs (as arrays) and parameter gradients (inputs' table included) of sum(outputs)."""
    dy.renew_cg()
    E = getattr(m, "_test_inputs", None)
    if E is None:
        E = m._test_inputs = m.add_lookup_parameters((T * batch, IN))
        E.init_from_array(np.random.default_rng(3).normal(0.0, 1.0, (T * batch, IN)))
    xs = [dy.lookup_batch(E, list(range(t * batch, (t + 1) * batch))) for t in range(T)]
    s = b.initial_state()
    if s0 is not None:
        rng = np.random.default_rng(7)
        s = s.set_s([dy.inputVector(rng.normal(0, 1, HID)) for _ in range(2 * b.layers)])
    if mode == "transduce":
        ys = s.transduce(xs)
    else:
        ys = []
        for x in xs:
            s = s.add_input(x)
            ys.append(s.output())
    loss = dy.sum_batches(dy.sum_elems(dy.esum(ys)))
    outs = [y.npvalue() for y in ys]
    loss.backward()
    grads = [p.grad_as_array().copy() for p in m.parameters_list()] + [E.grad_as_array().copy()]
    return outs, grads, len(dy.cg().nodes)


@pytest.mark.parametrize("cls", [dy.VanillaLSTMBuilder, dy.CompactVanillaLSTMBuilder])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("mode", ["transduce", "add_input"])
def test_fused_matches_split(backend, cls, batch, mode):
    m, b = _model(cls)
    outs, grads, n_fused = _run(m, b, batch, mode)
    # a second graph: the builder appends from what it learnt in the first (gradients accumulate)
    outs2, grads2, n_fused2 = _run(m, b, batch, mode)
    m2, b2 = _model(cls)
    _split(b2)
    want, want_g, n_split = _run(m2, b2, batch, mode)
    for o, o2, w in zip(outs, outs2, want, strict=True):
        np.testing.assert_allclose(o.reshape(w.shape), w, **TOL)
        np.testing.assert_allclose(o2.reshape(w.shape), w, **TOL)
    for g, g2, w in zip(grads, grads2, want_g, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g2 - g, w, rtol=1e-4, atol=1e-5)
    assert n_fused2 == n_fused
    # inputs + one zeros state + 3 parameters per layer + 3 nodes per layer and step + the loss;
    # an unbatched transduce: + the constant 1 + per layer [x_1..x_T] and W_x [x_1..x_T] + a column per step
    # (not under autobatching, the front end's or a backend's own, where the steps of many sequences join instead)
    projected = mode == "transduce" and batch == 1 and not dy.cg().autobatch
    assert n_fused == T + 1 + 3 * LAYERS + 3 * LAYERS * T + 3 + (1 + 2 * LAYERS + LAYERS * T if projected else 0)
    assert n_split > n_fused + 5 * LAYERS * T


def test_column_input_takes_split_ops(backend):
    """An {n, 1} input is not what the fused gates take: that step uses the split ops."""
    m, b = _model(dy.VanillaLSTMBuilder)
    dy.renew_cg()
    x = dy.inputTensor(np.arange(IN, dtype=np.float32).reshape(IN, 1) / IN)
    got = b.initial_state().transduce([x])[0].npvalue().reshape(-1)
    names = {op.name for op, _, _ in dy.cg().nodes}
    assert "vanilla_lstm_gates" not in names
    dy.renew_cg()
    want = b.initial_state().transduce([dy.inputVector(np.arange(IN) / IN)])[0].npvalue()
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("mode", ["transduce", "add_input"])
def test_fused_from_set_s(backend, mode):
    m, b = _model(dy.VanillaLSTMBuilder)
    outs, grads, _ = _run(m, b, 2, mode, s0=True)
    m2, b2 = _model(dy.VanillaLSTMBuilder)
    _split(b2)
    want, want_g, _ = _run(m2, b2, 2, mode, s0=True)
    for o, w in zip(outs, want, strict=True):
        np.testing.assert_allclose(o, w, **TOL)
    for g, w in zip(grads, want_g, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [dy.VanillaLSTMBuilder, dy.CompactVanillaLSTMBuilder])
def test_fused_dropout_uses_the_same_masks(backend, cls):
    """With dropout the fused step multiplies by the same masks the split ops would."""
    m, b = _model(cls)
    b.set_dropouts(0.4, 0.3)
    dy.renew_cg()
    xs = _inputs(2)
    s = b.initial_state()
    b.set_dropout_masks(2)
    fused = [y.npvalue() for y in s.transduce(xs)]
    _split(b)
    split = [y.npvalue() for y in s.transduce(xs)]
    assert not np.allclose(fused[-1], 0)
    for f, w in zip(fused, split, strict=True):
        np.testing.assert_allclose(f, w, **TOL)


def test_fused_other_forget_bias_takes_split_ops(backend):
    m = dy.ParameterCollection()
    b = dy.VanillaLSTMBuilder(1, IN, HID, m, forget_bias=0.5)
    dy.renew_cg()
    b.initial_state().transduce(_inputs(1))
    names = {op.name for op, _, _ in dy.cg().nodes}
    assert "vanilla_lstm_gates" not in names and "logistic" in names


def test_transduce_immediate_and_errors(backend):
    m, b = _model(dy.VanillaLSTMBuilder)
    dy.renew_cg()
    want = [y.npvalue() for y in b.initial_state().transduce(_inputs(1))]
    dy.renew_cg(immediate_compute=True)
    got = [y.npvalue() for y in b.initial_state().transduce(_inputs(1))]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)
    dy.renew_cg()
    old = _inputs(1)
    dy.renew_cg()
    s = b.initial_state()
    with pytest.raises(StaleExpressionError):
        s.transduce(_inputs(1)[:2] + old[:1])
    with pytest.raises(ValueError, match="expects"):
        s.transduce([dy.inputVector([1.0, 2.0])])
    with pytest.raises(TypeError, match="Expression"):
        s.transduce([np.ones(IN)])
    # the builder still works in this graph after the errors
    np.testing.assert_allclose(s.transduce(_inputs(1))[-1].npvalue(), want[-1], **TOL)


@pytest.mark.parametrize("xb", [1, 3])
def test_gates_with_one_column_weight(backend, xb):
    """The projected path's gates: x {1} (batched or not) times a one-column W_x {4h, 1}."""
    rng = np.random.default_rng(5)
    x0 = rng.normal(0, 1, (1, xb)).astype(np.float32)
    h0 = rng.normal(0, 1, (HID, 1)).astype(np.float32)
    p0 = rng.normal(0, 1, (4 * HID, 1)).astype(np.float32)
    wh0 = rng.normal(0, 1, (4 * HID, HID)).astype(np.float32)
    b0 = rng.normal(0, 1, 4 * HID).astype(np.float32)
    dy.renew_cg()
    x = dy.inputTensor(x0, batched=True)
    h = dy.inputTensor(h0[:, 0])
    p, wh, b = dy.inputTensor(p0), dy.inputTensor(wh0), dy.inputTensor(b0)
    g = dy.vanilla_lstm_gates(x, h, p, wh, b)
    w = dy.inputTensor(rng.normal(0, 1, (4 * HID, xb)).astype(np.float32), batched=True)
    loss = dy.sum_batches(dy.dot_product(g, w))
    loss.backward(full=True)
    pre = p0 @ x0 + wh0 @ h0 + b0[:, None]
    pre[HID:2 * HID] += 1.0
    want = np.concatenate([1 / (1 + np.exp(-pre[:3 * HID])), np.tanh(pre[3 * HID:])])
    np.testing.assert_allclose(g.npvalue().reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    wv = w.npvalue().reshape(want.shape)
    r = wv * np.concatenate([want[:3 * HID] * (1 - want[:3 * HID]), 1 - want[3 * HID:] ** 2])
    np.testing.assert_allclose(p.gradient().reshape(-1), (r * x0).sum(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x.gradient().reshape(-1), (p0[:, 0] @ r), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batched", [False, True])
def test_the_c_steps_build_the_python_loops_graph(monkeypatch, layers, batched):
    """csrc/lstm_steps.c against _fused_run_py (the specification): the same nodes, dims and
    gradient flags, node for node, for sequences whose dims change midway (a memo miss in the
    middle: the Python loop takes that step, the C twin the rest) and for frozen weights."""
    from dynet_api.builders import lstm

    if lstm._lstm_steps is None:
        pytest.skip("the C accelerator is not built (or DYNET_API_PURE_PYTHON is set)")

    def build():
        dy.set_backend("reference_numpy")
        dy.reset_random_seed(11)
        m = dy.ParameterCollection()
        b = dy.LSTMBuilder(layers, IN, HID, m)
        E = m.add_lookup_parameters((20, IN))
        dy.renew_cg()
        rows = [[1], [2], [3, 4], [5, 6], [7], [8]] if batched else [[k] for k in range(6)]
        xs = [dy.lookup_batch(E, r) if batched else dy.lookup(E, r[0], update=k != 2) for k, r in enumerate(rows)]
        ys = b.initial_state().transduce(xs)
        ys += b.initial_state().transduce(list(reversed(xs)))
        cg = dy.cg()
        return ([(n[0].name, tuple(n[1])) for n in cg.nodes], list(cg.dims), [bool(g) for g in cg.ng],
                [y.i for y in ys], dy.esum([dy.sum_elems(dy.sum_batches(y)) for y in ys]).value())

    before = dy.backend_name()
    try:
        got = build()
        monkeypatch.setattr(lstm, "_lstm_steps", None)
        want = build()
    finally:
        dy.set_backend(before)
        dy.renew_cg()
    assert got[:4] == want[:4]
    assert got[4] == pytest.approx(want[4], rel=1e-6)
    assert any(name == "vanilla_lstm_gates" for name, _ in got[0])
