"""Graph semantics: lazy and incremental evaluation, mutable inputs, backward and
gradients, checkpoints, immediate compute, stale expressions, graphviz text."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy


def n_nodes() -> int:
    return len(dy.cg().nodes)


@pytest.fixture
def spy(monkeypatch):
    """Records the [a, b) node ranges the executor is asked to evaluate."""
    calls: list[tuple[int, int]] = []
    dy.inputVector([0.0])  # binds the graph to its backend and executor
    ex = dy.cg().executor
    real = ex.forward

    def forward(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ex, "forward", forward)
    dy.renew_cg()
    assert dy.cg().executor is ex
    return calls


# ===================================================================== lazy and incremental evaluation


def test_nothing_is_computed_until_a_value_is_asked(spy):
    x = dy.inputVector([1.0, 2.0])
    y = dy.tanh(x)
    z = y * 2.0
    assert spy == []
    assert z.dim() == ((2,), 1)  # shapes are known without evaluating
    assert spy == []
    np.testing.assert_allclose(z.npvalue(), 2 * np.tanh([1.0, 2.0]), rtol=1e-6)
    assert spy == [(0, 3)]


def test_forward_is_incremental(spy):
    x = dy.inputVector([1.0, 2.0])
    y = dy.exp(x)
    y.value()
    assert spy == [(0, 2)]
    y.value()  # cached: nothing recomputed
    assert spy == [(0, 2)]
    z = dy.sum_elems(y)
    assert z.value() == pytest.approx(np.exp(1) + np.exp(2), rel=1e-6)
    assert spy == [(0, 2), (2, 3)]  # only the new node
    x.value()  # an earlier node: already there
    assert spy == [(0, 2), (2, 3)]


def test_value_of_an_early_node_computes_only_what_it_needs(spy):
    x = dy.inputVector([1.0, 2.0])
    y = dy.square(x)
    dy.exp(y)
    dy.log(x)
    assert y.value() == [1.0, 4.0]
    assert spy == [(0, 2)]


def test_forward_and_incremental_forward_methods(spy):
    x = dy.inputVector([1.0])
    y = dy.exp(x)
    y.forward()
    assert spy == [(0, 2)]
    z = -y
    z.incremental_forward()
    assert spy == [(0, 2), (2, 3)]
    dy.forward([z, y])
    assert spy == [(0, 2), (2, 3)]
    w = z + 1.0
    dy.cg().forward(w)
    assert spy[-1] == (3, 4)
    assert dy.values([x, w]) == pytest.approx([1.0, 1.0 - np.e])
    assert [a.shape for a in dy.npvalues([x, w])] == [(1,), (1,)]


def test_recalculate_reruns_the_graph():
    r = dy.random_normal(4)
    a = r.npvalue()
    np.testing.assert_array_equal(r.npvalue(), a)  # cached
    b = r.npvalue(recalculate=True)
    assert not np.array_equal(a, b)  # a fresh draw
    c = r.value(recalculate=True)
    assert not np.array_equal(b, c)
    s = dy.sum_elems(r)
    assert s.scalar_value(recalculate=True) == pytest.approx(float(r.npvalue().sum()), rel=1e-5)


# ===================================================================== mutable inputs


def test_vecInput_set_recomputes():
    x = dy.vecInput(3)
    np.testing.assert_array_equal(x.npvalue(), np.zeros(3))
    y = dy.sum_elems(dy.cmult(x, x))
    assert y.value() == 0.0
    x.set([1.0, 2.0, 3.0])
    assert y.value() == pytest.approx(14.0)
    x.set([0.0, 0.0, 2.0])
    assert y.scalar_value() == pytest.approx(4.0)
    assert x.vec_value() == [0.0, 0.0, 2.0]


def test_matInput_set_is_column_major():
    m = dy.matInput(2, 3)
    r = dy.sum_dim(m, [1])  # row sums
    m.set([1, 2, 3, 4, 5, 6])  # DyNet's column-major order: columns (1,2), (3,4), (5,6)
    np.testing.assert_allclose(m.npvalue(), [[1, 3, 5], [2, 4, 6]])
    np.testing.assert_allclose(r.npvalue(), [9, 12])
    m.set(np.arange(6.0))
    np.testing.assert_allclose(r.npvalue(), [0 + 2 + 4, 1 + 3 + 5])


def test_scalarInput_and_inputVector_set():
    s = dy.scalarInput(2.0)
    v = dy.inputVector([1.0, -1.0])
    y = v * s
    assert y.value() == [2.0, -2.0]
    s.set(3.0)
    assert y.value() == [3.0, -3.0]
    v.set([0.5, 0.25])
    assert y.value() == [1.5, 0.75]


@pytest.mark.parametrize("v", [
    [0.1, -2.5, 1e30, float("nan")], [1, 2, 3], [True, 2.0], [2 ** 70, -1], [np.float32(2.5), np.int64(3), 1.0],
    [[1.0, 2.0], [3.0, 4.0]], ["1.5", 2], np.arange(4.0), (0.5, 1.5), list(np.linspace(-1, 1, 5)),
    [np.float16(0.1), np.uint8(200), False], [np.array(1.5), 2.0], [np.array([1.0, 2.0]), np.array([3.0, 4.0])]],
    ids=repr)
def test_inputVector_converts_as_numpy_does(v):
    """A flat list of numbers (numpy's scalars too) takes a C conversion; everything else numpy's:
    the same values either way."""
    want = np.asarray(v, dtype=np.float32).reshape(-1)
    e = dy.inputVector(v)
    np.testing.assert_array_equal(e.npvalue(), want)


def test_inputVector_copies_its_data():
    v, a = [1.0, 2.0], np.array([1.0, 2.0], np.float32)
    e, f = dy.inputVector(v), dy.inputVector(a)
    v[0], a[0] = 9.0, 9.0
    np.testing.assert_array_equal(e.npvalue(), [1.0, 2.0])
    np.testing.assert_array_equal(f.npvalue(), [1.0, 2.0])
    with pytest.raises(ValueError, match="could not convert"):
        dy.inputVector([1.0, "x"])


def test_set_with_wrong_size_raises_and_keeps_value():
    x = dy.vecInput(3)
    x.set([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        x.set([1.0, 2.0])
    assert x.value() == [1.0, 2.0, 3.0]


def test_set_then_backward_uses_new_values():
    pc = dy.ParameterCollection()
    w = pc.add_parameters(3, init=dy.ConstInitializer(1.0))
    x = dy.vecInput(3)
    loss = dy.dot_product(w, x)
    x.set([1.0, 2.0, 3.0])
    loss.backward()
    np.testing.assert_allclose(w.grad_as_array(), [1, 2, 3])
    x.set([4.0, 0.0, 0.0])
    assert loss.value() == pytest.approx(4.0)
    loss.backward()  # gradients accumulate: [1, 2, 3] + [4, 0, 0]
    np.testing.assert_allclose(w.grad_as_array(), [5, 2, 3])


def test_lookup_set_changes_row():
    pc = dy.ParameterCollection()
    lp = pc.lookup_parameters_from_numpy(np.arange(12.0).reshape(4, 3))
    e = dy.lookup(lp, 1)
    y = dy.sum_elems(e)
    assert y.value() == pytest.approx(3 + 4 + 5)
    e.set(3)
    assert y.value() == pytest.approx(9 + 10 + 11)
    with pytest.raises(IndexError):
        e.set(4)
    assert y.value() == pytest.approx(9 + 10 + 11)


def test_inputTensor_set_needs_reusable_expr():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = dy.inputTensor(a)
    with pytest.raises(ValueError, match="reusable"):
        x.set(np.zeros(4))
    r = dy.inputTensor(a, reusable_expr=True)
    s = dy.sum_elems(r)
    assert s.value() == 10.0
    r.set(np.ones(4))
    assert s.value() == 4.0


# ===================================================================== backward and gradients


def _wx_graph():
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=dy.NumpyInitializer(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])))
    x = dy.inputVector([1.0, -1.0, 2.0])
    h = W * x
    c = dy.inputVector([1.0, 10.0])
    loss = dy.dot_product(h, c)
    return W, x, h, c, loss


def test_gradient_before_backward_raises():
    W, x, h, c, loss = _wx_graph()
    loss.value()
    with pytest.raises(RuntimeError, match="backward"):
        h.gradient()


def test_backward_full_false_and_true():
    W, x, h, c, loss = _wx_graph()
    loss.backward()
    # d loss / d W = c x^T
    np.testing.assert_allclose(W.grad_as_array(), np.outer([1, 10], [1, -1, 2]))
    np.testing.assert_allclose(h.gradient(), [1, 10])  # on the path to a parameter
    np.testing.assert_allclose(x.gradient(), np.zeros(3))  # inputs get none without full=True
    dy.renew_cg()
    W, x, h, c, loss = _wx_graph()
    loss.backward(full=True)
    Wv = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_allclose(x.gradient(), Wv.T @ [1, 10])
    np.testing.assert_allclose(c.gradient(), Wv @ [1, -1, 2])
    assert loss.gradient().shape == (1,) and loss.gradient()[0] == 1.0


def test_gradients_accumulate_until_update():
    pc = dy.ParameterCollection()
    w = pc.add_parameters(2, init=dy.NumpyInitializer(np.array([1.0, 2.0])))
    tr = dy.SimpleSGDTrainer(pc, learning_rate=0.5)
    dy.dot_product(w, dy.inputVector([1.0, 3.0])).backward()
    dy.renew_cg()
    dy.dot_product(w, dy.inputVector([2.0, -1.0])).backward()
    np.testing.assert_allclose(w.grad_as_array(), [3.0, 2.0])
    tr.update()
    np.testing.assert_allclose(w.as_array(), [1 - 0.5 * 3, 2 - 0.5 * 2])
    np.testing.assert_allclose(w.grad_as_array(), [0.0, 0.0])


def test_parameter_used_twice_is_one_node_with_summed_gradient():
    pc = dy.ParameterCollection()
    w = pc.add_parameters(2, init=dy.ConstInitializer(0.5))
    a = dy.dot_product(w, dy.inputVector([1.0, 2.0]))
    n = n_nodes()
    b = dy.dot_product(w, dy.inputVector([10.0, 20.0]))
    assert n_nodes() == n + 2  # the input and the dot product: w is already in the graph
    (a + b).backward()
    np.testing.assert_allclose(w.grad_as_array(), [11.0, 22.0])


def test_lookup_gradients_go_to_rows():
    pc = dy.ParameterCollection()
    lp = pc.lookup_parameters_from_numpy(np.zeros((4, 2)))
    e = dy.lookup_batch(lp, [1, 3, 1])
    c = dy.inputTensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), batched=True)
    dy.sum_batches(dy.dot_product(e, c)).backward()
    g = lp.grad_as_array()
    np.testing.assert_allclose(g, [[0, 0], [1 + 3, 4 + 6], [0, 0], [2, 5]])
    dy.renew_cg()
    const = dy.lookup(lp, 0, update=False)
    dy.sum_elems(const).backward()
    np.testing.assert_allclose(lp.grad_as_array()[0], [0, 0])


def test_backward_needs_a_scalar_of_batch_one():
    with pytest.raises(ValueError, match="scalar"):
        dy.inputVector([1.0, 2.0]).backward()
    batched = dy.inputTensor(np.array([1.0, 2.0]), batched=True)
    assert batched.dim() == ((1,), 2)
    with pytest.raises(ValueError, match="sum_batches"):
        batched.backward()
    dy.sum_batches(batched).backward()  # the documented way


# ===================================================================== checkpoints


def test_checkpoint_and_revert():
    x = dy.inputVector([1.0, 2.0])
    y = dy.exp(x)
    assert y.value() == pytest.approx(list(np.exp([1.0, 2.0])), rel=1e-6)
    dy.cg_checkpoint()
    n = n_nodes()
    z = dy.log(y)
    z2 = z * 3.0
    assert z2.value() == pytest.approx([3.0, 6.0], rel=1e-6)
    dy.cg_revert()
    assert n_nodes() == n
    # the graph before the checkpoint is intact and new nodes compute
    w = dy.sum_elems(y)
    assert w.value() == pytest.approx(float(np.exp(1) + np.exp(2)), rel=1e-6)
    assert y.value() == pytest.approx(list(np.exp([1.0, 2.0])), rel=1e-6)


def test_nested_checkpoints_and_revert_without_checkpoint():
    x = dy.inputVector([1.0])
    dy.cg_checkpoint()
    dy.exp(x)
    dy.cg_checkpoint()
    dy.exp(x)
    dy.exp(x)
    assert n_nodes() == 4
    dy.cg_revert()
    assert n_nodes() == 2
    dy.cg_revert()
    assert n_nodes() == 1
    with pytest.raises(RuntimeError, match="checkpoint"):
        dy.cg_revert()


def test_revert_invalidates_values_of_dropped_nodes():
    x = dy.inputVector([2.0])
    dy.cg_checkpoint()
    a = dy.square(x)
    assert a.value() == 4.0
    dy.cg_revert()
    b = dy.cube(x)  # takes the reverted node's place
    assert b.i == a.i
    assert b.value() == 8.0


# ===================================================================== renew_cg options


def test_renew_cg_bumps_version():
    v = dy.cg_version()
    dy.renew_cg()
    assert dy.cg_version() == v + 1
    assert dy.cg().version() == v + 1


def test_immediate_compute_evaluates_each_node(spy):
    dy.renew_cg(immediate_compute=True)
    x = dy.inputVector([1.0, 2.0])
    dy.exp(x)
    assert spy == [(0, 1), (1, 2)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_check_validity_raises_naming_the_op():
    dy.renew_cg(immediate_compute=True, check_validity=True)
    x = dy.inputVector([1.0, -1.0])
    y = dy.exp(x)
    n = n_nodes()
    with pytest.raises(RuntimeError, match="log"):
        dy.log(x)
    assert n_nodes() == n  # the failed node left the graph; the rest still works
    assert dy.sum_elems(y).value() == pytest.approx(np.e + 1 / np.e, rel=1e-6)
    with pytest.raises(RuntimeError, match="cdiv"):
        dy.cdiv(y, dy.inputVector([0.0, 1.0]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_check_validity_checks_lazy_graphs_too():
    # DyNet checks only when immediate_compute is on; dynet_api checks every forward on purpose
    dy.renew_cg(check_validity=True)
    y = dy.log(dy.inputVector([-1.0]))
    with pytest.raises(RuntimeError, match="check_validity: log"):
        y.value()


def test_renew_cg_resets_immediate_mode(spy):
    dy.renew_cg(immediate_compute=True)
    dy.renew_cg()
    dy.exp(dy.inputVector([1.0]))
    assert spy == []


# ===================================================================== stale expressions

STALE_USES = {
    "value": lambda e, f: e.value(),
    "npvalue": lambda e, f: e.npvalue(),
    "scalar_value": lambda e, f: e.scalar_value(),
    "vec_value": lambda e, f: e.vec_value(),
    "dim": lambda e, f: e.dim(),
    "forward": lambda e, f: e.forward(),
    "backward": lambda e, f: e.backward(),
    "gradient": lambda e, f: e.gradient(),
    "set": lambda e, f: e.set([1.0]),
    "tanh": lambda e, f: dy.tanh(e),
    "add_left": lambda e, f: e + f,
    "add_right": lambda e, f: f + e,
    "sub_right": lambda e, f: f - e,
    "mul_right": lambda e, f: f * e,
    "mul_left": lambda e, f: e * f,
    "number_ops": lambda e, f: 2.0 * e,
    "div": lambda e, f: e / 2.0,
    "neg": lambda e, f: -e,
    "index": lambda e, f: e[0],
    "cmult": lambda e, f: dy.cmult(f, e),
    "esum": lambda e, f: dy.esum([f, e]),
    "concatenate": lambda e, f: dy.concatenate([f, e]),
    "affine": lambda e, f: dy.affine_transform([f, f, e]),
    "reshape": lambda e, f: dy.reshape(e, (1,)),
    "sum_elems": lambda e, f: dy.sum_elems(e),
    "dropout": lambda e, f: dy.dropout(e, 0.5),
    "noise": lambda e, f: dy.noise(e, 0.1),
    "forward_list": lambda e, f: dy.forward([f, e]),
}


@pytest.mark.parametrize("use", sorted(STALE_USES))
def test_stale_expression_raises(use):
    old = dy.inputVector([1.0])
    old_mut = dy.vecInput(1)
    dy.renew_cg()
    fresh = dy.inputVector([2.0])
    n = n_nodes()
    target = old_mut if use == "set" else old
    with pytest.raises(dy.StaleExpressionError) as info:
        STALE_USES[use](target, fresh)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    assert "stale" in str(info.value).lower()
    assert n_nodes() == n  # nothing was added
    assert (fresh * 2.0).value() == 4.0  # and the graph still works


def test_stale_after_several_renewals():
    old = dy.inputVector([1.0])
    for _ in range(3):
        dy.renew_cg()
    dy.inputVector([1.0])
    with pytest.raises(dy.StaleExpressionError):
        old.value()


def test_parameters_survive_renew_cg():
    pc = dy.ParameterCollection()
    w = pc.add_parameters(2, init=dy.ConstInitializer(3.0))
    assert (w * 2.0).value() == [6.0, 6.0]
    dy.renew_cg()
    assert (w + 1.0).value() == [4.0, 4.0]  # parameters re-enter each new graph
    assert w.value() == [3.0, 3.0]


# ===================================================================== graphviz and printing


def test_print_text_graphviz(capsys):
    x = dy.inputVector([1.0, 2.0])
    y = dy.tanh(x)
    dy.sum_elems(y)
    dy.print_text_graphviz()
    out = capsys.readouterr().out
    assert out.startswith("digraph")
    assert "tanh" in out and "sum_dim" in out and "input" in out
    assert "N0 -> N1" in out and "N1 -> N2" in out
    assert "{2}" in out  # dims are shown
    assert out.rstrip().endswith("}")


def test_expression_str():
    x = dy.inputVector([1.0])
    assert str(x) == f"expression 0/{dy.cg_version()}"
