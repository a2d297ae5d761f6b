"""cpu_eigen's executor accumulates a parameter's gradient straight into its storage when that
gradient is all zero (no fill, no copy): the sums must stay those of the reference backend
across repeated backward calls, a parameter read twice in one graph, constant parameters,
and trainer updates in between."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry

try:
    registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)


@pytest.fixture(autouse=True)
def restore():
    yield
    dy.set_backend("cpu_eigen")


def _run(backend: str) -> list[np.ndarray]:
    dy.set_backend(backend)
    rng = np.random.default_rng(7)
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 4))
    b = m.add_parameters(3)
    C = m.add_parameters((3, 3))
    for p in (W, b, C):
        p.set_value(rng.normal(size=p.shape()).astype(np.float32))
    trainer = dy.SimpleSGDTrainer(m, 0.1)
    x = rng.normal(size=4).astype(np.float32)
    out = []
    for step in range(2):
        dy.renew_cg()
        h = dy.tanh(dy.affine_transform([b, W, dy.inputVector(x)]))
        # C read twice (two parameter nodes), b also as a constant
        y = dy.parameter(C) * h + dy.parameter(C) * dy.logistic(h) + dy.const_parameter(b)
        loss = dy.sum_elems(dy.square(y))
        loss.backward()
        out += [W.grad_as_array(), b.grad_as_array(), C.grad_as_array()]
        loss.backward()  # accumulates: twice the gradient
        out += [W.grad_as_array(), b.grad_as_array(), C.grad_as_array()]
        if step == 0:
            trainer.update()  # clears the gradients: the next graph aliases them again
        out += [W.as_array(), C.as_array()]
    return out


def test_parameter_gradients_accumulate_as_the_reference():
    got, want = _run("cpu_eigen"), _run("reference_numpy")
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"array {k}")
    np.testing.assert_allclose(got[3], 2 * got[0], rtol=1e-6)  # second backward doubled dW


def test_node_gradient_of_an_aliased_parameter():
    dy.set_backend("cpu_eigen")
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 2))
    W.set_value(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    dy.renew_cg()
    w = dy.parameter(W)
    loss = dy.sum_elems(w * dy.inputVector([1.0, -1.0]))
    loss.backward()
    expect = np.array([[1.0, -1.0], [1.0, -1.0]], dtype=np.float32)  # d sum(W x) / dW = 1 x^T
    np.testing.assert_allclose(w.gradient(), expect)
    np.testing.assert_allclose(W.grad_as_array(), expect)
