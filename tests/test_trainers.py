"""Trainers against their update formulas (DyNet's training.cc), simulated independently in float64.

Each test trains a small model through dynet_api for a few steps and replays the
same steps in NumPy: the gradient of ``|W x + b - y|^2`` is ``2 r x^T`` and ``2 r``
with ``r = W x + b - y``; clipping rescales by ``5 / |g|`` when the global norm
exceeds 5; the rule formulas are written out below, one per trainer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy

X = np.array([0.5, -1.0, 2.0])
Y = np.array([0.3, -0.2])
W0 = np.array([[0.2, -0.4, 0.1], [0.3, 0.5, -0.6]])
B0 = np.array([0.1, -0.2])


# ---------------------------------------------------------------- the reference rules (float64)


def ref_sgd(p, g, s, t, h):
    return p - h["lr"] * g


def ref_momentum(p, g, s, t, h):
    s["v"] = h["mom"] * s.get("v", 0.0) - h["lr"] * g
    return p + s["v"]


def ref_adagrad(p, g, s, t, h):
    s["G"] = s.get("G", 0.0) + g * g
    return p - h["lr"] * g / np.sqrt(s["G"] + h["eps"])  # eps inside the sqrt


def ref_adadelta(p, g, s, t, h):
    rho, eps = h["rho"], h["eps"]
    s["hg"] = rho * s.get("hg", 0.0) + (1 - rho) * g * g
    d = -g * np.sqrt(s.get("hd", 0.0) + eps) / np.sqrt(s["hg"] + eps)
    s["hd"] = rho * s.get("hd", 0.0) + (1 - rho) * d * d
    return p + d


def ref_rmsprop(p, g, s, t, h):
    s["v"] = h["rho"] * s.get("v", 0.0) + (1 - h["rho"]) * g * g
    return p - h["lr"] * g / np.sqrt(s["v"] + h["eps"])


def _adam_moments(g, s, h):
    s["m"] = h["b1"] * s.get("m", 0.0) + (1 - h["b1"]) * g
    s["v"] = h["b2"] * s.get("v", 0.0) + (1 - h["b2"]) * g * g


def ref_adam(p, g, s, t, h):
    _adam_moments(g, s, h)
    lr_t = h["lr"] * math.sqrt(1 - h["b2"] ** t) / (1 - h["b1"] ** t)  # t: global update count from 1
    return p - lr_t * s["m"] / (np.sqrt(s["v"]) + h["eps"])  # eps outside the sqrt


def ref_amsgrad(p, g, s, t, h):
    _adam_moments(g, s, h)
    s["vhat"] = np.maximum(s.get("vhat", 0.0), s["v"])
    lr_t = h["lr"] * math.sqrt(1 - h["b2"] ** t) / (1 - h["b1"] ** t)
    return p - lr_t * s["m"] / (np.sqrt(s["vhat"]) + h["eps"])


# ---------------------------------------------------------------- the model and its replay


def build(trainer_factory, **kw):
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=W0)
    b = pc.add_parameters(2, init=B0)
    return pc, W, b, trainer_factory(pc, **kw)


def step(W, b, tr, use_W: bool = True) -> None:
    dy.renew_cg()
    x = dy.inputVector(list(X))
    pred = (W * x + b) if use_W else b
    loss = dy.squared_norm(pred - dy.inputVector(list(Y)))
    loss.forward()
    loss.backward()
    tr.update()


def ref_grads(w, bb, use_W: bool = True) -> dict:
    r = (w @ X if use_W else 0.0) + bb - Y
    return {"W": 2 * np.outer(r, X) if use_W else np.zeros_like(w), "b": 2 * r}


def clip_scale(grads: dict, threshold: float = 5.0) -> float:
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    return threshold / norm if norm > threshold else 1.0


def replay(rule, hyper: dict, steps: int, lrs=None):
    """Float64 replay of ``steps`` updates; returns the list of (W, b) after each step."""
    p = {"W": W0.copy(), "b": B0.copy()}
    states: dict = {"W": {}, "b": {}}
    out = []
    for k in range(steps):
        g = ref_grads(p["W"], p["b"])
        sc = clip_scale(g)
        h = dict(hyper)
        if lrs is not None:
            h["lr"] = lrs[k]
        for n in p:
            p[n] = rule(p[n], g[n] * sc, states[n], k + 1, h)
        out.append((p["W"].copy(), p["b"].copy()))
    return out, states


def check_against(W, b, tr, rule, hyper, steps=3, lrs=None):
    expected, states = replay(rule, hyper, steps, lrs)
    for k in range(steps):
        step(W, b, tr)
        ew, eb = expected[k]
        # compare the moves (relative to the start) as well as the values
        np.testing.assert_allclose(W.as_array() - W0, ew - W0, rtol=2e-4, atol=2e-7, err_msg=f"W after step {k + 1}")
        np.testing.assert_allclose(b.as_array() - B0, eb - B0, rtol=2e-4, atol=2e-7, err_msg=f"b after step {k + 1}")
    return states


# ---------------------------------------------------------------- each rule, with DyNet's defaults


DEFAULTS = [
    ("SimpleSGDTrainer", {}, ref_sgd, {"lr": 0.1}),
    ("MomentumSGDTrainer", {}, ref_momentum, {"lr": 0.01, "mom": 0.9}),
    ("AdagradTrainer", {}, ref_adagrad, {"lr": 0.1, "eps": 1e-20}),
    ("AdadeltaTrainer", {}, ref_adadelta, {"eps": 1e-6, "rho": 0.95}),
    ("RMSPropTrainer", {}, ref_rmsprop, {"lr": 0.001, "eps": 1e-8, "rho": 0.9}),
    ("AdamTrainer", {}, ref_adam, {"lr": 0.001, "b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    ("AmsgradTrainer", {}, ref_amsgrad, {"lr": 0.001, "b1": 0.9, "b2": 0.999, "eps": 1e-8}),
]


@pytest.mark.parametrize("cls, kw, rule, hyper", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_rule_with_dynet_defaults(cls, kw, rule, hyper):
    _, W, b, tr = build(getattr(dy, cls), **kw)
    check_against(W, b, tr, rule, hyper)


def test_default_learning_rates_and_clip_threshold():
    pc = dy.ParameterCollection()
    expected = {"SimpleSGDTrainer": 0.1, "CyclicalSGDTrainer": 0.01, "MomentumSGDTrainer": 0.01,
                "AdagradTrainer": 0.1, "AdadeltaTrainer": 1.0, "RMSPropTrainer": 0.001,
                "AdamTrainer": 0.001, "AmsgradTrainer": 0.001}
    for name, lr in expected.items():
        tr = getattr(dy, name)(pc)
        assert tr.learning_rate == pytest.approx(lr), name
        assert tr.get_clip_threshold() == 5.0, name
        assert tr.whoami() == name


# ---------------------------------------------------------------- non-default constants, chosen so each detail shows


NON_DEFAULT = [
    ("SimpleSGDTrainer", {"learning_rate": 0.05}, ref_sgd, {"lr": 0.05}),
    ("MomentumSGDTrainer", {"learning_rate": 0.05, "mom": 0.5}, ref_momentum, {"lr": 0.05, "mom": 0.5}),
    ("AdagradTrainer", {"learning_rate": 0.2, "eps": 0.5}, ref_adagrad, {"lr": 0.2, "eps": 0.5}),
    ("AdadeltaTrainer", {"eps": 1e-2, "rho": 0.6}, ref_adadelta, {"eps": 1e-2, "rho": 0.6}),
    ("RMSPropTrainer", {"learning_rate": 0.05, "eps": 0.1, "rho": 0.5}, ref_rmsprop,
     {"lr": 0.05, "eps": 0.1, "rho": 0.5}),
    ("AdamTrainer", {"alpha": 0.05, "beta_1": 0.5, "beta_2": 0.7, "eps": 0.1}, ref_adam,
     {"lr": 0.05, "b1": 0.5, "b2": 0.7, "eps": 0.1}),
]


@pytest.mark.parametrize("cls, kw, rule, hyper", NON_DEFAULT, ids=[d[0] for d in NON_DEFAULT])
def test_rule_with_other_constants(cls, kw, rule, hyper):
    _, W, b, tr = build(getattr(dy, cls), **kw)
    check_against(W, b, tr, rule, hyper)


def test_amsgrad_keeps_the_running_max():
    hyper = {"lr": 0.1, "b1": 0.5, "b2": 0.5, "eps": 1e-3}
    _, W, b, tr = build(dy.AmsgradTrainer, learning_rate=0.1, beta_1=0.5, beta_2=0.5, eps=1e-3)
    states = check_against(W, b, tr, ref_amsgrad, hyper, steps=4)
    # the test is only sharp if the maximum mattered somewhere
    assert any((s["vhat"] > s["v"] * (1 + 1e-6)).any() for s in states.values())


def test_adam_is_not_amsgrad_here():
    # the same constants give different results once vhat and v part ways
    hyper = {"lr": 0.1, "b1": 0.5, "b2": 0.5, "eps": 1e-3}
    a, _ = replay(ref_adam, hyper, 4)
    m, _ = replay(ref_amsgrad, hyper, 4)
    assert not np.allclose(a[-1][0], m[-1][0], rtol=1e-3)
    _, W, b, tr = build(dy.AdamTrainer, alpha=0.1, beta_1=0.5, beta_2=0.5, eps=1e-3)
    check_against(W, b, tr, ref_adam, hyper, steps=4)


def test_cyclical_sgd_schedule():
    _, W, b, tr = build(dy.CyclicalSGDTrainer, learning_rate_min=0.01, learning_rate_max=0.1, step_size=2)
    # it = 0,1,2,3,4 -> x = 1, .5, 0, .5, 1 -> lr = 0.01 + 0.09*(1-x); the first update uses lr_min
    lrs = [0.01, 0.01, 0.055, 0.1, 0.055, 0.01]
    expected, _ = replay(ref_sgd, {}, 5, lrs=lrs)
    assert tr.learning_rate == pytest.approx(0.01)
    for k in range(5):
        step(W, b, tr)
        assert tr.learning_rate == pytest.approx(lrs[k + 1]), k
        np.testing.assert_allclose(W.as_array() - W0, expected[k][0] - W0, rtol=2e-4, atol=2e-7)
        np.testing.assert_allclose(b.as_array() - B0, expected[k][1] - B0, rtol=2e-4, atol=2e-7)


def test_cyclical_sgd_gamma():
    _, W, b, tr = build(dy.CyclicalSGDTrainer, learning_rate_min=0.01, learning_rate_max=0.1, step_size=2, gamma=0.5)
    seen = []
    for _ in range(4):
        step(W, b, tr)
        seen.append(tr.learning_rate)
    # lr after update k+1 = 0.01 + 0.09 * (1 - x(k)) * 0.5**k
    np.testing.assert_allclose(seen, [0.01, 0.01 + 0.09 * 0.5 * 0.5, 0.01 + 0.09 * 0.25, 0.01 + 0.09 * 0.5 * 0.125])


def test_eg_trainer_stays_on_the_simplex():
    pc = dy.ParameterCollection()
    p0 = np.array([0.1, 0.2, 0.3, 0.4])
    q0 = np.array([[0.1, 0.4], [0.3, 0.2]])
    p = pc.add_parameters(4, init=p0)
    q = pc.add_parameters((2, 2), init=q0)
    tr = dy.EGTrainer(pc, learning_rate=0.5, mom=0.5)
    c = np.array([1.0, -1.0, 2.0, 0.5])
    cq = np.array([[0.5, -1.0], [1.5, 0.0]])
    ref = {"p": (p0.copy(), c, np.zeros(4)), "q": (q0.copy(), cq, np.zeros((2, 2)))}
    for _ in range(3):
        dy.renew_cg()
        loss = dy.dot_product(p, dy.inputVector(list(c))) + dy.sum_elems(dy.cmult(q, dy.inputTensor(cq)))
        loss.forward()
        loss.backward()
        tr.update()
        for k, (w, g, hp) in list(ref.items()):
            hp = 0.5 * hp - 0.5 * g  # gradient norm sqrt(6.25 + 3.5) < 5: no clipping
            e = np.exp(np.log(w) + hp)
            ref[k] = (e / e.sum(), g, hp)  # the whole tensor is normalised
        for par, k in ((p, "p"), (q, "q")):
            a = par.as_array().astype(np.float64)
            assert (a > 0).all()
            assert a.sum() == pytest.approx(1.0, abs=1e-6)
            np.testing.assert_allclose(a, ref[k][0], rtol=1e-5)


# ---------------------------------------------------------------- behaviours around the rule


def test_params_without_gradient_still_move_with_momentum():
    # DyNet updates every parameter marked updated, gradient or not
    _, W, b, tr = build(dy.MomentumSGDTrainer, learning_rate=0.1, mom=0.5)
    step(W, b, tr)
    w1 = W.as_array().astype(np.float64)
    g = ref_grads(W0, B0)
    v = -0.1 * g["W"] * clip_scale(g)
    np.testing.assert_allclose(w1 - W0, v, rtol=2e-4, atol=2e-7)
    step(W, b, tr, use_W=False)  # W not in this graph: zero gradient, velocity keeps moving it
    np.testing.assert_allclose(W.as_array() - w1, 0.5 * v, rtol=2e-4, atol=2e-7)


def test_set_updated_false_leaves_parameter_untouched():
    _, W, b, tr = build(dy.AdamTrainer)
    W.set_updated(False)
    for _ in range(2):
        step(W, b, tr)
    np.testing.assert_array_equal(W.as_array(), W0.astype(np.float32))
    assert not np.allclose(b.as_array(), B0)
    W.set_updated(True)
    step(W, b, tr)
    assert not np.allclose(W.as_array(), W0)


def test_learning_rate_read_write():
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    tr.learning_rate = 0.5
    assert tr.learning_rate == 0.5
    step(W, b, tr)
    exp, _ = replay(ref_sgd, {"lr": 0.5}, 1)
    np.testing.assert_allclose(W.as_array(), exp[0][0], rtol=1e-5, atol=1e-6)
    tr.set_learning_rate(0.25)
    assert tr.learning_rate == 0.25


def test_restart_zeroes_momentum_and_sets_lr():
    _, W, b, tr = build(dy.MomentumSGDTrainer, learning_rate=0.1, mom=0.9)
    step(W, b, tr)
    w1, b1 = W.as_array().astype(np.float64), b.as_array().astype(np.float64)
    tr.restart(0.05)
    assert tr.learning_rate == 0.05
    step(W, b, tr)
    g = ref_grads(w1, b1)
    sc = clip_scale(g)
    # no velocity left from step 1
    np.testing.assert_allclose(W.as_array() - w1, -0.05 * sc * g["W"], rtol=2e-4, atol=2e-7)
    np.testing.assert_allclose(b.as_array() - b1, -0.05 * sc * g["b"], rtol=2e-4, atol=2e-7)


def test_restart_adam_keeps_the_update_count():
    hyper = {"lr": 0.05, "b1": 0.5, "b2": 0.7, "eps": 0.1}
    _, W, b, tr = build(dy.AdamTrainer, alpha=0.05, beta_1=0.5, beta_2=0.7, eps=0.1)
    step(W, b, tr)
    w1, b1 = W.as_array().astype(np.float64), b.as_array().astype(np.float64)
    tr.restart()
    step(W, b, tr)
    g = ref_grads(w1, b1)
    sc = clip_scale(g)
    for par, p0, n in ((W, w1, "W"), (b, b1, "b")):
        expected = ref_adam(p0, g[n] * sc, {}, 2, hyper)  # fresh moments, t = 2
        np.testing.assert_allclose(par.as_array() - p0, expected - p0, rtol=2e-4, atol=2e-7)


# ---------------------------------------------------------------- clipping


def _big_gradient_step(W, b, tr, x=(1.0, 2.0, 2.0), c=(3.0, 4.0)):
    dy.renew_cg()
    loss = dy.dot_product(dy.inputVector(list(c)), W * dy.inputVector(list(x)) + b)
    loss.forward()
    loss.backward()
    tr.update()


def test_global_norm_clipping_default_threshold(capsys):
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    c, x = np.array([3.0, 4.0]), np.array([1.0, 2.0, 2.0])
    _big_gradient_step(W, b, tr)
    gw, gb = np.outer(c, x), c
    norm = math.sqrt((gw**2).sum() + (gb**2).sum())  # sqrt(225 + 25)
    np.testing.assert_allclose(W.as_array() - W0, -0.1 * gw * 5.0 / norm, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.as_array() - B0, -0.1 * gb * 5.0 / norm, rtol=1e-5, atol=1e-7)
    capsys.readouterr()
    tr.status()
    assert capsys.readouterr().err == "[lr=0.1 clips=1 updates=1] "


def test_set_clip_threshold():
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    tr.set_clip_threshold(2.0)
    assert tr.get_clip_threshold() == 2.0
    _big_gradient_step(W, b, tr)
    gw = np.outer([3.0, 4.0], [1.0, 2.0, 2.0])
    norm = math.sqrt(250.0)
    np.testing.assert_allclose(W.as_array() - W0, -0.1 * gw * 2.0 / norm, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("thr", [0, -1.0])
def test_clip_threshold_zero_disables(thr, capsys):
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    tr.set_clip_threshold(thr)
    assert tr.get_clip_threshold() == 0.0
    _big_gradient_step(W, b, tr)
    gw = np.outer([3.0, 4.0], [1.0, 2.0, 2.0])
    np.testing.assert_allclose(W.as_array() - W0, -0.1 * gw, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    tr.status()
    assert capsys.readouterr().err == "[lr=0.1 clips=0 updates=1] "


def test_clip_norm_counts_parameters_that_are_not_updated():
    # DyNet's gradient_l2_norm runs over every parameter of the collection
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    W.set_updated(False)
    _big_gradient_step(W, b, tr)
    np.testing.assert_array_equal(W.as_array(), W0.astype(np.float32))
    np.testing.assert_allclose(b.as_array() - B0, -0.1 * np.array([3.0, 4.0]) * 5.0 / math.sqrt(250.0), rtol=1e-5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_bad_gradient_raises(bad):
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    with pytest.raises(RuntimeError, match="Magnitude of gradient is bad"):
        _big_gradient_step(W, b, tr, x=(bad, 1.0, 1.0))
    np.testing.assert_array_equal(W.as_array(), W0.astype(np.float32))
    np.testing.assert_array_equal(b.as_array(), B0.astype(np.float32))


# ---------------------------------------------------------------- status and friends


def test_status_format_and_reset(capsys):
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    for _ in range(3):
        step(W, b, tr, use_W=False)  # gradient norm 0.4: no clipping
    capsys.readouterr()
    tr.status()
    assert capsys.readouterr().err == "[lr=0.1 clips=0 updates=3] "
    tr.status()
    assert capsys.readouterr().err == "[lr=0.1 clips=0 updates=0] "
    tr.learning_rate = 0.001
    tr.status()
    assert capsys.readouterr().err == "[lr=0.001 clips=0 updates=0] "


def test_update_epoch_is_deprecated_and_does_nothing(capsys):
    _, W, b, tr = build(dy.SimpleSGDTrainer)
    capsys.readouterr()
    tr.update_epoch(0.5)
    assert "update_epoch has been deprecated" in capsys.readouterr().err
    assert tr.learning_rate == 0.1
    np.testing.assert_array_equal(W.as_array(), W0.astype(np.float32))


def test_trainer_needs_a_collection():
    with pytest.raises(TypeError, match="ParameterCollection"):
        dy.SimpleSGDTrainer([1, 2])


# ---------------------------------------------------------------- weight decay


def test_weight_decay_sgd():
    lam, lr = 0.1, 0.1
    pc, W, b, tr = build(dy.SimpleSGDTrainer)
    E = pc.add_lookup_parameters((3, 2), init=1.0)
    pc.set_weight_decay(lam)
    assert pc.get_weight_decay() == lam
    w, bb = W0.copy(), B0.copy()
    for _ in range(2):
        step(W, b, tr)
        g = ref_grads(w, bb)
        sc = clip_scale(g)
        w = (1 - lam) * (w - lr * sc * g["W"])
        bb = (1 - lam) * (bb - lr * sc * g["b"])
        np.testing.assert_allclose(W.as_array(), w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b.as_array(), bb, rtol=1e-5, atol=1e-7)
    # the effective value of every weight decays, looked up or not
    np.testing.assert_allclose(E.as_array(), np.full((3, 2), (1 - lam) ** 2), rtol=1e-6)


def test_weight_decay_must_be_in_range():
    pc = dy.ParameterCollection()
    with pytest.raises(ValueError):
        pc.set_weight_decay(-0.1)
    with pytest.raises(ValueError):
        pc.set_weight_decay(1.0)
    assert pc.get_weight_decay() == 0.0


def test_weight_decay_reaches_subcollections():
    pc = dy.ParameterCollection()
    sub = pc.add_subcollection()
    p = sub.add_parameters(2, init=1.0)
    pc.set_weight_decay(0.5)
    assert sub.get_weight_decay() == 0.5
    tr = dy.SimpleSGDTrainer(pc)
    dy.renew_cg()
    loss = dy.sum_elems(p * 0.0)
    loss.forward()
    loss.backward()
    tr.update()
    np.testing.assert_allclose(p.as_array(), [0.5, 0.5])


# ---------------------------------------------------------------- sparse lookup updates


ROWS = [[0], [1], [0, 2]]  # rows looked up at each step
T = np.array([0.5, -1.0, 0.25])
E0 = np.array([[0.1, 0.2, 0.3], [-0.3, 0.1, 0.0], [0.2, -0.2, 0.4], [0.9, 0.8, 0.7]])


def sparse_run(trainer, sparse: bool):
    pc = dy.ParameterCollection()
    E = pc.lookup_parameters_from_numpy(E0)
    tr = trainer(pc)
    tr.set_sparse_updates(sparse)
    out = []
    for rows in ROWS:
        dy.renew_cg()
        t = dy.inputVector(list(T))
        loss = dy.esum([dy.squared_norm(E[i] - t) for i in rows])
        loss.forward()
        loss.backward()
        tr.update()
        out.append(E.as_array().astype(np.float64))
    return out


def sparse_replay(rule, hyper, sparse: bool):
    e = E0.copy()
    states = [dict() for _ in range(len(E0))]
    full_state: dict = {}
    out = []
    for k, rows in enumerate(ROWS):
        g = np.zeros_like(e)
        for i in rows:
            g[i] = 2 * (e[i] - T)
        sc = clip_scale({"E": g})
        if sparse:
            for i in rows:  # untouched rows: values and moments stay as they are
                e[i] = rule(e[i], g[i] * sc, states[i], k + 1, hyper)
        else:
            e = rule(e, g * sc, full_state, k + 1, hyper)
        out.append(e.copy())
    return out


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize(
    "factory, rule, hyper",
    [
        (lambda pc: dy.MomentumSGDTrainer(pc, learning_rate=0.1, mom=0.5), ref_momentum, {"lr": 0.1, "mom": 0.5}),
        (lambda pc: dy.AdamTrainer(pc, alpha=0.05, beta_1=0.5, beta_2=0.7, eps=0.1), ref_adam,
         {"lr": 0.05, "b1": 0.5, "b2": 0.7, "eps": 0.1}),
        (lambda pc: dy.AdagradTrainer(pc, learning_rate=0.2, eps=0.5), ref_adagrad, {"lr": 0.2, "eps": 0.5}),
    ],
    ids=["momentum", "adam", "adagrad"],
)
def test_lookup_updates(factory, rule, hyper, sparse):
    got = sparse_run(factory, sparse)
    want = sparse_replay(rule, hyper, sparse)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(g - E0, w - E0, rtol=2e-4, atol=2e-7, err_msg=f"step {k + 1}")
    # row 3 is never looked up
    if sparse:
        np.testing.assert_array_equal(got[-1][3], E0[3].astype(np.float32))


def test_sparse_and_dense_differ_for_momentum():
    # row 0 has velocity after step 1 and is not looked up at step 2
    s = sparse_run(lambda pc: dy.MomentumSGDTrainer(pc, learning_rate=0.1, mom=0.5), True)
    d = sparse_run(lambda pc: dy.MomentumSGDTrainer(pc, learning_rate=0.1, mom=0.5), False)
    np.testing.assert_array_equal(s[1][0], s[0][0])
    assert not np.allclose(d[1][0], d[0][0])


def test_whole_table_expression_updates_every_row():
    # using the table as one expression marks every row (DyNet's all_updated): all rows move
    pc = dy.ParameterCollection()
    E = pc.lookup_parameters_from_numpy(E0)
    tr = dy.SimpleSGDTrainer(pc, learning_rate=0.1)
    dy.renew_cg()
    c = np.arange(12.0).reshape(3, 4) / 10.0  # the table expression has dim {3, 4}: rows are columns
    loss = dy.sum_elems(dy.cmult(E, dy.inputTensor(c)))
    loss.forward()
    loss.backward()
    tr.update()
    g = c.T  # gradient per row
    sc = clip_scale({"E": g})
    np.testing.assert_allclose(E.as_array() - E0, -0.1 * sc * g, rtol=2e-4, atol=2e-7)


def test_lookup_set_updated_false():
    pc = dy.ParameterCollection()
    E = pc.lookup_parameters_from_numpy(E0)
    b = pc.add_parameters(3, init=0.0)
    tr = dy.AdamTrainer(pc)
    E.set_updated(False)
    dy.renew_cg()
    loss = dy.dot_product(E[1] + b, dy.inputVector([1.0, 2.0, 3.0]))
    loss.forward()
    loss.backward()
    tr.update()
    np.testing.assert_array_equal(E.as_array(), E0.astype(np.float32))
    assert not np.allclose(b.as_array(), 0.0)
