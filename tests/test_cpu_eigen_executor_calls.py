"""cpu_eigen's Executor.forward, backward, scalar and reset are plain CPython methods (not through
pybind11's dispatcher, for a training step's fixed cost): they compute what the graph asks and
raise the errors pybind11 would have raised, naming the call."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.graph import _cg
from dynet_api.plugins import registry

try:
    registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)


@pytest.fixture
def executor():
    before = dy.backend_name()
    dy.set_backend("cpu_eigen")
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2), init=np.array([[1.0, 2.0], [3.0, 4.0]]))
    dy.renew_cg()
    loss = dy.squared_norm(W * dy.inputVector([1.0, -1.0]))
    loss.value()
    yield _cg.executor, loss, W
    dy.set_backend(before)


def test_the_calls_compute(executor):
    ex, loss, W = executor
    assert ex.scalar(loss.i) == pytest.approx((1 - 2) ** 2 + (3 - 4) ** 2)
    ex.backward(loss.i, False)
    # d/dW of |W x|^2 = 2 (W x) x^T
    np.testing.assert_allclose(W.grad_as_array(), [[-2.0, 2.0], [-2.0, 2.0]])
    ex.forward(0, loss.i + 1)  # recomputing computed nodes is allowed
    ex.reset()
    with pytest.raises(IndexError, match="unevaluated node"):
        ex.scalar(loss.i)


def test_bad_calls_raise_clear_errors(executor):
    ex, loss, _ = executor
    with pytest.raises(TypeError, match=r"forward\(\) takes 2 arguments \(1 given\)"):
        ex.forward(0)
    with pytest.raises(TypeError):
        ex.forward(0, "1")
    with pytest.raises(TypeError, match=r"scalar\(\) takes 1 arguments"):
        ex.scalar()
    with pytest.raises(OverflowError):
        ex.scalar(2**40)
    with pytest.raises(IndexError, match="unevaluated node"):
        ex.scalar(loss.i + 5)
    with pytest.raises(IndexError, match="backward from an unevaluated node"):
        ex.backward(loss.i + 5, False)
    with pytest.raises(TypeError, match="doesn.t apply"):  # the method descriptor checks its object
        type(ex).forward(object(), 0, 1)
