"""cmult / affine_transform / concatenate as C callables (kinds 2 and 3 of _fastgraph.Unary):
the fast call forms and every fallback form give the reference values and the same errors."""

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import graph as G


def test_fast_callables_when_compiled() -> None:
    if G._fastgraph is None:
        pytest.skip("pure Python front end")
    for f in (dy.cmult, dy.affine_transform, dy.concatenate, dy.pickneglogsoftmax):
        assert isinstance(f, G._fastgraph.Unary)
        assert f.__wrapped__.__name__ == f.__name__


def test_values_in_every_call_form() -> None:
    dy.renew_cg()
    a, b = np.array([1.0, -2.0, 0.5]), np.array([3.0, 4.0, -1.5])
    W = np.arange(6.0).reshape(3, 2)
    x, y = dy.inputVector(list(a)), dy.inputVector(list(b))
    z = dy.inputVector([2.0, -1.0])
    Wx = dy.inputTensor(W)
    np.testing.assert_allclose(dy.cmult(x, y).npvalue(), a * b)
    np.testing.assert_allclose(dy.cmult(x=x, y=y).npvalue(), a * b)
    want = a + W @ np.array([2.0, -1.0])
    np.testing.assert_allclose(dy.affine_transform([x, Wx, z]).npvalue(), want)
    np.testing.assert_allclose(dy.affine_transform((x, Wx, z)).npvalue(), want)
    np.testing.assert_allclose(dy.affine_transform(iter([x, Wx, z])).npvalue(), want)
    np.testing.assert_allclose(dy.concatenate([x, y]).npvalue(), np.concatenate([a, b]))
    np.testing.assert_allclose(dy.concatenate((x, y), d=0).npvalue(), np.concatenate([a, b]))
    np.testing.assert_allclose(dy.concatenate([x, y], 1).npvalue(), np.stack([a, b], 1))
    ls = a - np.log(np.exp(a).sum())
    for k in (0, 2, np.int64(1), True):
        np.testing.assert_allclose(dy.pickneglogsoftmax(x, k).value(), -ls[int(k)], rtol=1e-6)
    np.testing.assert_allclose(dy.pickneglogsoftmax(x, v=2).value(), -ls[2], rtol=1e-6)
    loss = dy.sum_elems(dy.cmult(dy.affine_transform([x, Wx, z]), y))
    loss.backward(full=True)
    np.testing.assert_allclose(x.gradient(), b)


def test_errors() -> None:
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0])
    with pytest.raises(ValueError, match="concatenate"):
        dy.concatenate([])
    with pytest.raises(ValueError, match="concatenate"):
        dy.concatenate(())
    with pytest.raises(TypeError, match="affine_transform"):
        dy.affine_transform([x, 3])
    with pytest.raises(TypeError, match="cmult"):
        dy.cmult(x, "a")
    with pytest.raises(TypeError):
        dy.cmult(x)
    with pytest.raises(TypeError):
        dy.pickneglogsoftmax(x)
    with pytest.raises((IndexError, ValueError)):
        dy.pickneglogsoftmax(x, 5).value()
