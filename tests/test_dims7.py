"""Tensors of 5 to 7 data dims (DyNet's DYNET_MAX_TENSOR_DIM), on every CPU backend.

Each value is checked against NumPy on the same array; the gradients of the shape ops
against the adjoint they must be (a sum of the upstream gradient over the right entries).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry

BACKENDS = [n for n in ("reference_numpy", "cpu_eigen") if n in registry.names()]
SHAPES = [(2, 3, 1, 2, 2), (2, 1, 3, 2, 1, 2), (2, 2, 1, 2, 3, 1, 2)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    old = dy.backend_name()
    dy.set_backend(request.param)
    dy.renew_cg()
    yield request.param
    dy.set_backend(old)


def _arr(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_input_round_trip_and_elementwise(backend, shape):
    a, b = _arr(shape, 1), _arr(shape, 2)
    x, y = dy.inputTensor(a), dy.inputTensor(b)
    assert x.dim() == (shape, 1)
    np.testing.assert_array_equal(x.npvalue(), a)
    np.testing.assert_allclose(dy.cmult(x, y).npvalue(), a * b, rtol=1e-6)
    # broadcasting along the high dims: b's first slice against all of x
    bs = b[..., :1] if shape[-1] > 1 else b
    np.testing.assert_allclose((x + dy.inputTensor(bs)).npvalue(), a + bs, rtol=1e-6)
    xb = dy.inputTensor(np.stack([a, b], -1), batched=True)
    assert xb.dim() == (shape, 2)
    np.testing.assert_array_equal(xb.npvalue(), np.stack([a, b], -1))


@pytest.mark.parametrize("shape", SHAPES)
def test_reductions_over_high_axes(backend, shape):
    a = _arr(shape, 3)
    x = dy.inputTensor(a)
    nd = len(shape)
    for axes in ([nd - 1], [0, nd - 2], [4]):
        want = a.sum(axis=tuple(axes))
        got = dy.sum_dim(x, axes).npvalue()
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    got = dy.mean_dim(x, [nd - 1]).npvalue()
    np.testing.assert_allclose(got.reshape(-1), a.mean(axis=nd - 1).reshape(-1), rtol=1e-5, atol=1e-6)
    got = dy.std_dim(x, [nd - 2]).npvalue()
    np.testing.assert_allclose(got.reshape(-1), a.std(axis=nd - 2).reshape(-1), rtol=1e-4, atol=1e-6)
    got = dy.logsumexp_dim(x, nd - 1).npvalue()
    want = np.log(np.exp(a).sum(axis=nd - 1))
    np.testing.assert_allclose(got.reshape(-1), want.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_transpose_reshape_concat_pick_with_gradients(backend, shape):
    a = _arr(shape, 4)
    nd = len(shape)
    perm = list(range(nd))[::-1]
    x = dy.inputTensor(a)
    w = _arr(tuple(shape[k] for k in perm), 5)
    t = dy.transpose(x, perm)
    np.testing.assert_array_equal(t.npvalue().reshape(w.shape), a.transpose(perm))
    # d/dx of sum(w . transpose(x)) is w transposed back
    pc = dy.ParameterCollection()
    P = pc.parameters_from_numpy(a)
    loss = dy.sum_elems(dy.cmult(dy.transpose(dy.parameter(P), perm), dy.inputTensor(w)))
    loss.backward()
    np.testing.assert_allclose(P.grad_as_array().reshape(shape), w.transpose(np.argsort(perm)), rtol=1e-6)

    r = dy.reshape(x, (int(np.prod(shape)) // 2, 2))
    np.testing.assert_array_equal(r.npvalue(), a.reshape((-1, 2), order="F"))
    r7 = dy.reshape(dy.inputTensor(a.reshape(-1, order="F")), shape)
    np.testing.assert_array_equal(r7.npvalue(), a)

    d = nd - 1
    c = dy.concatenate([x, x * 2.0], d)
    np.testing.assert_allclose(c.npvalue(), np.concatenate([a, 2 * a], axis=d), rtol=1e-6)

    k = shape[4] - 1
    got = dy.pick(x, k, 4).npvalue()
    np.testing.assert_array_equal(got.reshape(-1), np.take(a, k, axis=4).reshape(-1))


@pytest.mark.parametrize("shape", SHAPES)
def test_strided_select_on_high_dims(backend, shape):
    a = _arr(shape, 6)
    nd = len(shape)
    strides = [1] * (nd - 1) + [2]
    got = dy.strided_select(dy.inputTensor(a), strides).npvalue()
    want = a[(slice(None),) * (nd - 1) + (slice(None, None, 2),)]
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_lookup_tables_of_5_to_7_dims(backend):
    pc = dy.ParameterCollection()
    for shape in ((4, 2, 3, 1, 2), (3, 2, 1, 2, 2, 2), (3, 2, 2, 1, 2, 1, 2)):
        E = pc.add_lookup_parameters(shape)
        assert E.shape() == shape
        rows = E.as_array()
        assert rows.shape == shape
        e = dy.lookup(E, 1)
        np.testing.assert_array_equal(e.npvalue(), rows[1])
        eb = dy.lookup_batch(E, [2, 0])
        assert eb.dim() == (shape[1:], 2)
        np.testing.assert_array_equal(eb.npvalue()[..., 1], rows[0])
    W = pc.add_parameters((2, 1, 2, 1, 2, 1, 2))
    assert W.shape() == (2, 1, 2, 1, 2, 1, 2)


def test_more_than_seven_dims_is_a_clear_error():
    pc = dy.ParameterCollection()
    with pytest.raises(ValueError, match=re.escape("at most 7 data dims are supported (as in DyNet), got 8: "
                                                   "(2, 1, 1, 1, 1, 1, 1, 2)")):
        pc.add_lookup_parameters((2, 1, 1, 1, 1, 1, 1, 2))
    with pytest.raises(ValueError, match="at most 7 data dims"):
        pc.add_parameters((1,) * 8)
    with pytest.raises(ValueError, match="inputTensor: at most 7 data dims"):
        dy.inputTensor(np.zeros((1,) * 8))
    with pytest.raises(ValueError, match="at most 7 data dims"):
        dy.reshape(dy.inputVector([1.0, 2.0]), (1, 1, 1, 1, 1, 1, 1, 2))


def test_model_file_round_trip_of_7d_parameters(tmp_path, backend):
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 1, 3, 1, 2, 1, 2), name="w")
    E = pc.add_lookup_parameters((3, 2, 1, 2, 1, 1, 2), name="e")
    f = str(tmp_path / "m.txt")
    pc.save(f)
    text = open(f).read()
    assert "#Parameter# /w {2,1,3,1,2,1,2} " in text  # as DyNet prints a Dim
    assert "#LookupParameter# /e {2,1,2,1,1,2,3} " in text  # row dims, then the rows
    pc2 = dy.ParameterCollection()
    W2 = pc2.add_parameters((2, 1, 3, 1, 2, 1, 2), name="w")
    E2 = pc2.add_lookup_parameters((3, 2, 1, 2, 1, 1, 2), name="e")
    pc2.populate(f)
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
