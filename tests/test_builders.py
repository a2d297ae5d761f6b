"""RNN and softmax builders against hand-unrolled NumPy computations of DyNet's equations.

Every builder runs a short sequence (unbatched and batched) with random parameter
values; its outputs must equal the same equations unrolled here in float64 with the
values read back through ``as_array()``, and the parameter gradients of a scalar loss
must equal central finite differences of that NumPy computation.  The equations,
parameter shapes, names and creation order are DyNet's (dynet/rnn.cc, gru.cc,
lstm.cc, fast-lstm.cc, cfsm-builder.cc).  The main check runs on every available
backend.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry

IN, HID, LAYERS, T = 3, 3, 2, 3
RTOL, ATOL = 2e-4, 2e-5
GRAD_RTOL, GRAD_ATOL = 2e-3, 2e-4


def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


# ===================================================================== NumPy cells
# Each takes the per-layer parameter arrays (DyNet's order), an input (in, B) and the
# previous state (None before the first input, as DyNet's builders distinguish it), and
# returns (h per layer, c per layer or None).


def np_simple(P, extra, x, h, c):
    hs = []
    for l, (wx, wh, b) in enumerate(P):
        a = wx @ x + b[:, None]
        if h is not None:
            a = a + wh @ h[l]
        x = np.tanh(a)
        hs.append(x)
    return hs, None


def np_gru(P, extra, x, h, c):
    hs = []
    for l, (xz, hz, bz, xr, hr, br, xh, hh, bh) in enumerate(P):
        hp = h[l] if h is not None else np.zeros((xz.shape[0], x.shape[1]))
        z = sig(xz @ x + hz @ hp + bz[:, None])
        r = sig(xr @ x + hr @ hp + br[:, None])
        cand = np.tanh(xh @ x + hh @ (r * hp) + bh[:, None])
        x = (1 - z) * hp + z * cand
        hs.append(x)
    return hs, None


def layer_norm(v, g, b):
    mu = v.mean(axis=0, keepdims=True)
    sd = np.sqrt(((v - mu) ** 2).mean(axis=0, keepdims=True))
    return g[:, None] * (v - mu) / (sd + 1e-8) + b[:, None]


def make_np_vanilla(forget_bias=1.0, ln=False):
    def cell(P, extra, x, h, c):
        hs, cs = [], []
        for l, (wx, wh, b) in enumerate(P):
            n = wh.shape[1]
            if ln:
                gh, bh, gx, bx, gc, bc = extra[l]
                a = b[:, None] + layer_norm(wx @ x, gx, bx)
                if h is not None:
                    a = a + layer_norm(wh @ h[l], gh, bh)
            else:
                a = wx @ x + b[:, None] + (wh @ h[l] if h is not None else 0)
            i, f, o, g = sig(a[:n]), sig(a[n:2 * n] + forget_bias), sig(a[2 * n:3 * n]), np.tanh(a[3 * n:])
            ct = i * g + (f * c[l] if h is not None else 0)
            x = o * np.tanh(layer_norm(ct, gc, bc) if ln else ct)
            hs.append(x)
            cs.append(ct)
        return hs, cs
    return cell


def np_coupled(P, extra, x, h, c):
    hs, cs = [], []
    for l, (x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc) in enumerate(P):
        hp = h[l] if h is not None else 0 * (x2i @ x)
        cp = c[l] if h is not None else 0 * (x2i @ x)
        i = sig(x2i @ x + h2i @ hp + c2i @ cp + bi[:, None])
        w = np.tanh(x2c @ x + h2c @ hp + bc[:, None])
        ct = (1 - i) * cp + i * w
        o = sig(x2o @ x + h2o @ hp + c2o @ ct + bo[:, None])
        x = o * np.tanh(ct)
        hs.append(x)
        cs.append(ct)
    return hs, cs


def np_fast(P, extra, x, h, c):
    hs, cs = [], []
    for l, (x2i, h2i, _c2i, bi, x2o, h2o, _c2o, bo, x2c, h2c, bc) in enumerate(P):
        hp = h[l] if h is not None else 0 * (x2i @ x)
        cp = c[l] if h is not None else 0 * (x2i @ x)
        i = sig(x2i @ x + h2i @ hp + bi[:, None])
        ct = (1 - i) * cp + i * np.tanh(x2c @ x + h2c @ hp + bc[:, None])
        x = sig(x2o @ x + h2o @ hp + bo[:, None]) * np.tanh(ct)
        hs.append(x)
        cs.append(ct)
    return hs, cs


def np_run(cell, P, extra, xs, h=None, c=None):
    outs = []
    for x in xs:
        h, c = cell(P, extra, x, h, c)
        outs.append(h[-1])
    return outs, h, c


# ===================================================================== cases

H4 = 4 * HID
# (builder class, kwargs, NumPy cell, per-layer parameter shapes for layer 0, subcollection, is_lstm)
CASES = {
    "SimpleRNN": (dy.SimpleRNNBuilder, {}, np_simple, [(HID, IN), (HID, HID), (HID,)], "simple-rnn-builder", False),
    "GRU": (dy.GRUBuilder, {}, np_gru, [(HID, IN), (HID, HID), (HID,)] * 3, "gru-builder", False),
    "VanillaLSTM": (dy.VanillaLSTMBuilder, {}, make_np_vanilla(), [(H4, IN), (H4, HID), (H4,)],
                    "vanilla-lstm-builder", True),
    "VanillaLSTM-forget-bias": (dy.VanillaLSTMBuilder, {"forget_bias": 0.25}, make_np_vanilla(0.25),
                                [(H4, IN), (H4, HID), (H4,)], "vanilla-lstm-builder", True),
    "VanillaLSTM-ln": (dy.VanillaLSTMBuilder, {"ln_lstm": True}, make_np_vanilla(ln=True),
                       [(H4, IN), (H4, HID), (H4,)], "vanilla-lstm-builder", True),
    "SparseLSTM": (dy.SparseLSTMBuilder, {}, make_np_vanilla(), [(H4, IN), (H4, HID), (H4,)],
                   "vanilla-lstm-builder", True),
    "CompactVanillaLSTM": (dy.CompactVanillaLSTMBuilder, {}, make_np_vanilla(), [(H4, IN), (H4, HID), (H4,)],
                           "compact-vanilla-lstm-builder", True),
    "CoupledLSTM": (dy.CoupledLSTMBuilder, {}, np_coupled,
                    [(HID, IN), (HID, HID), (HID, HID), (HID,)] * 2 + [(HID, IN), (HID, HID), (HID,)],
                    "lstm-builder", True),
    "FastLSTM": (dy.FastLSTMBuilder, {}, np_fast,
                 [(HID, IN), (HID, HID), (HID, 1), (HID,)] * 2 + [(HID, IN), (HID, HID), (HID,)],
                 "fast-lstm-builder", True),
}


def _backends():
    out = []
    for name in registry.names():
        rec = registry.load(name)
        out.append(pytest.param(name, marks=[] if rec.backend else pytest.mark.skip(reason=f"{name}: {rec.error}")))
    return out


@pytest.fixture
def on_backend(request):
    """Run the test with ``request.param`` as the default backend, then restore the previous one."""
    before = dy.backend_name()
    dy.set_backend(request.param)
    dy.renew_cg()
    yield request.param
    dy.set_backend(before)
    dy.renew_cg()


def randomize(m: dy.ParameterCollection, rng, scale=0.6) -> None:
    for p in m.parameters_list():
        p.set_value(rng.normal(0.0, scale, p.shape()))


def build(name, rng, layers=LAYERS):
    cls, kw, cell, _, _, _ = CASES[name]
    m = dy.ParameterCollection()
    b = cls(layers, IN, HID, m, **kw)
    randomize(m, rng)
    return m, b, cell


def arrays(b, m):
    """Per-layer parameter arrays (builder order) and, for ln_lstm, the per-layer LN arrays."""
    P = [[p.as_array().astype(np.float64) for p in layer] for layer in b.get_parameters()]
    sub = b.param_collection().name()
    ln = [p.as_array().astype(np.float64) for p in m.parameters_list() if not p.name().startswith(sub)]
    extra = [ln[6 * k:6 * k + 6] for k in range(len(ln) // 6)]
    return P, extra


def inputs(rng, batch, n=T):
    return [rng.normal(0.0, 1.0, (IN, batch)) for _ in range(n)]


def as_expr(x: np.ndarray):
    return dy.inputVector(x[:, 0]) if x.shape[1] == 1 else dy.inputTensor(x, batched=True)


def as_cols(e) -> np.ndarray:
    v = e.npvalue()
    return v[:, None] if v.ndim == 1 else v


def loss_expr(outs, ws):
    return dy.esum([dy.sum_batches(dy.dot_product(dy.inputVector(w), y)) for y, w in zip(outs, ws, strict=True)])


def np_loss(outs, ws):
    return sum(float((w[:, None] * y).sum()) for y, w in zip(outs, ws, strict=True))


def fd_grads(cell, P, extra, xs, ws, eps=1e-6):
    """Central differences of the NumPy loss for every entry of every builder parameter."""
    grads = []
    for layer in P:
        gl = []
        for a in layer:
            g = np.zeros_like(a)
            for idx in np.ndindex(a.shape):
                old = a[idx]
                a[idx] = old + eps
                up = np_loss(np_run(cell, P, extra, xs)[0], ws)
                a[idx] = old - eps
                dn = np_loss(np_run(cell, P, extra, xs)[0], ws)
                a[idx] = old
                g[idx] = (up - dn) / (2 * eps)
            gl.append(g)
        grads.append(gl)
    return grads


# ===================================================================== values and gradients


@pytest.mark.parametrize("on_backend", _backends(), indirect=True)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(CASES))
def test_outputs_and_gradients_match_unrolled_equations(name, batch, on_backend, rng):
    m, b, cell = build(name, rng)
    P, extra = arrays(b, m)
    xs = inputs(rng, batch)
    ws = [rng.normal(0.0, 1.0, HID) for _ in range(T)]

    s = b.initial_state()
    outs = s.transduce([as_expr(x) for x in xs])
    want, h_np, c_np = np_run(cell, P, extra, xs)
    for y, w in zip(outs, want, strict=True):
        assert y.dim() == ((HID,), batch)
        np.testing.assert_allclose(as_cols(y), w, rtol=RTOL, atol=ATOL)

    loss = loss_expr(outs, ws)
    np.testing.assert_allclose(loss.value(), np_loss(want, ws), rtol=RTOL, atol=ATOL)
    loss.backward()
    fd = fd_grads(cell, P, extra, xs, ws)
    for layer, glayer in zip(b.get_parameters(), fd, strict=True):
        for p, g in zip(layer, glayer, strict=True):
            np.testing.assert_allclose(p.grad_as_array(), g, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=p.name())


@pytest.mark.parametrize("name", list(CASES))
def test_states_h_s_prev_and_add_inputs(name, rng):
    m, b, cell = build(name, rng)
    P, extra = arrays(b, m)
    is_lstm = CASES[name][5]
    xs = inputs(rng, 2)
    s0 = b.initial_state()
    assert s0.output() is None and s0.h() == () and s0.s() == () and s0.prev() is None and s0.b() is b
    assert b.initial_state() is s0  # cached for the graph, as DyNet's binding does
    states = s0.add_inputs([as_expr(x) for x in xs])
    _, h_np, c_np = np_run(cell, P, extra, xs)
    last = states[-1]
    assert last.prev() is states[-2] and states[0].prev() is s0
    assert len(last.h()) == LAYERS
    for e, w in zip(last.h(), h_np, strict=True):
        np.testing.assert_allclose(as_cols(e), w, rtol=RTOL, atol=ATOL)
    want_s = (c_np + h_np) if is_lstm else h_np
    assert len(last.s()) == len(want_s)
    for e, w in zip(last.s(), want_s, strict=True):
        np.testing.assert_allclose(as_cols(e), w, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(as_cols(last.output()), h_np[-1], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(CASES))
def test_initial_state_vectors_and_set_s_set_h(name, rng):
    m, b, cell = build(name, rng)
    P, extra = arrays(b, m)
    is_lstm = CASES[name][5]
    xs = inputs(rng, 1)
    h0 = [rng.normal(0, 1, (HID, 1)) for _ in range(LAYERS)]
    c0 = [rng.normal(0, 1, (HID, 1)) for _ in range(LAYERS)]
    vecs = [v[:, 0] for v in ((c0 + h0) if is_lstm else h0)]
    # initial_state(vecs) == initial_state().set_s(vecs) == initial_state_from_raw_vectors(arrays)
    for s in (b.initial_state([dy.inputVector(v) for v in vecs]),
              b.initial_state().set_s([dy.inputVector(v) for v in vecs]),
              b.initial_state_from_raw_vectors(vecs)):
        outs = s.transduce([as_expr(x) for x in xs])
        want, _, _ = np_run(cell, P, extra, xs, h0, c0 if is_lstm else None)
        for y, w in zip(outs, want, strict=True):
            np.testing.assert_allclose(as_cols(y), w, rtol=RTOL, atol=ATOL)
    if is_lstm:
        # set_h keeps the previous cell (zeros at the start); set_s with cells only keeps h (zeros at the start).
        s = b.initial_state().set_h([dy.inputVector(v[:, 0]) for v in h0])
        want, _, _ = np_run(cell, P, extra, xs, h0, [np.zeros((HID, 1))] * LAYERS)
        np.testing.assert_allclose(as_cols(s.transduce([as_expr(xs[0])])[0]), want[0], rtol=RTOL, atol=ATOL)
        s = b.initial_state().set_s([dy.inputVector(v[:, 0]) for v in c0])
        want, _, _ = np_run(cell, P, extra, xs, [np.zeros((HID, 1))] * LAYERS, c0)
        np.testing.assert_allclose(as_cols(s.transduce([as_expr(xs[0])])[0]), want[0], rtol=RTOL, atol=ATOL)
        with pytest.raises(ValueError, match="set_s expects"):
            b.initial_state().set_s([dy.inputVector(v[:, 0]) for v in h0[:1]])
    else:
        s = b.initial_state().set_h([dy.inputVector(v[:, 0]) for v in h0])
        want, _, _ = np_run(cell, P, extra, xs, h0)
        np.testing.assert_allclose(as_cols(s.transduce([as_expr(xs[0])])[0]), want[0], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="set_h expects"):
        b.initial_state().set_h([dy.inputVector(h0[0][:, 0])] * (LAYERS + 1))


# ===================================================================== layout, names, init

@pytest.mark.parametrize("name", list(CASES))
def test_parameter_layout_names_and_init_follow_dynet(name):
    cls, kw, _, shapes, sub, _ = CASES[name]
    m = dy.ParameterCollection()
    first = cls(LAYERS, IN, HID, m, **kw)
    second = cls(1, IN, HID, m, **kw)
    params = first.get_parameters()
    assert len(params) == LAYERS
    assert [tuple(p.shape()) for p in params[0]] == shapes
    # layer 2 reads the hidden state of layer 1
    assert [tuple(p.shape()) for p in params[1]] == [s if s[-1:] != (IN,) or len(s) == 1 else s[:-1] + (HID,)
                                                     for s in shapes]
    flat = [p for layer in params for p in layer]
    assert [p.name() for p in flat] == [f"/{sub}/_{k}" for k in range(len(flat))]
    assert first.param_collection().name() == f"/{sub}/"
    assert second.param_collection().name() == f"/{sub}_1/"
    assert [p.name() for p in first.param_collection().parameters_list()] == [p.name() for p in flat]
    for p in flat:
        if len(p.shape()) == 1:  # every bias starts at zero (DyNet's ParameterInitConst(0))
            assert not p.as_array().any(), p.name()
    if kw.get("ln_lstm"):
        ln = [p for p in m.parameters_list() if not p.name().startswith(f"/{sub}")]
        assert len(ln) == 6 * (LAYERS + 1)  # in the parent collection, six per layer
        for k in range(LAYERS):
            g_h, b_h, g_x, b_x, g_c, b_c = ln[6 * k:6 * k + 6]
            assert [p.shape() for p in (g_h, b_h, g_x, b_x, g_c, b_c)] == [(H4,)] * 4 + [(HID,)] * 2
            assert (g_h.as_array() == 1).all() and (g_x.as_array() == 1).all() and (g_c.as_array() == 1).all()
            assert not (b_h.as_array().any() or b_x.as_array().any() or b_c.as_array().any())
        # DyNet creates each layer's LN parameters right after that layer's weights
        order = [p.name() for p in m.parameters_list()]
        assert order[:9] == ["/vanilla-lstm-builder/_0", "/vanilla-lstm-builder/_1", "/vanilla-lstm-builder/_2",
                             "/_0", "/_1", "/_2", "/_3", "/_4", "/_5"]


def test_lstm_builder_is_vanilla_and_float_sizes_are_accepted():
    assert dy.LSTMBuilder is dy.VanillaLSTMBuilder
    b = dy.VanillaLSTMBuilder(1, 4, 6 / 2, dy.ParameterCollection())
    assert b.get_parameters()[0][1].shape() == (12, 3)
    with pytest.raises(ValueError, match="hidden_dim"):
        dy.VanillaLSTMBuilder(1, 4, 2.5, dy.ParameterCollection())
    with pytest.raises(TypeError, match="ParameterCollection"):
        dy.SimpleRNNBuilder(1, 2, 3, "not a model")


# ===================================================================== graph handling and errors


def test_parameter_expressions_need_initial_state_in_this_graph(rng):
    m, b, _ = build("VanillaLSTM", rng)
    with pytest.raises(ValueError, match="initial_state"):
        b.get_parameter_expressions()
    b.initial_state()
    exprs = b.get_parameter_expressions()
    for le, lp in zip(exprs, b.get_parameters(), strict=True):
        for e, p in zip(le, lp, strict=True):
            np.testing.assert_array_equal(e.npvalue().reshape(p.shape()), p.as_array())
    dy.renew_cg()
    with pytest.raises(ValueError, match="stale"):
        b.get_parameter_expressions()


def test_state_from_an_old_graph_raises(rng):
    _, b, _ = build("GRU", rng)
    s = b.initial_state()
    dy.renew_cg()
    with pytest.raises(ValueError, match="stale builder"):
        s.add_input(dy.inputVector([1.0, 2.0, 3.0]))
    s2 = b.initial_state()  # a new graph: a new initial state
    assert s2 is not s
    assert s2.add_input(dy.inputVector([1.0, 2.0, 3.0])).output().dim() == ((HID,), 1)


def test_wrong_input_dim_names_the_builder(rng):
    _, b, _ = build("VanillaLSTM", rng)
    with pytest.raises(ValueError, match=r"VanillaLSTMBuilder.add_input: input of dim \{4\}"):
        b.initial_state().add_input(dy.inputVector([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(TypeError, match="Expression"):
        b.initial_state().add_input([1.0, 2.0, 3.0])


def test_update_false_gives_no_parameter_gradient(rng):
    _, b, _ = build("VanillaLSTM", rng)
    out = b.initial_state(update=False).transduce([dy.inputVector([1.0, 2.0, 3.0])] * 2)[-1]
    dy.sum_elems(out).backward()
    assert all(not p.grad_as_array().any() for layer in b.get_parameters() for p in layer)
    dy.renew_cg()
    out = b.initial_state().transduce([dy.inputVector([1.0, 2.0, 3.0])] * 2)[-1]
    dy.sum_elems(out).backward()
    assert any(p.grad_as_array().any() for layer in b.get_parameters() for p in layer)


def test_stacked_rnn_state_chains_single_layer_builders(rng):
    m = dy.ParameterCollection()
    b1, b2 = dy.SimpleRNNBuilder(1, IN, HID, m), dy.SimpleRNNBuilder(1, HID, HID, m)
    deep = dy.SimpleRNNBuilder(2, IN, HID, dy.ParameterCollection())
    randomize(m, rng)
    for dst, src in zip([p for layer in deep.get_parameters() for p in layer], m.parameters_list(), strict=True):
        dst.set_value(src.as_array())
    xs = inputs(rng, 1)
    st = dy.StackedRNNState([b1.initial_state(), b2.initial_state()])
    states = st.add_inputs([as_expr(x) for x in xs])
    want = deep.initial_state().transduce([as_expr(x) for x in xs])
    np.testing.assert_allclose(states[-1].output().npvalue(), want[-1].npvalue(), rtol=1e-6, atol=1e-7)
    assert states[-1].prev() is states[-2] and len(states[-1].h()) == 2


# ===================================================================== dropout


def _mask_values(e) -> np.ndarray:
    v = e.npvalue()
    return v[:, None] if v.ndim == 1 else v


@pytest.mark.parametrize("name", ["SimpleRNN", "VanillaLSTM", "CompactVanillaLSTM", "SparseLSTM"])
@pytest.mark.parametrize("batch", [1, 3])
def test_variational_dropout_one_mask_per_sequence(name, batch, rng):
    m, b, cell = build(name, rng)
    P, extra = arrays(b, m)
    d, d_h = 0.5, 0.25
    b.set_dropouts(d, d_h)
    s = b.initial_state()
    if batch > 1:
        b.set_dropout_masks(batch)
    xs = inputs(rng, batch)
    outs = s.transduce([as_expr(x) for x in xs])
    masks = [(_mask_values(mx), _mask_values(mh)) for mx, mh in b._masks]
    for (mx, mh), idim in zip(masks, [IN, HID], strict=True):
        assert mx.shape == (idim, batch) and mh.shape == (HID, batch)
        assert np.all(np.isclose(mx, 0.0) | np.isclose(mx, 1 / (1 - d)))
        assert np.all(np.isclose(mh, 0.0) | np.isclose(mh, 1 / (1 - d_h)))

    # The same masks at every step: unroll with them applied to each layer's input and recurrent input.
    def dropped(Pl, extra_, x, h, c):
        hs, cs = [], []
        for l in range(LAYERS):
            x = x * masks[l][0]
            hl = None if h is None else [h[l] * masks[l][1]]
            cl = None if c is None else [c[l]]
            ho, co = cell([Pl[l]], [extra_[l]] if extra_ else [], x, hl, cl)
            x = ho[0]
            hs.append(ho[0])
            if co is not None:
                cs.append(co[0])
        return hs, (cs or None)

    want, _, _ = np_run(dropped, P, extra, xs)
    for y, w in zip(outs, want, strict=True):
        np.testing.assert_allclose(as_cols(y), w, rtol=RTOL, atol=ATOL)
    b.disable_dropout()
    dy.renew_cg()
    plain = b.initial_state().transduce([as_expr(x) for x in xs])
    np.testing.assert_allclose(as_cols(plain[-1]), np_run(cell, P, extra, xs)[0][-1], rtol=RTOL, atol=ATOL)


def test_coupled_lstm_dropout_masks_input_h_and_peephole_cells(rng):
    m, b, _ = build("CoupledLSTM", rng, layers=1)
    (x2i, h2i, c2i, bi, x2o, h2o, c2o, bo, x2c, h2c, bc), = arrays(b, m)[0]
    b.set_dropout(0.5)
    xs = inputs(rng, 1)
    outs = b.initial_state().transduce([as_expr(x) for x in xs])
    mx, mh, mc = (_mask_values(e) for e in b._masks[0])
    h = c = np.zeros((HID, 1))
    for t, x in enumerate(xs):
        x = x * mx
        hd = h * mh
        i = sig(x2i @ x + h2i @ hd + c2i @ (c * mc) + bi[:, None])
        c = (1 - i) * c + i * np.tanh(x2c @ x + h2c @ hd + bc[:, None])
        h = sig(x2o @ x + h2o @ hd + c2o @ (c * mc) + bo[:, None]) * np.tanh(c)
        np.testing.assert_allclose(as_cols(outs[t]), h, rtol=RTOL, atol=ATOL)


def test_gru_dropout_is_per_step_and_keeps_state_undropped(rng):
    _, b, _ = build("GRU", rng)
    b.set_dropout(0.5)
    x = dy.inputVector([1.0, -1.0, 0.5])
    st = b.initial_state().add_input(x)
    out, h_last = st.output().npvalue(), st.h()[-1].npvalue()
    # DyNet's GRU: the returned output is dropped (values 0 or 2*h), the stored h is not.
    assert np.all(np.isclose(out, 0.0) | np.isclose(out, 2.0 * h_last))
    b.disable_dropout()
    assert b.dropout_rate == 0.0


def test_dropout_rate_is_checked():
    b = dy.VanillaLSTMBuilder(1, 2, 2, dy.ParameterCollection())
    with pytest.raises(ValueError, match="probability"):
        b.set_dropout(1.5)
    with pytest.raises(ValueError, match="probability"):
        b.set_dropouts(0.1, -0.2)


# ===================================================================== sparse and weight noise


def test_sparse_lstm_prunes_smallest_weights(rng):
    m, b, _ = build("SparseLSTM", rng)
    P, extra = arrays(b, m)
    b.set_sparsity(0.5)
    pruned = []
    for wx, wh, bb in P:
        layer = []
        for w in (wx, wh):
            k = int(round(0.5 * w.size))
            cut = np.sort(np.abs(w).reshape(-1))[k - 1]
            layer.append(np.where(np.abs(w) <= cut, 0.0, w))
        pruned.append(layer + [bb])
    xs = inputs(rng, 2)
    outs = b.initial_state().transduce([as_expr(x) for x in xs])
    want, _, _ = np_run(make_np_vanilla(), pruned, extra, xs)
    np.testing.assert_allclose(as_cols(outs[-1]), want[-1], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="sparsity"):
        b.set_sparsity(2.0)


def test_compact_weight_noise_perturbs_and_zero_restores(rng):
    m, b, cell = build("CompactVanillaLSTM", rng)
    P, extra = arrays(b, m)
    xs = inputs(rng, 1)
    b.set_weightnoise(0.5)
    noisy = b.initial_state().transduce([as_expr(x) for x in xs])[-1]
    clean = np_run(cell, P, extra, xs)[0][-1]
    assert not np.allclose(as_cols(noisy), clean, atol=1e-3)
    b.set_weightnoise(0.0)
    dy.renew_cg()
    np.testing.assert_allclose(as_cols(b.initial_state().transduce([as_expr(x) for x in xs])[-1]), clean,
                               rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="std"):
        b.set_weightnoise(-1.0)


# ===================================================================== BiRNN


@pytest.mark.parametrize("batch", [1, 2])
def test_birnn_concatenates_forward_and_backward_layers(batch, rng):
    m = dy.ParameterCollection()
    bi = dy.BiRNNBuilder(2, IN, 2 * HID, m, dy.VanillaLSTMBuilder)
    randomize(m, rng)
    assert bi.param_collection().name() == "/birnn/"
    names = [p.name() for p in m.parameters_list()]
    assert names[:3] == ["/birnn/vanilla-lstm-builder/_0", "/birnn/vanilla-lstm-builder/_1",
                         "/birnn/vanilla-lstm-builder/_2"]
    assert names[3] == "/birnn/vanilla-lstm-builder_1/_0" and len(names) == 12
    xs = inputs(rng, batch)
    outs = bi.transduce([as_expr(x) for x in xs])
    cell = make_np_vanilla()
    cur = xs
    for fb, bb in bi.builder_layers:
        pf = [[p.as_array().astype(np.float64) for p in layer] for layer in fb.get_parameters()]
        pb = [[p.as_array().astype(np.float64) for p in layer] for layer in bb.get_parameters()]
        f, _, _ = np_run(cell, pf, [], cur)
        r, _, _ = np_run(cell, pb, [], cur[::-1])
        cur = [np.concatenate([a, z]) for a, z in zip(f, r[::-1], strict=True)]
    for y, w in zip(outs, cur, strict=True):
        assert y.dim() == ((2 * HID,), batch)
        np.testing.assert_allclose(as_cols(y), w, rtol=RTOL, atol=ATOL)
    pairs = bi.add_inputs([as_expr(x) for x in xs])
    for (fs, bs), w in zip(pairs, cur, strict=True):
        np.testing.assert_allclose(np.concatenate([as_cols(fs.output()), as_cols(bs.output())]), w,
                                   rtol=RTOL, atol=ATOL)


def test_birnn_rejects_odd_hidden_dim():
    with pytest.raises(ValueError, match="even"):
        dy.BiRNNBuilder(1, 3, 5, dy.ParameterCollection(), dy.LSTMBuilder)


# ===================================================================== softmax builders


def np_log_softmax(v):
    v = v - v.max(axis=0, keepdims=True)
    return v - np.log(np.exp(v).sum(axis=0, keepdims=True))


@pytest.mark.parametrize("bias", [True, False])
def test_standard_softmax_values_and_gradients(bias, rng):
    m = dy.ParameterCollection()
    sm = dy.StandardSoftmaxBuilder(IN, 5, m, bias=bias)
    assert sm.param_collection().name() == "/standard-softmax-builder/"
    ps = sm.param_collection().parameters_list()
    assert [p.shape() for p in ps] == ([(5, IN), (5,)] if bias else [(5, IN)])
    randomize(m, rng)
    W = ps[0].as_array().astype(np.float64)
    bvec = ps[1].as_array().astype(np.float64) if bias else np.zeros(5)
    x = rng.normal(0, 1, (IN, 2))
    logits = W @ x + bvec[:, None]
    lsm = np_log_softmax(logits)
    np.testing.assert_allclose(sm.full_logits(as_expr(x)).npvalue(), logits, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(sm.full_log_distribution(as_expr(x)).npvalue(), lsm, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(sm.neg_log_softmax(as_expr(x[:, :1]), 3).value(), -lsm[3, 0], rtol=RTOL)
    loss = dy.sum_batches(sm.neg_log_softmax_batch(as_expr(x), [1, 4]))
    np.testing.assert_allclose(loss.value(), -lsm[1, 0] - lsm[4, 1], rtol=RTOL)
    loss.backward()
    p = np.exp(lsm)
    d = p.copy()
    d[1, 0] -= 1
    d[4, 1] -= 1  # dL/dlogits = softmax - onehot, per batch element
    np.testing.assert_allclose(ps[0].grad_as_array(), d @ x.T, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    if bias:
        np.testing.assert_allclose(ps[1].grad_as_array(), d.sum(axis=1), rtol=GRAD_RTOL, atol=GRAD_ATOL)
    with pytest.raises(ValueError, match="same batch size"):
        sm.neg_log_softmax_batch(as_expr(x), [1])


def test_softmax_sample_follows_the_distribution(rng):
    m = dy.ParameterCollection()
    sm = dy.StandardSoftmaxBuilder(2, 4, m)
    ps = sm.param_collection().parameters_list()
    ps[0].set_value(np.zeros((4, 2)))
    ps[1].set_value(np.array([0.0, 0.0, 30.0, 0.0]))
    assert {sm.sample(dy.inputVector([1.0, 1.0])) for _ in range(20)} == {2}


@pytest.fixture
def clusters(tmp_path):
    # classes: A = {the, a}, B = {dog}, C = {cat, cow, cod}; word "zebra" (id 2) belongs to no class
    words = ["the", "a", "zebra", "dog", "cat", "cow", "cod"]
    wd = {w: i for i, w in enumerate(words)}
    f = tmp_path / "clusters.txt"
    f.write_text("A the\nA\ta 12\nB dog\nC cat\nC cow\nC cod\n")
    return str(f), wd


def test_class_factored_softmax_matches_the_factored_probabilities(clusters, rng):
    fname, wd = clusters
    m = dy.ParameterCollection()
    cf = dy.ClassFactoredSoftmaxBuilder(IN, fname, wd, m)
    pc = cf.param_collection()
    assert pc.name() == "/class-factored-softmax-builder/"
    # DyNet's order: class scores, class bias, then per multi-word class its word scores and bias
    assert [p.shape() for p in pc.parameters_list()] == [(3, IN), (3,), (2, IN), (2,), (3, IN), (3,)]
    randomize(m, rng)
    r2c, cb, wa, ba, wc, bc = (p.as_array().astype(np.float64) for p in pc.parameters_list())
    x = rng.normal(0, 1, IN)
    lc = np_log_softmax((r2c @ x + cb)[:, None])[:, 0]
    la = np_log_softmax((wa @ x + ba)[:, None])[:, 0]
    lcc = np_log_softmax((wc @ x + bc)[:, None])[:, 0]
    nll = {"the": -lc[0] - la[0], "a": -lc[0] - la[1], "dog": -lc[1], "cat": -lc[2] - lcc[0],
           "cow": -lc[2] - lcc[1], "cod": -lc[2] - lcc[2]}
    for w, v in nll.items():
        np.testing.assert_allclose(cf.neg_log_softmax(dy.inputVector(x), wd[w]).value(), v, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cf.class_log_distribution(dy.inputVector(x)).npvalue(), lc, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cf.subclass_log_distribution(dy.inputVector(x), 2).npvalue(), lcc, rtol=RTOL,
                               atol=ATOL)
    # full_logits as DyNet computes it: softmax(word scores) + log p(class); -10000 for unclustered words
    sa, sc = np.exp(la), np.exp(lcc)
    want = np.array([sa[0] + lc[0], sa[1] + lc[0], -10000.0, lc[1], sc[0] + lc[2], sc[1] + lc[2], sc[2] + lc[2]])
    np.testing.assert_allclose(cf.full_logits(dy.inputVector(x)).npvalue(), want, rtol=RTOL, atol=1e-3)
    np.testing.assert_allclose(cf.full_log_distribution(dy.inputVector(x)).npvalue(),
                               np_log_softmax(want[:, None])[:, 0], rtol=RTOL, atol=1e-3)
    xb = rng.normal(0, 1, (IN, 2))
    batch = cf.neg_log_softmax_batch(as_expr(xb), [wd["cow"], wd["dog"]])
    assert batch.dim() == ((1,), 2)
    one = [cf.neg_log_softmax(dy.inputVector(xb[:, k]), w).value() for k, w in enumerate([wd["cow"], wd["dog"]])]
    np.testing.assert_allclose(batch.npvalue().reshape(-1), one, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="missing from clusters"):
        cf.neg_log_softmax(dy.inputVector(x), wd["zebra"])
    assert cf.sample(dy.inputVector(x)) in {0, 1, 3, 4, 5, 6}


def test_class_factored_softmax_gradient_matches_finite_differences(clusters, rng):
    fname, wd = clusters
    m = dy.ParameterCollection()
    cf = dy.ClassFactoredSoftmaxBuilder(IN, fname, wd, m)
    randomize(m, rng)
    ps = cf.param_collection().parameters_list()
    arrs = [p.as_array().astype(np.float64) for p in ps]
    x = rng.normal(0, 1, IN)

    def nll(a):
        r2c, cb, wa, ba, wc, bc = a
        return (-np_log_softmax((r2c @ x + cb)[:, None])[2, 0] - np_log_softmax((wc @ x + bc)[:, None])[1, 0]
                - np_log_softmax((r2c @ x + cb)[:, None])[0, 0] - np_log_softmax((wa @ x + ba)[:, None])[1, 0])

    loss = cf.neg_log_softmax(dy.inputVector(x), wd["cow"]) + cf.neg_log_softmax(dy.inputVector(x), wd["a"])
    np.testing.assert_allclose(loss.value(), nll(arrs), rtol=RTOL)
    loss.backward()
    for p, a in zip(ps, arrs, strict=True):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + 1e-6
            up = nll(arrs)
            a[idx] = old - 1e-6
            dn = nll(arrs)
            a[idx] = old
            g[idx] = (up - dn) / 2e-6
        np.testing.assert_allclose(p.grad_as_array(), g, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=p.name())


def test_class_factored_softmax_bad_cluster_files(tmp_path):
    wd = {"a": 0, "b": 1}
    bad = tmp_path / "bad.txt"
    bad.write_text("onlyoneword\n")
    with pytest.raises(ValueError, match="Invalid format"):
        dy.ClassFactoredSoftmaxBuilder(2, str(bad), wd, dy.ParameterCollection())
    bad.write_text("X c\n")
    with pytest.raises(ValueError, match="not in word_dict"):
        dy.ClassFactoredSoftmaxBuilder(2, str(bad), wd, dy.ParameterCollection())
    with pytest.raises(ValueError, match="Could not find cluster file"):
        dy.ClassFactoredSoftmaxBuilder(2, str(tmp_path / "missing.txt"), wd, dy.ParameterCollection())


# ===================================================================== save and load


SAVABLE = ["SimpleRNN", "GRU", "VanillaLSTM", "VanillaLSTM-forget-bias", "SparseLSTM", "CompactVanillaLSTM",
           "CoupledLSTM"]


@pytest.mark.parametrize("name", SAVABLE)
def test_dy_save_and_load_round_trip(name, tmp_path, rng):
    m, b, _ = build(name, rng)
    base = str(tmp_path / "model")
    dy.save(base, [b])
    m2 = dy.ParameterCollection()
    (b2,) = dy.load(base, m2)
    assert type(b2) is type(b) and b2.spec == b.spec
    for l1, l2 in zip(b.get_parameters(), b2.get_parameters(), strict=True):
        for p1, p2 in zip(l1, l2, strict=True):
            assert p1.name() == p2.name()
            np.testing.assert_array_equal(p1.as_array(), p2.as_array())
    x = dy.inputVector([0.5, -1.0, 2.0])
    np.testing.assert_allclose(b.initial_state().add_input(x).output().npvalue(),
                               b2.initial_state().add_input(x).output().npvalue(), rtol=1e-6)


def test_birnn_save_and_load_round_trip(tmp_path, rng):
    m = dy.ParameterCollection()
    bi = dy.BiRNNBuilder(2, IN, 4, m, dy.GRUBuilder)
    randomize(m, rng)
    dy.save(str(tmp_path / "bi"), [bi])
    (bi2,) = dy.load(str(tmp_path / "bi"), dy.ParameterCollection())
    xs = [dy.inputVector([0.1, 0.2, 0.3]), dy.inputVector([1.0, -1.0, 0.0])]
    np.testing.assert_allclose(bi.transduce(xs)[0].npvalue(), bi2.transduce(xs)[0].npvalue(), rtol=1e-6)


def test_fast_lstm_and_softmax_builders_are_not_savable(tmp_path, clusters):
    m = dy.ParameterCollection()
    for obj in (dy.FastLSTMBuilder(1, 2, 2, m), dy.StandardSoftmaxBuilder(2, 3, m),
                dy.ClassFactoredSoftmaxBuilder(2, clusters[0], clusters[1], m)):
        assert not hasattr(obj, "spec")
        with pytest.raises(TypeError, match="not savable"):
            dy.save(str(tmp_path / "x"), [obj])


def _dynet_record(name: str, arr: np.ndarray) -> str:
    """One record as DyNet's TextFileSaver writes it (column-major, %+.8e, 16 chars per value)."""
    dims = "{" + ",".join(str(d) for d in arr.shape) + "}"
    vals = "".join(f"{v:+.8e} " for v in arr.reshape(-1, order="F"))
    return f"#Parameter# {name} {dims} {arr.size * 16 + 1} ZERO_GRAD\n{vals}\n"


def test_a_dynet_saved_lstm_loads(tmp_path, rng):
    """Files as DyNet's dy.save writes them for LSTMBuilder(2, 3, 4, pc): names, dims and order."""
    arrays_ = [rng.normal(0, 1, s).astype(np.float32) for s in
               [(16, 3), (16, 4), (16,), (16, 4), (16, 4), (16,)]]
    text = "".join(_dynet_record(f"/vanilla-lstm-builder/_{k}", a) for k, a in enumerate(arrays_))
    (tmp_path / "dn.data").write_text(text)
    with open(tmp_path / "dn.meta", "wb") as fh:
        pickle.dump((dy.VanillaLSTMBuilder, (2, 3, 4, False, 1.0), "/vanilla-lstm-builder/"), fh)
    (b,) = dy.load(str(tmp_path / "dn"), dy.ParameterCollection())
    got = [p.as_array() for layer in b.get_parameters() for p in layer]
    for g, a in zip(got, arrays_, strict=True):
        np.testing.assert_allclose(g, a, rtol=1e-7)
    # and a builder's collection populates from the same file directly
    b2 = dy.VanillaLSTMBuilder(2, 3, 4, dy.ParameterCollection())
    b2.param_collection().populate(str(tmp_path / "dn.data"))
    np.testing.assert_allclose(b2.get_parameters()[1][0].as_array(), arrays_[3], rtol=1e-7)
