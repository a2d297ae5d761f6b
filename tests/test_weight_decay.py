"""Weight decay as DyNet's lazy scale, on every first-party backend.

DyNet (training.cc, weight-decay.h, param-nodes.cc) keeps the stored values ``raw`` and one
factor ``wd`` per collection: the weights are ``raw * wd``; every rule divides its step on
``raw`` by ``wd``; after each update ``wd -= wd * lambda``, and when ``wd < 0.25`` it is
folded into the values (``raw *= wd; wd = 1``).  The expectations below are those formulas,
written out in float64 on ``raw`` and ``wd``, independent of the library's code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy

LAM = 0.2  # large, so that the factor falls below 0.25 (and is folded) at the 7th update
ROWS = ([1, 4], [4, 5], [0], [2, 4], [1, 5], [3], [4, 0], [5, 2])  # looked up at each update


def _rule(name):
    """DyNet 2.1.2's update_rule_dev of ``name`` on raw values: step(raw, g, states, wd, t)."""
    def sgd(w, g, s, wd, t, lr=0.1):
        w -= g * (lr / wd)

    def momentum(w, g, s, wd, t, lr=0.01, mom=0.9):
        s[0][:] = s[0] * mom - g * lr
        w += s[0] / wd

    def adagrad(w, g, s, wd, t, lr=0.1, eps=1e-20):
        s[0] += g * g
        w += g / np.sqrt(s[0] + eps) * (-lr / wd)

    def adadelta(w, g, s, wd, t, eps=1e-6, rho=0.95):
        s[0][:] = s[0] * rho + g * g * (1 - rho)
        d = -g * np.sqrt(s[1] + eps) / np.sqrt(s[0] + eps)
        s[1][:] = s[1] * rho + d * d * (1 - rho)
        w += d / wd

    def rmsprop(w, g, s, wd, t, lr=0.001, eps=1e-8, rho=0.9):
        s[0][:] = s[0] * rho + g * g * (1 - rho)
        w += lr * (-g / np.sqrt(s[0] + eps)) / wd

    def adam(w, g, s, wd, t, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, ams=False):
        s[0][:] = s[0] * b1 + g * (1 - b1)
        s[1][:] = s[1] * b2 + g * g * (1 - b2)
        v = s[1]
        if ams:
            s[2][:] = np.maximum(s[2], s[1])
            v = s[2]
        lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) / wd
        w -= s[0] / (np.sqrt(v) + eps) * lr_t

    def amsgrad(w, g, s, wd, t):
        adam(w, g, s, wd, t, ams=True)

    return {"SimpleSGDTrainer": (sgd, 0), "MomentumSGDTrainer": (momentum, 1), "AdagradTrainer": (adagrad, 1),
            "AdadeltaTrainer": (adadelta, 2), "RMSPropTrainer": (rmsprop, 1), "AdamTrainer": (adam, 2),
            "AmsgradTrainer": (amsgrad, 3)}[name]


def _data():
    rng = np.random.default_rng(12)
    return (rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (6, 3)), rng.uniform(-1, 1, (8, 3)),
            rng.uniform(-1, 1, (8, 4)), rng.uniform(-1, 1, (8, 3)))


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("trainer", ["SimpleSGDTrainer", "MomentumSGDTrainer", "AdagradTrainer", "AdadeltaTrainer",
                                     "RMSPropTrainer", "AdamTrainer", "AmsgradTrainer"])
def test_weight_decay_follows_dynets_rules(each_backend, trainer, sparse):
    W0, E0, cs, xs, ys = _data()
    pc = dy.ParameterCollection()
    W = pc.add_parameters((3, 4), init=W0)
    E = pc.add_lookup_parameters((6, 3), init=E0)
    pc.set_weight_decay(LAM)
    tr = getattr(dy, trainer)(pc)
    tr.set_sparse_updates(sparse)
    step, n_states = _rule(trainer)
    w, e, wd = W0.copy(), E0.copy(), 1.0  # DyNet's raw values and its factor
    sw, se = [np.zeros_like(w) for _ in range(n_states)], [np.zeros_like(e) for _ in range(n_states)]
    for t, rows in enumerate(ROWS, start=1):
        scale = 4.0 if t % 2 else 0.3  # odd updates clip (norm above 5), even ones do not
        dy.renew_cg()
        c, x, y = cs[t - 1] * scale, xs[t - 1], ys[t - 1] * scale
        loss = dy.dot_product(W * dy.inputVector(x), dy.inputVector(c))
        loss = loss + dy.esum([dy.dot_product(E[r], dy.inputVector(y)) for r in rows])
        # the forward reads the weights, raw * wd
        want_loss = c @ (w * wd) @ x + sum(e[r] * wd @ y for r in rows)
        assert loss.value() == pytest.approx(want_loss, rel=1e-4, abs=1e-5)
        loss.backward()
        tr.update()
        gw, ge = np.outer(c, x), np.zeros_like(e)
        for r in rows:
            ge[r] += y
        norm = math.sqrt(float((gw * gw).sum() + (ge * ge).sum()))
        gs = 5.0 / norm if norm > 5.0 else 1.0
        step(w, gw * gs, sw, wd, t)
        if sparse:  # only the looked-up rows step
            used = sorted(set(rows))
            er, sr = e[used], [s[used] for s in se]
            step(er, ge[used] * gs, sr, wd, t)
            e[used] = er
            for s, part in zip(se, sr, strict=True):
                s[used] = part
        else:
            step(e, ge * gs, se, wd, t)
        wd -= wd * LAM
        if wd < 0.25:  # DyNet's rescale_and_reset_weight_decay
            w, e, wd = w * wd, e * wd, 1.0
        np.testing.assert_allclose(W.as_array(), w * wd, rtol=2e-4, atol=2e-6, err_msg=f"W after update {t}")
        np.testing.assert_allclose(E.as_array(), e * wd, rtol=2e-4, atol=2e-6, err_msg=f"E after update {t}")


def test_a_sparse_update_with_weight_decay_leaves_unused_rows_stored_as_they_were(each_backend):
    """The decay is the collection's factor: rows never looked up are not rewritten."""
    E0 = np.random.default_rng(5).uniform(-1, 1, (1000, 4))
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((1000, 4), init=E0)
    pc.set_weight_decay(0.01)
    tr = dy.AdamTrainer(pc)
    st = E._st
    stored0 = st.backend.to_numpy(st.value).copy()
    for _ in range(3):
        dy.renew_cg()
        dy.dot_product(E[7], dy.inputVector([1.0, 2.0, 3.0, 4.0])).backward()
        tr.update()
    stored = st.backend.to_numpy(st.value)
    untouched = [k for k in range(1000) if k != 7]
    np.testing.assert_array_equal(stored[..., untouched], stored0[..., untouched])
    np.testing.assert_allclose(E.as_array()[untouched], E0[untouched] * 0.99 ** 3, rtol=1e-5)


def test_a_frozen_parameter_keeps_its_weights_under_weight_decay(each_backend):
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 2), init=np.ones((2, 2)))
    F = pc.add_parameters((2, 2), init=np.full((2, 2), 3.0))
    pc.set_weight_decay(0.1)
    tr = dy.SimpleSGDTrainer(pc)
    F.set_updated(False)
    for _ in range(2):
        dy.renew_cg()
        dy.sum_elems(W * 0.0 + F).backward()
        tr.update()
    np.testing.assert_allclose(W.as_array(), np.full((2, 2), 0.81), rtol=1e-6)
    np.testing.assert_allclose(F.as_array(), np.full((2, 2), 3.0), rtol=1e-6)
    F.set_updated(True)  # back under the collection's factor, weights unchanged
    np.testing.assert_allclose(F.as_array(), np.full((2, 2), 3.0), rtol=1e-6)
    dy.renew_cg()
    assert dy.sum_elems(F).value() == pytest.approx(12.0, rel=1e-6)
    dy.sum_elems(W * 0.0 + F * 0.0).backward()
    tr.update()
    np.testing.assert_allclose(F.as_array(), np.full((2, 2), 2.7), rtol=1e-6)


def test_weights_written_and_read_under_a_decay_factor(each_backend, tmp_path):
    """set_value, init_row, model files and clip_inplace speak in weights, whatever the factor."""
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=np.ones((2, 3)))
    E = pc.add_lookup_parameters((3, 2), init=np.ones((3, 2)))
    pc.set_weight_decay(0.5)
    tr = dy.SimpleSGDTrainer(pc)
    dy.renew_cg()
    dy.sum_elems(W * 0.0).backward()
    tr.update()  # factor 0.5
    np.testing.assert_allclose(W.as_array(), np.full((2, 3), 0.5))
    W.set_value(np.arange(6.0).reshape(2, 3))
    E.init_row(1, [7.0, 8.0])
    np.testing.assert_allclose(W.as_array(), np.arange(6.0).reshape(2, 3), rtol=1e-6)
    np.testing.assert_allclose(E.as_array(), [[0.5, 0.5], [7.0, 8.0], [0.5, 0.5]], rtol=1e-6)
    dy.renew_cg()
    assert dy.sum_elems(dy.parameter(W)).value() == pytest.approx(15.0, rel=1e-6)
    assert dy.sum_elems(E[1]).value() == pytest.approx(15.0, rel=1e-6)
    W.clip_inplace(1.0, 4.0)
    np.testing.assert_allclose(W.as_array(), np.clip(np.arange(6.0), 1, 4).reshape(2, 3), rtol=1e-6)
    path = str(tmp_path / "m.txt")
    pc.save(path)
    pc2 = dy.ParameterCollection()
    W2 = pc2.add_parameters((2, 3))
    E2 = pc2.add_lookup_parameters((3, 2))
    pc2.populate(path)
    np.testing.assert_allclose(W2.as_array(), W.as_array(), rtol=1e-6)
    np.testing.assert_allclose(E2.as_array(), E.as_array(), rtol=1e-6)
    W.set_value(np.zeros((2, 3)))
    pc.populate(path)  # loading into a collection whose factor is 0.5
    np.testing.assert_allclose(W.as_array(), W2.as_array(), rtol=1e-6)
