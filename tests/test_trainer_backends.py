"""Trainers on every backend: training after a refused gradient, and the sparse lookup update.

* a refused update (NaN/Inf gradient norm) clears the gradients, so training goes on
  (the hyperparameter checks are tested in test_fidelity.py);
* a sparse lookup update steps only the looked-up rows: the other rows' values stay
  bit-identical and their moments stay zero; the stepped rows follow DyNet's Adam formula
  (written out here in float64) with global-norm clipping over the touched rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry


def _backend_names():
    out = []
    for name in registry.names():
        rec = registry.load(name)
        out.append(pytest.param(name, marks=[] if rec.backend else pytest.mark.skip(reason=f"{name}: {rec.error}")))
    return out


@pytest.fixture(params=_backend_names())
def on_backend(request):
    before = dy.backend_name()
    dy.set_backend(request.param)
    yield request.param
    dy.set_backend(before)


def _loss(W, x):
    dy.renew_cg()
    loss = dy.sum_elems(W * dy.inputVector(x))
    loss.forward()
    loss.backward()


def test_training_goes_on_after_a_refused_gradient(on_backend):
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=np.zeros((2, 3)))
    tr = dy.SimpleSGDTrainer(pc, 0.5)
    _loss(W, [math.inf, 1.0, 1.0])
    with pytest.raises(RuntimeError, match="Magnitude of gradient is bad: inf; this update was skipped and the "
                                           "gradients were cleared"):
        tr.update()
    np.testing.assert_array_equal(W.as_array(), np.zeros((2, 3), np.float32))
    _loss(W, [0.5, 1.0, 1.5])  # norm sqrt(7) < 5: no clipping
    tr.update()  # the bad gradient is gone: this one is finite and steps
    np.testing.assert_allclose(W.as_array(), -0.5 * np.array([[0.5, 1.0, 1.5]] * 2), rtol=1e-6)


def test_lookup_training_goes_on_after_a_refused_gradient(on_backend):
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((4, 2), init=np.zeros((4, 2)))
    tr = dy.SimpleSGDTrainer(pc, 1.0)
    dy.renew_cg()
    loss = dy.dot_product(dy.lookup(E, 1), dy.inputVector([math.nan, 1.0]))
    loss.forward()
    loss.backward()
    with pytest.raises(RuntimeError, match="gradients were cleared"):
        tr.update()
    dy.renew_cg()
    loss = dy.dot_product(dy.lookup(E, 2), dy.inputVector([1.0, 1.0]))
    loss.forward()
    loss.backward()
    tr.update()
    want = np.zeros((4, 2), np.float32)
    want[2] = -1.0
    np.testing.assert_array_equal(E.as_array(), want)


def _adam_ref(w, g, m, v, t, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    m[:] = b1 * m + (1 - b1) * g
    v[:] = b2 * v + (1 - b2) * g * g
    lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return w - lr_t * m / (np.sqrt(v) + eps)


@pytest.mark.parametrize("sparse", [True, False])
def test_lookup_adam_touches_only_used_rows(on_backend, sparse):
    rows, dim = 50, 4
    rng = np.random.default_rng(3)
    E0 = rng.standard_normal((rows, dim)).astype(np.float32)
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((rows, dim), init=E0)
    tr = dy.AdamTrainer(pc)
    tr.set_sparse_updates(sparse)
    w = E0.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    used = [3, 17, 3, 42]
    for t in range(1, 4):
        dy.renew_cg()
        xs = [dy.inputVector([10.0 * (k + 1)] * dim) for k in range(len(used))]  # big: clipping engages
        loss = dy.esum([dy.dot_product(dy.lookup(E, i), x) for i, x in zip(used, xs)])
        loss.forward()
        loss.backward()
        tr.update()
        g = np.zeros_like(w)
        for k, i in enumerate(used):
            g[i] += 10.0 * (k + 1)
        norm = math.sqrt(float((g * g).sum()))
        g *= 5.0 / norm if norm > 5.0 else 1.0
        if sparse:  # DyNet's sparse update steps the touched rows only
            r = sorted(set(used))
            w[r] = _adam_ref(w[r], g[r], mr := m[r], vr := v[r], t)
            m[r], v[r] = mr, vr
        else:
            w = _adam_ref(w, g, m, v, t)
    got = E.as_array()
    np.testing.assert_allclose(got, w, rtol=2e-5, atol=1e-6)
    if sparse:
        untouched = [i for i in range(rows) if i not in used]
        np.testing.assert_array_equal(got[untouched], E0[untouched])  # bit-identical
        st = E._st
        for moment in st.states[tr._state_key]:  # Adam's m and v: zero outside the used rows
            mom = st.backend.to_numpy(moment).reshape(dim, rows).T  # stored (dim, rows)
            assert not mom[untouched].any()
            assert mom[sorted(set(used))].all()
