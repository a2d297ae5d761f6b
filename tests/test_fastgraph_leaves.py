"""Leaves appended without a Python frame: ``E[w]`` (the C ``Lookup`` callable, bound as
``LookupParameters.__getitem__``) and a parameter's first use in a graph (``Parameters._node``,
in C inside the operand resolution).  Both must build the node the Python path builds, keep
its errors, and honour immediate mode; without the accelerator the same tests check the
Python path."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import functions as F
from dynet_api import graph
from dynet_api.plugins import registry


def _model():
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((5, 2))
    E.init_from_array(np.arange(10, dtype=np.float32).reshape(5, 2))
    W = m.add_parameters((2, 2))
    W.set_value([[1.0, 2.0], [3.0, 4.0]])
    return m, E, W


def _bound():
    dy.renew_cg()
    dy.scalarInput(0.0).value()  # binds the graph to the backend


def test_lookup_is_the_getitem_and_builds_the_python_paths_node():
    _, E, _ = _model()
    assert type(E).__getitem__ is F.lookup
    _bound()
    e = E[3]
    assert isinstance(e, F.MutableExpression) and e._kind == "lookup"
    general = F.inputs._lookup(E, (3,), True)  # the general Python path
    cg = dy.cg()
    assert cg.nodes[e.i][0] is cg.nodes[general.i][0]
    assert cg.nodes[e.i][1] == () and cg.nodes[e.i][2] == cg.nodes[general.i][2]
    assert cg.dims[e.i] is cg.dims[general.i] and cg.ng[e.i] is True
    assert e.v == cg.ver
    np.testing.assert_allclose(e.npvalue(), [6.0, 7.0])
    np.testing.assert_allclose(E.__getitem__(1).npvalue(), [2.0, 3.0])  # bound method call
    np.testing.assert_allclose(F.lookup(E, 4).npvalue(), [8.0, 9.0])
    np.testing.assert_allclose(dy.lookup(E, 0, update=False).npvalue(), [0.0, 1.0])


def test_lookup_errors_and_other_index_types():
    _, E, _ = _model()
    _bound()
    for bad in (5, -1, 2**70, -(2**70)):
        with pytest.raises(IndexError, match=f"index {bad} out of range for lookup parameter .* with 5 rows"):
            E[bad]
    with pytest.raises(TypeError, match="index must be an int, got str"):
        E["1"]
    with pytest.raises(TypeError, match="index must be an int, got float"):
        E[1.0]
    np.testing.assert_allclose(E[np.int64(2)].npvalue(), [4.0, 5.0])
    np.testing.assert_allclose(E[True].npvalue(), [2.0, 3.0])
    with pytest.raises(AttributeError, match="_st"):  # not a lookup parameter: as the Python path
        F.lookup(object(), 1)


def test_lookup_before_the_graph_is_bound_and_set():
    _, E, _ = _model()
    dy.renew_cg()
    e = E[1]  # first node of an unbound graph: the Python path binds it
    f = E[2]
    np.testing.assert_allclose((e + f).npvalue(), [6.0, 8.0])
    f.set(4)
    np.testing.assert_allclose((e + f).npvalue(), [10.0, 12.0])


def test_lookup_and_parameter_gradients():
    m, E, W = _model()
    _bound()
    x = E[1]
    loss = dy.sum_elems(W * x + E[1] * 2.0)  # W x = [8, 18]; d/dx = W^T 1 + 2
    np.testing.assert_allclose(loss.value(), 8 + 18 + 2 * (2 + 3), rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(E.grad_as_array()[1], [1 + 3 + 2, 2 + 4 + 2])
    assert not E.grad_as_array()[[0, 2, 3, 4]].any()
    np.testing.assert_allclose(W.grad_as_array(), [[2.0, 3.0], [2.0, 3.0]])


def test_parameter_first_use_builds_one_leaf_per_graph():
    _, E, W = _model()
    for _ in range(2):
        _bound()
        cg = dy.cg()
        n = len(cg.nodes)
        a = dy.tanh(W)
        b = W * E[0]
        ids = [i for i, node in enumerate(cg.nodes) if node[0].name == "parameter"]
        assert ids == [n] and W.i == n and W.v == cg.ver
        assert cg.nodes[n][1] == () and cg.nodes[n][2] == (W._st, True, W._st.dim)
        assert cg.dims[n] is W._st.dim and cg.ng[n] is True
        assert cg.nodes[a.i][1] == (n,) and cg.nodes[b.i][1][0] == n
        np.testing.assert_allclose(b.npvalue(), [2.0, 4.0])  # W [0, 1]


def test_parameter_first_use_immediate_and_const():
    _, _, W = _model()
    dy.renew_cg(immediate_compute=True)
    dy.scalarInput(0.0)
    t = dy.tanh(W)
    assert dy.cg().n_eval > t.i and dy.cg().n_eval > W.i  # computed when added
    np.testing.assert_allclose(t.npvalue(), np.tanh([[1.0, 2.0], [3.0, 4.0]]), rtol=1e-6)
    dy.renew_cg()
    c = W.expr()  # a constant leaf, not the parameter's node
    assert dy.cg().ng[c.i] is False
    np.testing.assert_allclose(dy.tanh(W).npvalue(), np.tanh([[1.0, 2.0], [3.0, 4.0]]), rtol=1e-6)
    assert W.i != c.i


def test_parameter_and_table_on_another_backend_raise():
    names = [n for n in registry.names() if registry.load(n).backend]
    if len(names) < 2:
        pytest.skip("needs two backends")
    before = dy.backend_name()
    other = next(n for n in names if n != before)
    try:
        dy.set_backend(other)
        _, E, W = _model()
        dy.set_backend(before)
        _bound()
        with pytest.raises(RuntimeError, match=f"lives on backend {other!r}"):
            dy.tanh(W)
        with pytest.raises(RuntimeError, match=f"lives on backend {other!r}"):
            E[0]
    finally:
        dy.set_backend(before)
        dy.renew_cg()


def test_accelerator_types():
    if graph._fastgraph is None:
        assert F.lookup.__code__.co_name == "lookup"  # the Python function itself
        return
    assert isinstance(F.lookup, graph._fastgraph.Lookup)
    assert F.lookup.__name__ == "lookup" and F.lookup.__wrapped__.__code__.co_name == "lookup"
    assert type(F.lookup).__get__(F.lookup, None, type) is F.lookup
