"""DyNet 2.1.2's values at the edges, on every first-party backend.

The expected numbers are computed here from DyNet's own formulas (nodes-*.cc and
functors.h of the 2.1.2 sources), not from this project's kernels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy

FLT_MIN = float(np.finfo(np.float32).tiny)
CAP = -math.log(FLT_MIN)  # DyNet's cost of a prediction of exactly 0 or 1 on the wrong side


def _param(m, values):
    values = np.asarray(values, dtype=np.float32)
    p = m.add_parameters(values.shape)
    p.set_value(values)
    return p


# ----------------------------------------------------------------- huber_distance


def test_huber_distance_is_half_the_sum_as_in_dynet(each_backend):
    m = dy.ParameterCollection()
    x = _param(m, [1.0, -2.0, 0.5])
    c = 1.345
    d = np.array([1.0, -2.0, 0.5])
    want = 0.5 * np.where(np.abs(d) < c, d * d, c * (2 * np.abs(d) - c)).sum()
    assert want == pytest.approx(2.4105, abs=1e-4)  # DyNet 2.1.2's printed value
    loss = dy.huber_distance(x, dy.zeros(3), c)
    assert loss.value() == pytest.approx(want, rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(x.grad_as_array(), np.where(np.abs(d) < c, d, c * np.sign(d)), rtol=1e-6)


# ----------------------------------------------------------------- binary_log_loss


@pytest.mark.parametrize("pred, target, want", [
    (1.0, 0.0, CAP), (0.0, 1.0, CAP), (0.0, 0.5, CAP), (1.0, 0.5, CAP),
    (0.25, 1.0, -math.log(0.25)), (0.25, 0.0, -math.log(0.75)),
    (0.25, 0.5, -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))),
    (1.0, 1.0, 0.0), (0.0, 0.0, 0.0),
])
def test_binary_log_loss_clamps_as_dynet(each_backend, pred, target, want):
    dy.renew_cg()
    loss = dy.binary_log_loss(dy.inputTensor([pred]), dy.inputTensor([target]))
    assert loss.value() == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("pred, target", [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.25, 1.0), (0.25, 0.0), (0.3, 0.6)])
def test_binary_log_loss_gradient_follows_dynets_clamp(each_backend, pred, target):
    m = dy.ParameterCollection()
    p = _param(m, [pred])
    dy.binary_log_loss(p, dy.inputTensor([target])).backward()
    # FBinaryLogLossBackward: 0 where x == t; x = 0 -> FLT_MIN, x = 1 -> 0.9999999f
    x = np.float32(FLT_MIN) if pred == 0 else (np.float32(0.9999999) if pred == 1 else np.float32(pred))
    x = float(x)
    if pred == target:
        want = 0.0
    elif target == 1:
        want = -target / x
    elif target == 0:
        want = (1 - target) / (1 - x)
    else:
        want = (1 - target) / (1 - x) - target / x
    got = float(p.grad_as_array()[0])
    assert np.isfinite(got)
    assert got == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------- hinge


def test_hinge_batch_gives_no_gradient_to_elements_without_loss(each_backend):
    """DyNet skips batch elements whose hinge loss is 0, so an infinite upstream gradient there
    (sqrt at 0) leaves them at 0 instead of NaN."""
    m = dy.ParameterCollection()
    # columns are batch elements: gold rows 0, 1, 2; element 0 has no loss at margin 1
    P = _param(m, [[5.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 3.0, 0.5]])
    x = dy.reshape(P, (3,), batch_size=3)
    h = dy.hinge_batch(x, [0, 1, 2], 1.0)
    np.testing.assert_allclose(h.npvalue().ravel(), [0.0, 6.0, 2.0])
    dy.sum_batches(dy.sqrt(h)).backward()
    g = P.grad_as_array()
    assert np.isfinite(g).all(), g
    # column 1: rows 0 (1 - 0 + 1 = 2) and 2 (3 - 0 + 1 = 4) active, so h = 6 and dL/dh = 1 / (2 sqrt 6)
    s1 = 0.5 / math.sqrt(6.0)
    s2 = 0.5 / math.sqrt(2.0)  # column 2: rows 0 (0 - 0.5 + 1) and 1 (1 - 0.5 + 1) active, h = 2
    want = np.array([[0.0, s1, s2], [0.0, -2 * s1, s2], [0.0, s1, -2 * s2]])
    np.testing.assert_allclose(g, want, rtol=1e-5)


def test_hinge_at_zero_margin_ties_is_inactive(each_backend):
    m = dy.ParameterCollection()
    P = _param(m, [2.0, 2.0, 1.0])
    loss = dy.hinge(P, 0, 0.0)
    assert loss.value() == 0.0
    dy.sqrt(loss).backward()
    np.testing.assert_array_equal(P.grad_as_array(), [0.0, 0.0, 0.0])


# ----------------------------------------------------------------- output dims


@pytest.mark.parametrize("f", [lambda a, b: a + b, lambda a, b: a - b, dy.cmult, dy.cdiv])
def test_broadcasting_elementwise_ops_keep_trailing_ones_as_dynet(each_backend, f):
    """DyNet's Cwise* dim_forward: as many dims as the longer operand, trailing 1s kept."""
    a = dy.inputTensor(np.full((3, 3, 3), 2.0), batched=True)
    c = dy.inputTensor(np.ones((3, 3, 1)))
    assert c.dim() == ((3, 3, 1), 1)
    y = f(a, c)
    assert y.dim() == ((3, 3, 1), 3)
    assert y.npvalue().shape == (3, 3, 1, 3)
    assert f(c, dy.inputTensor(np.ones((3, 3)))).dim() == ((3, 3, 1), 1)
    assert f(a, dy.inputTensor([2.0])).dim() == ((3, 3), 3)  # a scalar-shaped {1} operand
    assert f(dy.inputTensor([2.0]), c).dim() == ((3, 3, 1), 1)


def test_conv2d_takes_a_2d_input_as_one_channel(each_backend):
    m = dy.ParameterCollection()
    x = _param(m, np.arange(20.0).reshape(4, 5))
    f = dy.inputTensor(np.arange(12.0).reshape(2, 2, 1, 3))
    y = dy.conv2d(x, f, [1, 1])
    assert y.dim() == ((3, 4, 3), 1)
    xv, fv = np.arange(20.0).reshape(4, 5), np.arange(12.0).reshape(2, 2, 1, 3)
    want = np.zeros((3, 4, 3))
    for i in range(3):
        for j in range(4):
            want[i, j] = np.einsum("ab,abc->c", xv[i:i + 2, j:j + 2], fv[:, :, 0, :])
    np.testing.assert_allclose(y.npvalue(), want, rtol=1e-6)
    dy.sum_elems(y).backward()
    gw = np.zeros((4, 5))
    for i in range(3):
        for j in range(4):
            gw[i:i + 2, j:j + 2] += fv[:, :, 0, :].sum(axis=-1)
    np.testing.assert_allclose(x.grad_as_array(), gw, rtol=1e-6)


# ----------------------------------------------------------------- check_validity


@pytest.mark.parametrize("immediate", [False, True])
def test_check_validity_names_the_op_without_immediate_compute(each_backend, immediate):
    dy.renew_cg(immediate_compute=immediate, check_validity=True)
    x = dy.inputTensor([1.0, -1.0])
    with pytest.raises(RuntimeError, match=r"check_validity: log \(node \d+\) produced NaN or Inf"):
        y = dy.sum_elems(dy.tanh(dy.log(x)))  # log(-1) is NaN
        y.value()
    dy.renew_cg(check_validity=True)
    assert dy.sum_elems(dy.tanh(dy.inputTensor([1.0, 2.0]))).value() == pytest.approx(np.tanh([1, 2]).sum())


def test_without_check_validity_nan_passes_silently(each_backend):
    dy.renew_cg()
    v = dy.log(dy.inputTensor([-1.0, 1.0])).npvalue()
    assert np.isnan(v[0]) and v[1] == 0.0


# ----------------------------------------------------------------- NaN is never hidden


@pytest.mark.parametrize("loss", [
    lambda x: dy.pickneglogsoftmax(x, 1),
    lambda x: dy.hinge(x, 1, 1.0),
    lambda x: dy.logsumexp([x, x]),
    lambda x: dy.logsumexp_dim(x, 0),
    lambda x: dy.log_softmax(x),
    lambda x: dy.rectify(x),
], ids=["pickneglogsoftmax", "hinge", "logsumexp", "logsumexp_dim", "log_softmax", "rectify"])
def test_nan_input_gives_nan_on_every_backend(each_backend, loss):
    y = loss(dy.inputTensor([np.nan, 2.0, 0.5])).npvalue()
    assert np.isnan(y).any(), y


def test_logsumexp_of_infinities(each_backend):
    assert dy.logsumexp([dy.inputTensor([-np.inf]), dy.inputTensor([1.0])]).value() == pytest.approx(1.0)
    assert dy.logsumexp([dy.inputTensor([np.inf]), dy.inputTensor([1.0])]).value() == np.inf
    assert dy.logsumexp([dy.inputTensor([-np.inf]), dy.inputTensor([-np.inf])]).value() == -np.inf


# ----------------------------------------------------------------- indices are ints


def _index_cases():
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((5, 3))
    v = dy.inputTensor(np.arange(5.0))
    x = dy.inputTensor(np.ones((5, 2)), batched=True)
    sq = dy.inputTensor(np.ones((3, 3)))
    return E, {
        "lookup": lambda i: dy.lookup(E, i), "E[i]": lambda i: E[i], "const_lookup": lambda i: dy.const_lookup(E, i),
        "lookup_batch": lambda i: dy.lookup_batch(E, [i, 2]), "pick": lambda i: dy.pick(v, i),
        "pick_dim": lambda i: dy.pick(v, 1, i - 1), "pick_batch": lambda i: dy.pick_batch(x, [i, 2]),
        "pickneglogsoftmax": lambda i: dy.pickneglogsoftmax(v, i),
        "pickneglogsoftmax_batch": lambda i: dy.pickneglogsoftmax_batch(x, [i, 2]),
        "hinge": lambda i: dy.hinge(v, i), "hinge_batch": lambda i: dy.hinge_batch(x, [i, 1]),
        "select_rows": lambda i: dy.select_rows(sq, [i]), "select_cols": lambda i: dy.select_cols(sq, [i]),
        "pick_batch_elem": lambda i: dy.pick_batch_elem(x, i), "pick_range": lambda i: dy.pick_range(v, i, 3),
        "one_hot": lambda i: dy.one_hot(5, i), "row_as_array": lambda i: E.row_as_array(i),
        "softmax": lambda i: dy.softmax(v, i - 1),
    }


@pytest.mark.parametrize("name", list(_index_cases()[1]))
def test_float_indices_are_refused_not_truncated(each_backend, name):
    _, cases = _index_cases()
    with pytest.raises(TypeError, match="int"):
        cases[name](1.7)
    with pytest.raises(TypeError, match="int"):
        cases[name](1.0)  # an integral float too: DyNet's Cython takes only ints
    cases[name](np.int64(1))  # NumPy integers stay accepted
    cases[name](1)


# ----------------------------------------------------------------- attribute domains


@pytest.mark.parametrize("call, match", [
    (lambda x: dy.noise(x, -1.0), "noise: stddev must be >= 0"),
    (lambda x: dy.noise(x, float("nan")), "noise: stddev must be >= 0"),
    (lambda x: dy.random_normal((3,), 0.0, -0.1), "random_normal: stddev must be >= 0"),
    (lambda x: dy.dropout(x, 1.5), "dropout: p must be in"),
    (lambda x: dy.dropout(x, -0.1), "dropout: p must be in"),
    (lambda x: dy.random_bernoulli((3,), float("nan")), "random_bernoulli: p must be in"),
    (lambda x: dy.random_gumbel((3,), 0.0, -1.0), "random_gumbel: beta must be >= 0"),
    (lambda x: dy.hinge(x, 0, -1.0), "hinge: m must be >= 0"),
    (lambda x: dy.huber_distance(x, x, 0.0), "huber_distance: c must be > 0"),
], ids=["noise-neg", "noise-nan", "random_normal", "dropout-hi", "dropout-neg", "bernoulli-nan", "gumbel", "hinge",
        "huber"])
def test_out_of_domain_attributes_are_refused_on_every_backend(each_backend, call, match):
    x = dy.inputTensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=match):
        call(x).npvalue()
    assert dy.noise(x, 0.0).npvalue().tolist() == [1.0, 2.0, 3.0]  # stddev 0 is legal


# ----------------------------------------------------------------- trainers


@pytest.mark.parametrize("make", [
    lambda m: dy.SimpleSGDTrainer(m, float("nan")), lambda m: dy.SimpleSGDTrainer(m, -0.1),
    lambda m: dy.AdamTrainer(m, alpha=float("inf")), lambda m: dy.AdamTrainer(m, beta_1=1.0),
    lambda m: dy.AdamTrainer(m, beta_2=float("nan")), lambda m: dy.MomentumSGDTrainer(m, mom=-0.5),
    lambda m: dy.AdagradTrainer(m, eps=-1.0), lambda m: dy.RMSPropTrainer(m, rho=2.0),
    lambda m: dy.CyclicalSGDTrainer(m, learning_rate_max=float("nan")),
    lambda m: dy.SimpleSGDTrainer(m).set_learning_rate(float("nan")),
    lambda m: setattr(dy.SimpleSGDTrainer(m), "learning_rate", -1.0),
    lambda m: dy.SimpleSGDTrainer(m).restart(float("nan")),
    lambda m: dy.SimpleSGDTrainer(m).set_clip_threshold(float("nan")),
])
def test_bad_hyperparameters_are_refused(make):
    m = dy.ParameterCollection()
    m.add_parameters(3)
    with pytest.raises(ValueError, match="Trainer"):
        make(m)


def test_inf_or_nonpositive_clip_threshold_means_no_clipping():
    m = dy.ParameterCollection()
    p = m.add_parameters(1, init=dy.ConstInitializer(0.0))
    for thr in (0.0, -1.0, float("inf")):
        t = dy.SimpleSGDTrainer(m, 1.0)
        t.set_clip_threshold(thr)
        p.set_value(np.array([0.0]))
        dy.renew_cg()
        (p * 100.0).backward()
        t.update()
        assert p.as_array()[0] == pytest.approx(-100.0)  # a norm of 100 is not clipped


def test_a_refused_gradient_is_cleared_so_training_continues(each_backend):
    m = dy.ParameterCollection()
    p = m.add_parameters(2, init=dy.ConstInitializer(1.0))
    E = m.add_lookup_parameters((4, 2), init=dy.ConstInitializer(1.0))
    t = dy.SimpleSGDTrainer(m, 0.5)
    dy.renew_cg()
    loss = dy.sum_elems(dy.cmult(p + dy.lookup(E, 3), dy.inputTensor([np.inf, 1.0])))
    loss.backward()
    with pytest.raises(RuntimeError, match="Magnitude of gradient is bad.*skipped.*cleared"):
        t.update()
    np.testing.assert_array_equal(p.as_array(), [1.0, 1.0])
    dy.renew_cg()
    dy.sum_elems(p + dy.lookup(E, 1)).backward()
    t.update()  # a finite gradient updates again
    np.testing.assert_allclose(p.as_array(), [0.5, 0.5])
    np.testing.assert_allclose(E.as_array()[1], [0.5, 0.5])
    np.testing.assert_allclose(E.as_array()[3], [1.0, 1.0])  # the refused row's gradient is gone
