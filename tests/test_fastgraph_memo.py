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
