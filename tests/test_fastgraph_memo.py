"""The shape memo in front of the graph's ``_shapes`` dict (C accelerator) and the interned
attributes of ``f(x, k)`` callables: a memoised answer is only given while the dict it came
from is the graph's, shape errors are raised every time, and attributes keep their values.
Without the accelerator the same tests check the Python path."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy


@pytest.fixture
def counted_shape():
    """The graph's ``_shape`` (called on a memo miss) wrapped to count its calls."""
    dy.renew_cg()
    dy.scalarInput(0.0).value()
    cg = dy.cg()
    calls = []
    real = type(cg)._shape

    def shape(op, key, dims, attrs):
        calls.append(op.name)
        return real(cg, op, key, dims, attrs)

    cg._shape = shape
    yield cg, calls
    del cg._shape
    dy.renew_cg()


def test_memo_answers_only_from_the_current_dict(counted_shape):
    cg, calls = counted_shape
    x = dy.inputVector([0.5, -1.0, 2.0])
    y = dy.inputVector([1.0, 2.0, 3.0])
    for f in (lambda: dy.tanh(x), lambda: dy.cmult(x, y), lambda: x + y, lambda: dy.concatenate([x, y])):
        f()
        n = len(calls)
        e = f()
        assert len(calls) == n  # a hit: no shape rule call
        cg._shapes = {}  # as a backend change does: the memo must not answer from the old dict
        f()
        assert len(calls) == n + 1
        assert cg.dims[e.i] == cg.dims[f().i]
    np.testing.assert_allclose(dy.tanh(x).npvalue(), np.tanh([0.5, -1.0, 2.0]), rtol=1e-6)


def test_shape_errors_are_raised_every_time(counted_shape):
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2))
    v = dy.inputVector([1.0, 2.0, 3.0])
    for _ in range(3):
        with pytest.raises(ValueError):
            W * v
        with pytest.raises(ValueError):
            dy.cmult(v, dy.inputVector([1.0, 2.0]))


def test_pick_attributes_per_index():
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0, 3.0])
    lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    losses = [dy.pickneglogsoftmax(x, k) for k in (1, 0, 1, 2, 0)]
    cg = dy.cg()
    assert [cg.nodes[e.i][2] for e in losses] == [((1,),), ((0,),), ((1,),), ((2,),), ((0,),)]
    np.testing.assert_allclose([e.value() for e in losses], [lse - 2, lse - 1, lse - 2, lse - 3, lse - 1], rtol=1e-6)
    with pytest.raises(Exception, match="3"):
        dy.pickneglogsoftmax(x, 3).value()


def test_gradient_flags_on_memo_hits():
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 3))
    dy.renew_cg()
    cg = dy.cg()
    x = dy.inputVector([1.0, 2.0, 3.0])
    for _ in range(3):  # the first call fills the memo, the others hit it
        assert cg.ng[dy.tanh(x).i] is False  # a constant input
        h = W * x
        assert cg.ng[h.i] is True
        assert cg.ng[dy.tanh(h).i] is True
        assert cg.ng[dy.nobackprop(h).i] is False  # the op's nograd flag, also on a hit
        assert cg.ng[dy.cmult(x, h).i] is True


def test_node_indices_past_the_shared_int_range():
    dy.renew_cg()
    cg = dy.cg()
    x = dy.inputVector([0.25])
    for _ in range(70_000):  # node indices past 2**16 are made per node, not shared
        x = x + 0.0
    assert x.i == len(cg.nodes) - 1 == 70_000
    assert cg.nodes[x.i][1] == (69_999,)
    y = dy.tanh(x)
    assert y.i == 70_001 and cg.nodes[y.i][1] == (70_000,)
    np.testing.assert_allclose(y.value(), math.tanh(0.25), rtol=1e-6)
    dy.renew_cg()
    assert dy.tanh(dy.inputVector([0.5])).i == 1


def _graph(ops, x0, x1):
    """A graph of two inputs then one node per entry of ops, each over the last node and an input."""
    dy.renew_cg()
    a, b = dy.inputVector(x0), dy.inputVector(x1)
    h = a
    for op in ops:
        h = {"tanh": lambda h: dy.tanh(h), "logistic": lambda h: dy.logistic(h), "add": lambda h: h + b,
             "radd": lambda h: b + h, "cmult": lambda h: dy.cmult(h, b)}[op](h)
    return h


def _expected(ops, x0, x1):
    h, b = np.array(x0, dtype=np.float64), np.array(x1, dtype=np.float64)
    for op in ops:
        h = {"tanh": np.tanh, "logistic": lambda v: 1 / (1 + np.exp(-v)), "add": lambda v: v + b,
             "radd": lambda v: b + v, "cmult": lambda v: v * b}[op](h)
    return h


def test_graphs_rebuilt_at_the_same_positions_get_their_own_nodes():
    """The C path gives a position's attribute-free node tuple of the last graph again when op and
    operands match: a graph that differs there (op, operand order, operands) must get its own."""
    shapes = [["tanh", "add", "tanh", "cmult"], ["tanh", "add", "tanh", "cmult"], ["logistic", "radd", "tanh", "add"],
              ["tanh", "add", "tanh", "cmult"], ["tanh", "cmult", "logistic", "add"]]
    for k, ops in enumerate(shapes):
        x0, x1 = [0.1 * k, -0.5, 1.0], [1.0, 0.5 * k, -2.0]
        h = _graph(ops, x0, x1)
        nodes = dy.cg().nodes
        assert [n[0].name for n in nodes[2:]] == [{"radd": "add"}.get(o, o) for o in ops]
        for j, op in enumerate(ops, start=2):
            prev = 0 if j == 2 else j - 1  # the first op reads input a
            want = (1, prev) if op == "radd" else (prev, 1) if op in ("add", "cmult") else (prev,)
            assert tuple(nodes[j][1]) == want and nodes[j][2] is None, (ops, j, nodes[j])
        np.testing.assert_allclose(h.npvalue(), _expected(ops, x0, x1), rtol=1e-5, atol=1e-6)


def test_a_node_tuple_still_held_is_never_rewritten():
    """A position's node tuple that nobody else holds is rewritten in place for the next graph; one
    the program kept (here, the last graph's node list) stays what it was."""
    _graph(["tanh", "add", "tanh", "cmult"], [0.1, -0.5, 1.0], [1.0, 0.5, -2.0])
    kept = list(dy.cg().nodes)
    before = [(n[0].name, tuple(n[1]), n[2]) for n in kept]
    h = _graph(["logistic", "cmult", "logistic", "add"], [0.3, -0.5, 1.0], [1.0, 0.2, -2.0])
    assert [(n[0].name, tuple(n[1]), n[2]) for n in kept] == before
    assert [n[0].name for n in dy.cg().nodes[2:]] == ["logistic", "cmult", "logistic", "add"]
    np.testing.assert_allclose(h.npvalue(), _expected(["logistic", "cmult", "logistic", "add"], [0.3, -0.5, 1.0],
                                                      [1.0, 0.2, -2.0]), rtol=1e-5, atol=1e-6)


def test_list_operand_nodes_rebuilt_at_the_same_positions_get_their_own_operands():
    """affine_transform([b, W, x]) takes its node tuple from the same position memo as the one- and
    two-input operators: graphs that put other operands, another order or another op at the same
    positions get their own node tuples and values, and one the program kept stays as it was."""
    rng = np.random.default_rng(7)
    W, b, x, y = (rng.normal(size=s) for s in ((3, 3), (3,), (3,), (3,)))
    kept = None
    for k, order in enumerate([("x", "y"), ("x", "y"), ("y", "x"), ("x", "x"), ("y", "y")]):
        dy.renew_cg()
        ins = {"W": dy.inputTensor(W), "b": dy.inputVector(b), "x": dy.inputVector(x), "y": dy.inputVector(y)}
        first = dy.affine_transform([ins["b"], ins["W"], ins[order[0]]])
        second = dy.affine_transform([first, ins["W"], ins[order[1]]])
        nodes = dy.cg().nodes
        ids = {name: e.i for name, e in ins.items()}
        assert tuple(nodes[first.i][1]) == (ids["b"], ids["W"], ids[order[0]]) and nodes[first.i][2] is None
        assert tuple(nodes[second.i][1]) == (first.i, ids["W"], ids[order[1]])
        vals = {"x": x, "y": y}
        want = (b + W @ vals[order[0]]) + W @ vals[order[1]]
        np.testing.assert_allclose(second.npvalue(), want, rtol=1e-5, atol=1e-5)
        if k == 2:
            kept = list(nodes)
            before = [(n[0].name, tuple(n[1]), n[2]) for n in kept]
    assert [(n[0].name, tuple(n[1]), n[2]) for n in kept] == before
