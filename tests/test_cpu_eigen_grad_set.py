"""cpu_eigen's backward kernels that write a gradient nothing has written yet (``bwd_set``: tanh,
logistic, cmult, add, sum), instead of zero-filling it and adding: the parameters' gradients
must equal the NumPy reference's, with operands of the same shape and broadcast over the batch,
an operand used twice by one node, and a second consumer adding after the first one wrote, with
autobatching off and on (where a group's operand is a slice of an earlier group's block)."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api.plugins import registry

try:
    registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)

pytestmark = pytest.mark.usefixtures("restore_autobatch")

CASES = ["tanh", "logistic", "cmult", "cmult_bcast", "add", "add_bcast", "sum_twice"]


def _out(case: str, x, y, yb):
    """The op under test over intermediates x, y (unbatched {3}) and yb ({3}, batch 4)."""
    if case == "tanh":
        return dy.tanh(x)
    if case == "logistic":
        return dy.logistic(x)
    if case == "cmult":
        return dy.cmult(x, y)
    if case == "cmult_bcast":
        return dy.cmult(x, yb)
    if case == "add":
        return x + y
    if case == "add_bcast":
        return x + yb
    return dy.esum([x, y, x])


def _grads(backend: str, autobatch: int, case: str, instances: int = 3):
    dy.set_backend(backend)
    config.set_values(autobatch=autobatch)
    rng = np.random.default_rng(11)
    m = dy.ParameterCollection()
    P = m.add_parameters((3,))
    Q = m.add_parameters((3,))
    P.set_value(rng.normal(size=3).astype(np.float32))
    Q.set_value(rng.normal(size=3).astype(np.float32))
    dy.renew_cg()
    losses = []
    for _ in range(instances):
        # intermediates, so the op's backward is the first to write their gradients
        x = dy.tanh(P * 0.5)
        y = dy.tanh(Q * 1.5)
        yb = dy.cmult(y, dy.inputTensor(rng.normal(size=(3, 4)).astype(np.float32), batched=True))
        out = _out(case, x, y, yb)
        c = dy.inputTensor(rng.normal(size=(3,) + ((4,) if out.dim()[1] > 1 else ())).astype(np.float32),
                           batched=out.dim()[1] > 1)
        # x's second consumer adds into what the op's backward wrote (or writes first: either order)
        losses.append(dy.sum_batches(dy.sum_elems(dy.cmult(out, c))) + dy.sum_elems(x) * 0.25)
    loss = dy.esum(losses)
    v = loss.value()
    loss.backward()
    return v, P.grad_as_array().copy(), Q.grad_as_array().copy()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("autobatch", [0, 1])
def test_set_gradients_match_the_reference(case, autobatch):
    v0, p0, q0 = _grads("reference_numpy", 0, case)
    v1, p1, q1 = _grads("cpu_eigen", autobatch, case)
    np.testing.assert_allclose(v1, v0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q1, q0, rtol=1e-5, atol=1e-6)
    assert np.abs(p0).max() > 1e-3  # the gradient reached the parameters
