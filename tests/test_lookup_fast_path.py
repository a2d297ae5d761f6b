"""The lean ``E[w]`` path (an int index, update on, bound graph) appends the same lookup node
as the general path: same value and gradient rows, the same errors, ``set`` and immediate mode."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy


def _table():
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((6, 3))
    E.init_from_array(np.arange(18, dtype=np.float32).reshape(6, 3) / 10)
    return m, E


def test_fast_and_general_paths_build_the_same_node():
    _, E = _table()
    dy.renew_cg()
    dy.scalarInput(0.0).value()  # binds the graph: later E[w] take the fast path
    fast = E[4]
    general = dy.lookup(E, np.int64(4))  # not an int: the general path
    cg = dy.cg()
    assert cg.nodes[fast.i][0] is cg.nodes[general.i][0]
    assert cg.nodes[fast.i][2] == cg.nodes[general.i][2]
    assert cg.dims[fast.i] is cg.dims[general.i]
    np.testing.assert_allclose(fast.npvalue(), [1.2, 1.3, 1.4], rtol=1e-6)


def test_fast_path_gradient_rows_and_set():
    m, E = _table()
    dy.renew_cg()
    dy.scalarInput(0.0).value()
    a, b = E[1], E[1]
    c = E[5]
    loss = dy.sum_elems(a * 2.0 + b + c * 3.0)
    loss.value()
    loss.backward()
    g = E.grad_as_array()
    np.testing.assert_allclose(g[1], [3, 3, 3])
    np.testing.assert_allclose(g[5], [3, 3, 3])
    assert not g[[0, 2, 3, 4]].any()
    c.set(0)
    np.testing.assert_allclose(c.npvalue(), [0.0, 0.1, 0.2])


def test_fast_path_errors_and_immediate_mode():
    _, E = _table()
    dy.renew_cg()
    dy.scalarInput(0.0).value()
    with pytest.raises(IndexError, match="index 6 out of range"):
        E[6]
    with pytest.raises(IndexError, match="index -1 out of range"):
        E[-1]
    with pytest.raises(TypeError, match="index must be an int"):
        E["a"]
    dy.renew_cg(immediate_compute=True)
    dy.scalarInput(0.0)
    e = E[2]
    assert dy.cg().n_eval > e.i  # computed when added
    np.testing.assert_allclose(e.npvalue(), [0.6, 0.7, 0.8])
