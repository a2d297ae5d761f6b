"""cpu_eigen's backward of the fused LSTM gates: d(pre-activations) computed once per step and
dW_x/dW_h += r in^T of every step deferred into one GEMM per weight.  Losses and every
gradient (weights, biases, inputs) must equal the executor without deferral and the NumPy
reference, for unbatched sequences (precomputed input products), minibatches, stacked
layers and dropout (which keeps the direct path)."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api.plugins import registry

try:
    CE = registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)

from dynet_backends.cpu_eigen import _cpu_eigen as M  # noqa: E402

RTOL, ATOL = 2e-5, 2e-6


pytestmark = pytest.mark.usefixtures("restore_autobatch")


def _run(backend: str, defer: bool, batch: int, layers: int, dropout: float, add_input: bool):
    dy.set_backend(backend)
    config.set_values(autobatch=int(defer))
    CE.configure()
    m = dy.ParameterCollection()
    rnn = dy.VanillaLSTMBuilder(layers, 6, 5, m)
    rng = np.random.default_rng(7)
    for p in m.parameters_list():
        p.set_value(rng.normal(size=p.shape()).astype(np.float32) * 0.4)
    if dropout:
        rnn.set_dropout(dropout)
    dy.reset_random_seed(3)
    dy.renew_cg()
    xs = [dy.inputTensor(rng.normal(size=(6, batch) if batch > 1 else 6).astype(np.float32), batched=batch > 1)
          for _ in range(7)]
    s = rnn.initial_state()
    if add_input:
        hs = []
        for x in xs:
            s = s.add_input(x)
            hs.append(s.output())
    else:
        hs = s.transduce(xs)
    loss = dy.sum_batches(dy.esum([dy.sum_elems(dy.tanh(h)) * (k + 1) for k, h in enumerate(hs)]))
    before = M.autobatch_stats()[2]
    v = loss.value()
    loss.backward(full=True)
    merged = M.autobatch_stats()[2] - before
    grads = [p.grad_as_array() for p in m.parameters_list()]
    return v, grads, [x.gradient() for x in xs], merged


@pytest.mark.parametrize("add_input", [False, True], ids=["transduce", "add_input"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_deferred_lstm_weight_grads_match(batch, layers, add_input):
    base = _run("cpu_eigen", False, batch, layers, 0.0, add_input)
    got = _run("cpu_eigen", True, batch, layers, 0.0, add_input)
    ref = _run("reference_numpy", False, batch, layers, 0.0, add_input)
    assert base[3] == 0
    assert got[3] >= layers  # at least W_h of every layer ran as one GEMM over its steps
    for label, run in (("deferred", got), ("reference", ref)):
        np.testing.assert_allclose(run[0], base[0], rtol=RTOL, atol=ATOL, err_msg=f"{label} loss")
        for j, (g, w) in enumerate(zip(run[1], base[1], strict=True)):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{label} parameter {j}")
        for j, (g, w) in enumerate(zip(run[2], base[2], strict=True)):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{label} dx{j}")


def test_dropout_gates_keep_the_direct_path():
    base = _run("cpu_eigen", False, 2, 1, 0.3, True)
    got = _run("cpu_eigen", True, 2, 1, 0.3, True)
    np.testing.assert_allclose(got[0], base[0], rtol=RTOL, atol=ATOL)
    for g, w in zip(got[1] + got[2], base[1] + base[2], strict=True):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def test_gates_backward_against_finite_differences():
    """The deferred path's dW_h against central differences of the loss (float64 check of one entry)."""
    dy.set_backend("cpu_eigen")
    m = dy.ParameterCollection()
    rnn = dy.VanillaLSTMBuilder(1, 3, 2, m)
    rng = np.random.default_rng(1)
    for p in m.parameters_list():
        p.set_value(rng.normal(size=p.shape()).astype(np.float32) * 0.5)
    arrays = [rng.normal(size=3).astype(np.float32) for _ in range(4)]
    wh = [p for p in m.parameters_list() if p.shape() == (8, 2)][0]

    def loss_value():
        dy.renew_cg()
        hs = rnn.initial_state().transduce([dy.inputTensor(a) for a in arrays])
        return dy.esum([dy.sum_elems(h) for h in hs])

    loss = loss_value()
    loss.value()
    loss.backward()
    g = wh.grad_as_array()[5, 1]
    w0 = wh.as_array().copy()
    eps = 1e-2
    vals = []
    for sgn in (1, -1):
        w = w0.copy()
        w[5, 1] += sgn * eps
        wh.set_value(w)
        vals.append(float(loss_value().value()))
    wh.set_value(w0)
    assert abs(g - (vals[0] - vals[1]) / (2 * eps)) < 2e-3 * max(1.0, abs(g))


def _lookup_lm(backend: str, defer: bool):
    """add_input over batched lookups (the steps' W_x x run as one GEMM each way, and the
    lookups' gradients wait for it); one lookup node also feeds the loss directly and one
    row repeats across steps, so a row's gradient gathers several parts."""
    dy.set_backend(backend)
    config.set_values(autobatch=int(defer))
    CE.configure()
    rng = np.random.default_rng(11)
    m = dy.ParameterCollection()
    E = m.lookup_parameters_from_numpy(rng.normal(size=(9, 6)).astype(np.float32))
    rnn = dy.VanillaLSTMBuilder(1, 6, 5, m)
    W = m.add_parameters((9, 5))
    for p in m.parameters_list():
        p.set_value(rng.normal(size=p.shape()).astype(np.float32) * 0.4)
    dy.renew_cg()
    s = rnn.initial_state()
    rows = [[0, 3, 8], [4, 3, 1], [2, 2, 7], [3, 5, 0], [6, 1, 3]]
    losses, xs = [], []
    for t, ids in enumerate(rows):
        x = dy.lookup_batch(E, ids)
        xs.append(x)
        s = s.add_input(x)
        losses.append(dy.pickneglogsoftmax_batch(W * s.output(), rows[(t + 1) % len(rows)]))
    losses.append(dy.sum_elems(dy.square(xs[2])))  # a second consumer of one lookup
    loss = dy.sum_batches(dy.esum(losses))
    v = loss.value()
    loss.backward(full=True)
    return v, [E.grad_as_array()] + [p.grad_as_array() for p in m.parameters_list()], [x.gradient() for x in xs]


def test_lstm_input_products_over_lookups_match():
    base = _lookup_lm("cpu_eigen", False)
    got = _lookup_lm("cpu_eigen", True)
    ref = _lookup_lm("reference_numpy", False)
    for label, run in (("batched", got), ("reference", ref)):
        np.testing.assert_allclose(run[0], base[0], rtol=RTOL, atol=ATOL, err_msg=f"{label} loss")
        for j, (g, w) in enumerate(zip(run[1] + run[2], base[1] + base[2], strict=True)):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{label} gradient {j}")
    assert np.abs(base[1][0]).sum() > 0  # the table got its gradient
