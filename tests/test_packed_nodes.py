"""The graph's packed nodes (csrc/packed_nodes.h): a graph built through the C add paths keeps its
nodes in flat arrays until Python code reads ``cg.nodes``, which then holds the very tuples the
list would have held; a backend's executor reads either form.  Without the accelerator the same
tests check the Python twin (a plain list throughout)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import ops


def _list_held(cg) -> list:
    """The list object the graph holds (looked at without reading ``cg.nodes``)."""
    if type(cg).__mro__[1].__name__ != "GraphBase":
        return cg.nodes
    lists = [o for o in gc.get_referents(cg) if isinstance(o, list)]
    return lists[0]  # nodes, then dims and ng (GraphBase's traverse order)


def _build(pc_state):
    """A small graph of leaves, unary, binary and n-ary nodes, attributes and a loss."""
    pc, W, b, E = pc_state
    x = dy.inputVector([0.5, -1.0, 2.0])
    h = dy.tanh(dy.affine_transform([b, W, x]))
    e = E[1]
    z = dy.concatenate([h, e])
    y = dy.cmult(z, z) + dy.logistic(z) * 2.0
    loss = dy.pickneglogsoftmax(y, 2) + dy.sum_elems(dy.pick(y, 1))
    return loss


@pytest.fixture
def model():
    pc = dy.ParameterCollection()
    rng = np.random.default_rng(7)
    W = pc.add_parameters((4, 3))
    b = pc.add_parameters(4)
    E = pc.add_lookup_parameters((5, 2))
    W.set_value(rng.standard_normal((4, 3)).astype(np.float32))
    b.set_value(rng.standard_normal(4).astype(np.float32))
    E.init_from_array(rng.standard_normal((5, 2)).astype(np.float32))
    return pc, W, b, E


def test_nodes_read_late_are_the_tuples_a_list_would_hold(each_backend, model):
    dy.renew_cg()
    _ = dy.cg().nodes  # read at once: a list from the first node on
    loss = _build(model)
    early = [(op, ids, attrs) for op, ids, attrs in dy.cg().nodes]
    dy.renew_cg()
    loss2 = _build(model)
    cg = dy.cg()
    assert cg.n_nodes() == len(early) == len(cg.dims) == len(cg.ng)
    late = cg.nodes  # made now from the packed arrays
    assert loss2.i == loss.i
    assert len(late) == len(early)
    for (op1, ids1, a1), (op2, ids2, a2) in zip(early, late):
        assert op1 is op2
        assert type(ids2) is tuple and ids1 == ids2 and all(type(k) is int for k in ids2)
        if a1 is None:
            assert a2 is None
        else:
            assert type(a2) is tuple and len(a1) == len(a2)
    names = [op.name for op, _, _ in late]
    assert {"input", "parameter", "lookup", "affine_transform", "concatenate", "pickneglogsoftmax"} <= set(names)
    assert cg.op_of(loss2.i) is late[loss2.i][0]


def test_values_and_gradients_agree_packed_or_listed(each_backend, model):
    pc, W, b, E = model
    results = []
    for read_first in (False, True):  # the gradients accumulate: the second run doubles them
        dy.renew_cg()
        if read_first:
            _ = dy.cg().nodes
        loss = _build(model)
        v = loss.value()
        loss.backward()
        results.append((v, W.grad_as_array().copy(), b.grad_as_array().copy(), E.grad_as_array().copy()))
    (v0, *g0), (v1, *g1) = results
    assert v0 == pytest.approx(v1, rel=1e-6)
    assert any(np.abs(a).max() > 1e-3 for a in g0)
    for a, c in zip(g0, g1):
        np.testing.assert_allclose(2 * a, c, rtol=1e-5, atol=1e-6)


def test_reading_nodes_midway_keeps_the_graph_whole(each_backend, model):
    """Half the graph packed, ``cg.nodes`` read (the list takes over), the rest added as tuples."""
    dy.renew_cg()
    pc, W, b, E = model
    x = dy.inputVector([0.5, -1.0, 2.0])
    h = dy.tanh(dy.affine_transform([b, W, x]))
    hv = h.npvalue()  # a forward over the packed nodes
    cg = dy.cg()
    n = cg.n_nodes()
    assert len(cg.nodes) == n  # made from the packed arrays
    y = dy.cmult(h, h)
    assert cg.n_nodes() == n + 1 == len(cg.nodes) == len(cg.dims)
    assert cg.nodes[-1][0] is ops.op("cmult") and cg.nodes[-1][1] == (h.i, h.i)
    np.testing.assert_allclose(y.npvalue(), hv * hv, rtol=1e-6)


def test_renew_packs_again(each_backend, model):
    dy.renew_cg()
    _build(model).value()
    _ = dy.cg().nodes
    assert len(_list_held(dy.cg())) > 0
    dy.renew_cg()
    _build(model).value()
    held = _list_held(dy.cg())
    if type(dy.cg()).__mro__[1].__name__ == "GraphBase" and each_backend.name == "cpu_eigen":
        assert held == []  # packed: cpu_eigen's executor reads the arrays, nothing read the list
    assert len(dy.cg().nodes) == dy.cg().n_nodes() > 0


def test_an_input_set_after_a_forward(each_backend, model):
    """MutableExpression.set replaces a node's attributes: the recomputed value is the new input's."""
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0])
    y = dy.sum_elems(dy.cmult(x, x))
    assert y.value() == pytest.approx(5.0)
    x.set([3.0, -1.0])
    assert y.value() == pytest.approx(10.0)
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0])
    y = dy.sum_elems(x * 3.0)
    x.set([2.0, 2.0])  # before any forward
    assert y.value() == pytest.approx(12.0)


def test_packed_attributes_keep_their_objects_alive(each_backend):
    """An input's array is held by the packed node alone once the caller drops it."""
    dy.renew_cg()
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = dy.inputTensor(data)
    del data
    gc.collect()
    y = dy.sum_elems(x)
    assert y.value() == pytest.approx(15.0)
    assert dy.cg().nodes[x.i][2][0].sum() == pytest.approx(15.0)


def test_checkpoint_and_revert_on_a_packed_graph(each_backend, model):
    dy.renew_cg()
    x = dy.inputVector([1.0, -2.0])
    cg = dy.cg()
    cg.checkpoint()
    n = cg.n_nodes()
    dy.tanh(x), dy.logistic(x)
    assert cg.n_nodes() == n + 2
    cg.revert()
    assert cg.n_nodes() == n == len(cg.nodes) == len(cg.dims)
    y = dy.sum_elems(x * 2.0)
    assert y.value() == pytest.approx(-2.0)


def test_append_node_takes_only_a_tuple_of_ids():
    cg = dy.renew_cg()
    with pytest.raises(TypeError):
        cg.append_node(ops.op("tanh"), [0], None)


def test_an_executor_holding_the_node_list_sees_every_node(monkeypatch):
    """An executor that kept ``graph.nodes`` (the list object, as the contract's lists allowed) and
    does not say ``reads_packed_nodes``: the graph makes the list complete before each forward."""
    from dynet_api.graph import PyExecutor
    from dynet_api.plugins import registry

    be = registry.get("reference_numpy")
    seen = []

    class Holding(PyExecutor):
        def __init__(self, graph, backend):
            super().__init__(graph, backend)
            self.held = graph.nodes

        def forward(self, a, b):
            seen.append((len(self.held), b))
            super().forward(a, b)

    monkeypatch.setattr(type(be), "make_executor", lambda self, graph: Holding(graph, self))
    before = dy.backend_name()
    try:
        dy.set_backend("reference_numpy")
        dy.renew_cg()
        for _ in range(2):  # the second graph: the same list object, emptied and packed again
            dy.renew_cg()
            x = dy.inputVector([1.0, -2.0, 0.5])
            y = dy.sum_elems(dy.cmult(dy.tanh(x), x) + x * 3.0)
            v = np.array([1.0, -2.0, 0.5])
            assert y.value() == pytest.approx(float(np.sum(np.tanh(v) * v + 3.0 * v)), rel=1e-6)
        assert seen and all(n >= b for n, b in seen)
    finally:
        dy.set_backend(before)
        dy.renew_cg()
