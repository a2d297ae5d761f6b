"""Forward values and gradients of every [A] op, on the default backend.

Expectations are independent of the library: NumPy formulas written here (in
float64), hand-computed numbers, and central finite differences taken through
the public API.  Arrays follow the library's layout: data dims first, the
batch as the last axis of a batched input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy

RTOL, ATOL = 2e-5, 2e-6
SELU_L = 1.0507009873554804934193349852946
SELU_A = 1.6732632423543772848170429916717


def f32(a) -> np.ndarray:
    """Values exactly representable in float32, so the library sees what the formula sees."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def T(a, batched: bool = False):
    return dy.inputTensor(np.asarray(a, dtype=np.float64), batched=batched)


def close(actual, expected, rtol=RTOL, atol=ATOL) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


def bcols(x: np.ndarray, b: int) -> np.ndarray:
    """An unbatched array (data dims only) broadcast to a trailing batch axis of size b."""
    return np.broadcast_to(x[..., None], x.shape + (b,))


# ===================================================================== values and layout


class TestValueConversions:
    def test_scalar_value_is_python_float(self):
        v = dy.scalarInput(2.5).value()
        assert type(v) is float and v == 2.5
        assert dy.scalarInput(2.5).npvalue().shape == (1,)

    def test_vector_value_is_list(self):
        v = dy.inputVector([1.0, 2.0, 3.0]).value()
        assert v == [1.0, 2.0, 3.0] and isinstance(v, list)

    def test_batched_vector_value_is_flat_column_major_list(self):
        a = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])  # 3-vectors, batch of 2
        x = T(a, batched=True)
        assert x.dim() == ((3,), 2)
        assert x.value() == [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
        assert x.vec_value() == [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
        assert x.npvalue().shape == (3, 2)

    def test_batched_scalar_value_is_list(self):
        x = T([1.0, 2.0, 3.0, 4.0], batched=True)
        assert x.dim() == ((1,), 4)
        assert x.value() == [1.0, 2.0, 3.0, 4.0]

    def test_matrix_value_is_ndarray(self):
        a = np.arange(6.0).reshape(2, 3)
        x = T(a)
        v = x.value()
        assert isinstance(v, np.ndarray) and v.shape == (2, 3)
        close(v, a)
        # vec_value is column-major: down the first column first
        assert x.vec_value() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]

    def test_batched_matrix_npvalue_puts_batch_last(self):
        a = np.arange(12.0).reshape(2, 3, 2)
        x = T(a, batched=True)
        assert x.dim() == ((2, 3), 2)
        assert x.npvalue().shape == (2, 3, 2)
        close(x.npvalue()[:, :, 1], a[:, :, 1])
        assert x.vec_value() == list(a.reshape(-1, order="F"))

    def test_inputTensor_roundtrip_and_batched_last_axis(self):
        a = np.arange(24.0).reshape(2, 3, 4)
        close(T(a).npvalue(), a)
        assert T(a).dim() == ((2, 3, 4), 1)
        x = T(a, batched=True)
        assert x.dim() == ((2, 3), 4)
        close(dy.pick_batch_elem(x, 2).npvalue(), a[:, :, 2])

    def test_inputTensor_list_of_arrays_is_a_batch(self):
        x = dy.inputTensor([np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0])])
        assert x.dim() == ((2,), 3)
        close(x.npvalue(), [[1, 3, 5], [2, 4, 6]])

    def test_inputMatrix_and_inputVector(self):
        m = dy.inputMatrix([1, 2, 3, 4, 5, 6], (2, 3))  # column-major
        close(m.npvalue(), [[1, 3, 5], [2, 4, 6]])
        close(dy.inputVector(np.array([1.5, -2.0])).npvalue(), [1.5, -2.0])

    def test_constants(self):
        close(dy.zeros((2, 3)).npvalue(), np.zeros((2, 3)))
        close(dy.ones(3, batch_size=2).npvalue(), np.ones((3, 2)))
        assert dy.ones(3, batch_size=2).dim() == ((3,), 2)
        close(dy.constant((2,), 7.5).npvalue(), [7.5, 7.5])

    def test_sparse_inputTensor(self):
        x = dy.sparse_inputTensor([[0, 2], [1, 0]], [5.0, -1.0], (3, 2), defval=0.5)
        expected = np.full((3, 2), 0.5)
        expected[0, 1], expected[2, 0] = 5.0, -1.0
        close(x.npvalue(), expected)

    def test_scalar_value_of_non_scalar_raises(self):
        with pytest.raises(ValueError):
            dy.inputVector([1.0, 2.0]).scalar_value()


# ===================================================================== elementwise unary


def _erf(x):
    return np.vectorize(math.erf)(x)


def _lgamma(x):
    return np.vectorize(math.lgamma)(x)


UNARY = {
    "tanh": (dy.tanh, np.tanh, "any"),
    "logistic": (dy.logistic, lambda x: 1 / (1 + np.exp(-x)), "any"),
    "rectify": (dy.rectify, lambda x: np.maximum(x, 0), "away0"),
    "elu": (dy.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1), "away0"),
    "elu_alpha": (lambda x: dy.elu(x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), "away0"),
    "selu": (dy.selu, lambda x: SELU_L * np.where(x > 0, x, SELU_A * (np.exp(x) - 1)), "away0"),
    "softsign": (dy.softsign, lambda x: x / (1 + np.abs(x)), "any"),
    "exp": (dy.exp, np.exp, "any"),
    "log": (dy.log, np.log, "pos"),
    "sqrt": (dy.sqrt, np.sqrt, "pos"),
    "square": (dy.square, lambda x: x * x, "any"),
    "cube": (dy.cube, lambda x: x ** 3, "any"),
    "abs": (dy.abs, np.abs, "away0"),
    "log_sigmoid": (dy.log_sigmoid, lambda x: -np.log1p(np.exp(-x)), "any"),
    "erf": (dy.erf, _erf, "any"),
    "lgamma": (dy.lgamma, _lgamma, "pos"),
    "negate": (lambda x: -x, lambda x: -x, "any"),
    "plus_const": (lambda x: x + 2.5, lambda x: x + 2.5, "any"),
    "radd_const": (lambda x: 2.5 + x, lambda x: x + 2.5, "any"),
    "minus_const": (lambda x: x - 1.5, lambda x: x - 1.5, "any"),
    "const_minus": (lambda x: 1.5 - x, lambda x: 1.5 - x, "any"),
    "scalar_mult": (lambda x: x * 3.0, lambda x: 3 * x, "any"),
    "rscalar_mult": (lambda x: -2.0 * x, lambda x: -2 * x, "any"),
    "div_number": (lambda x: x / 4.0, lambda x: x / 4, "any"),
    "pow_number": (lambda x: x ** 3, lambda x: x ** 3, "pos"),
}


def sample(rng, shape, domain):
    if domain == "pos":
        a = rng.uniform(0.3, 2.5, shape)
    elif domain == "away0":
        a = rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    elif domain == "prob":
        a = rng.uniform(0.1, 0.9, shape)
    else:
        a = rng.uniform(-1.5, 1.5, shape)
    return f32(a)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_forward(name, rng):
    f, ref, domain = UNARY[name]
    a = sample(rng, (3, 2), domain)
    close(f(T(a)).npvalue(), ref(a))
    b = sample(rng, (2, 2, 3), domain)  # batched matrix
    y = f(T(b, batched=True))
    assert y.dim() == ((2, 2), 3)
    close(y.npvalue(), ref(b))


def test_unary_hand_values():
    x = dy.inputVector([-1.0, 0.0, 2.0])
    close(dy.rectify(x).npvalue(), [0, 0, 2])
    close(dy.tanh(x).npvalue(), [-0.7615941559557649, 0.0, 0.9640275800758169])
    close(dy.logistic(x).npvalue(), [0.2689414213699951, 0.5, 0.8807970779778823])
    close(dy.softsign(x).npvalue(), [-0.5, 0.0, 2 / 3])
    close(dy.lgamma(dy.inputVector([1.0, 2.0, 5.0])).npvalue(), [0, 0, math.log(24)], atol=1e-5)
    close(dy.erf(dy.inputVector([0.5])).value(), 0.5204998778130465)


# ===================================================================== binary elementwise and broadcasting


def test_add_broadcast_batch_and_size1(rng):
    a = sample(rng, (3, 2, 4), "any")  # {3,2} x 4
    b = sample(rng, (3, 2), "any")  # {3,2} unbatched
    c = sample(rng, (3, 1), "any")  # {3,1}
    y = T(a, batched=True) + T(b)
    assert y.dim() == ((3, 2), 4)
    close(y.npvalue(), a + b[..., None])
    y2 = T(b) + T(c)
    assert y2.dim() == ((3, 2), 1)
    close(y2.npvalue(), b + c)
    y3 = T(a, batched=True) - T(c)
    close(y3.npvalue(), a - c[..., None])


def test_cmult_cdiv_bmin_bmax(rng):
    a = sample(rng, (3, 2, 2), "away0")
    b = sample(rng, (3, 1), "away0")
    x, y = T(a, batched=True), T(b)
    bb = b[..., None]
    close(dy.cmult(x, y).npvalue(), a * bb)
    close(dy.cdiv(x, y).npvalue(), a / bb)
    close(dy.bmin(x, y).npvalue(), np.minimum(a, bb))
    close(dy.bmax(x, y).npvalue(), np.maximum(a, bb))
    close((x / y).npvalue(), a / bb)  # expr / expr is our harmless cdiv extension
    close(dy.cmult(dy.inputVector([1, 2, 3]), dy.inputVector([4, 5, 6])).npvalue(), [4, 10, 18])


def test_mixed_batch_sizes_raise():
    a = dy.inputTensor(np.ones((3, 2)), batched=True)
    b = dy.inputTensor(np.ones((3, 3)), batched=True)
    with pytest.raises(ValueError, match="batch"):
        a + b


def test_matmul_values_and_batch(rng):
    W = sample(rng, (2, 3), "any")
    X = sample(rng, (3, 4), "any")
    xb = sample(rng, (3, 5), "any")  # 3-vectors, batch 5
    close((T(W) * T(X)).npvalue(), W @ X)
    y = T(W) * T(xb, batched=True)
    assert y.dim() == ((2,), 5)
    close(y.npvalue(), W @ xb)
    Wb = sample(rng, (2, 3, 2), "any")
    xv = sample(rng, (3,), "any")
    y = T(Wb, batched=True) * T(xv)
    assert y.dim() == ((2,), 2)
    close(y.npvalue(), np.einsum("ijb,j->ib", Wb, xv))
    # 1x1 times anything is a scalar product
    close((dy.scalarInput(2.0) * T(W)).npvalue(), 2 * W)
    # a row vector times a column vector
    v = dy.inputVector([1.0, 2.0, 3.0])
    assert (dy.transpose(v) * v).value() == 14.0


def test_affine_transform(rng):
    b = sample(rng, (2,), "any")
    W1, W2 = sample(rng, (2, 3), "any"), sample(rng, (2, 4), "any")
    x1, x2 = sample(rng, (3, 3), "any"), sample(rng, (4,), "any")  # x1 batched (batch 3)
    y = dy.affine_transform([T(b), T(W1), T(x1, batched=True), T(W2), T(x2)])
    assert y.dim() == ((2,), 3)
    close(y.npvalue(), b[:, None] + W1 @ x1 + (W2 @ x2)[:, None])
    # a vector bias broadcast over the columns of W*X
    X = sample(rng, (3, 5), "any")
    close(dy.affine_transform([T(b), T(W1), T(X)]).npvalue(), b[:, None] + W1 @ X)
    close(dy.affine_transform([T(b)]).npvalue(), b)


def test_colwise_add(rng):
    x, b = sample(rng, (3, 4), "any"), sample(rng, (3,), "any")
    close(dy.colwise_add(T(x), T(b)).npvalue(), x + b[:, None])


def test_esum_average_emax_logsumexp(rng):
    a = sample(rng, (3, 2), "any")  # batched {3} x 2
    b, c = sample(rng, (3,), "any"), sample(rng, (3,), "any")
    xs = [T(a, batched=True), T(b), T(c)]
    B = [a, bcols(b, 2), bcols(c, 2)]
    close(dy.esum(xs).npvalue(), B[0] + B[1] + B[2])
    close(dy.average(xs).npvalue(), (B[0] + B[1] + B[2]) / 3)
    close(dy.emax(xs).npvalue(), np.maximum(np.maximum(B[0], B[1]), B[2]))
    close(dy.logsumexp(xs).npvalue(), np.log(np.exp(B[0]) + np.exp(B[1]) + np.exp(B[2])))
    assert dy.esum(xs).dim() == ((3,), 2)
    # logsumexp stays finite where a naive formula overflows
    big = dy.logsumexp([dy.inputVector([1000.0]), dy.inputVector([1000.0])])
    close(big.value(), 1000 + math.log(2), rtol=1e-6)


def test_dot_and_norms(rng):
    a = sample(rng, (4, 3), "any")  # batch 3
    b = sample(rng, (4,), "any")
    x, y = T(a, batched=True), T(b)
    d = dy.dot_product(x, y)
    assert d.dim() == ((1,), 3)
    assert d.npvalue().shape == (1, 3)  # {1}X3: data dims then the batch
    close(d.npvalue(), (a * b[:, None]).sum(0, keepdims=True))
    close(dy.squared_norm(x).npvalue(), (a * a).sum(0, keepdims=True))
    close(dy.l2_norm(x).npvalue(), np.sqrt((a * a).sum(0, keepdims=True)))
    assert dy.dot_product(dy.inputVector([1, 2, 3]), dy.inputVector([4, 5, 6])).value() == 32.0
    assert dy.l2_norm(dy.inputVector([3, 4])).value() == pytest.approx(5.0)
    M = sample(rng, (2, 3), "any")
    close(dy.squared_norm(T(M)).value(), (M * M).sum())


def test_pow(rng):
    a = sample(rng, (3, 2), "pos")
    y = dy.pow(T(a, batched=True), dy.scalarInput(1.5))
    close(y.npvalue(), a ** 1.5)
    # a batched exponent: one exponent per batch element
    e = np.array([2.0, 0.5])
    close(dy.pow(T(a, batched=True), T(e, batched=True)).npvalue(), a ** e[None, :])


# ===================================================================== softmax family


def test_softmax_columns_and_rows(rng):
    a = sample(rng, (3, 4), "any")
    e = np.exp(a)
    close(dy.softmax(T(a)).npvalue(), e / e.sum(0, keepdims=True))
    close(dy.softmax(T(a), d=1).npvalue(), e / e.sum(1, keepdims=True))
    close(dy.softmax(dy.inputVector([0.0, math.log(3.0)])).npvalue(), [0.25, 0.75])
    b = sample(rng, (3, 2), "any")
    eb = np.exp(b)
    close(dy.softmax(T(b, batched=True)).npvalue(), eb / eb.sum(0))


def test_softmax_dim_beyond_vector_raises():
    # DyNet: "reduction dimension must be < number of dimensions" (never a softmax over the batch)
    x = dy.inputTensor(np.ones((3, 2)), batched=True)
    with pytest.raises(ValueError):
        dy.softmax(x, d=1)


def test_log_softmax_and_restrict(rng):
    a = sample(rng, (4, 3), "any")
    lse = np.log(np.exp(a).sum(0, keepdims=True))
    close(dy.log_softmax(T(a, batched=True)).npvalue(), a - lse)
    v = f32([1.0, 2.0, 3.0, 4.0])
    y = dy.log_softmax(T(v), restrict=[1, 3]).npvalue()
    z = np.log(np.exp(2.0) + np.exp(4.0))
    close(y[[1, 3]], [2 - z, 4 - z])
    assert np.all(np.isneginf(y[[0, 2]]))


def test_logsumexp_dim(rng):
    a = sample(rng, (3, 4, 2), "any")
    x = T(a, batched=True)
    y0 = dy.logsumexp_dim(x, 0)
    assert y0.dim() == ((4,), 2)
    close(y0.npvalue(), np.log(np.exp(a).sum(0)))
    y1 = dy.logsumexp_dim(x, 1)
    assert y1.dim() == ((3,), 2)
    close(y1.npvalue(), np.log(np.exp(a).sum(1)))


# ===================================================================== shape ops


def test_transpose():
    v = dy.inputVector([1.0, 2.0, 3.0])
    assert dy.transpose(v).dim() == ((1, 3), 1)
    a = np.arange(24.0).reshape(2, 3, 4)
    x = T(a, batched=True)
    t = dy.transpose(x)
    assert t.dim() == ((3, 2), 4)
    close(t.npvalue(), a.transpose(1, 0, 2))
    c = np.arange(24.0).reshape(2, 3, 4)
    t3 = dy.transpose(T(c), [2, 0, 1])
    assert t3.dim() == ((4, 2, 3), 1)
    close(t3.npvalue(), c.transpose(2, 0, 1))


def test_reshape_is_column_major():
    a = np.arange(6.0).reshape(2, 3)
    close(dy.reshape(T(a), (3, 2)).npvalue(), a.reshape(3, 2, order="F"))
    close(dy.reshape(T(a), (6,)).npvalue(), [0, 3, 1, 4, 2, 5])
    # per-element sizes match: the batch is kept
    b = np.arange(12.0).reshape(2, 3, 2)
    y = dy.reshape(T(b, batched=True), (6,))
    assert y.dim() == ((6,), 2)
    close(y.npvalue()[:, 1], b[:, :, 1].reshape(-1, order="F"))
    # batch_size creates a batch out of the data
    z = dy.reshape(dy.inputVector([1, 2, 3, 4, 5, 6]), (3,), batch_size=2)
    assert z.dim() == ((3,), 2)
    close(z.npvalue(), [[1, 4], [2, 5], [3, 6]])


def test_concatenate(rng):
    a = sample(rng, (2, 3, 2), "any")  # {2,3} x 2
    b = sample(rng, (1, 3), "any")  # {1,3}
    y = dy.concatenate([T(a, batched=True), T(b)], d=0)
    assert y.dim() == ((3, 3), 2)
    close(y.npvalue(), np.concatenate([a, bcols(b, 2)], axis=0))
    c = sample(rng, (2, 2), "any")
    y = dy.concatenate([T(a, batched=True), T(c)], d=1)
    assert y.dim() == ((2, 5), 2)
    close(y.npvalue(), np.concatenate([a, bcols(c, 2)], axis=1))
    cols = dy.concatenate_cols([dy.inputVector([1, 2]), dy.inputVector([3, 4]), dy.inputVector([5, 6])])
    close(cols.npvalue(), [[1, 3, 5], [2, 4, 6]])
    close(dy.concatenate([dy.inputVector([1, 2]), dy.inputVector([3])]).npvalue(), [1, 2, 3])


def test_concatenate_to_batch():
    y = dy.concatenate_to_batch([T([[1.0, 2.0]], batched=True), dy.inputVector([3.0])])
    assert y.dim() == ((1,), 3)
    assert y.value() == [1.0, 2.0, 3.0]


def test_select_rows_cols(rng):
    a = sample(rng, (4, 3, 2), "any")
    x = T(a, batched=True)
    close(dy.select_rows(x, [3, 0, 3]).npvalue(), a[[3, 0, 3]])
    close(dy.select_cols(x, [2, 0]).npvalue(), a[:, [2, 0]])
    assert dy.select_cols(x, [1]).dim() == ((4, 1), 2)


def test_pick_family(rng):
    a = sample(rng, (4, 3), "any")  # {4} x 3
    x = T(a, batched=True)
    p = dy.pick(x, 2)
    assert p.dim() == ((1,), 3)
    close(p.npvalue(), a[2:3])  # the same index in every batch element
    pb = dy.pick_batch(x, [0, 3, 1])
    close(pb.npvalue(), [[a[0, 0], a[3, 1], a[1, 2]]])
    # pick_batch on an unbatched vector creates the batch
    v = f32([5.0, 6.0, 7.0])
    assert dy.pick_batch(T(v), [2, 0]).value() == [7.0, 5.0]
    M = sample(rng, (3, 4), "any")
    close(dy.pick(T(M), 1, dim=1).npvalue(), M[:, 1])
    close(dy.pick(T(M), 2).npvalue(), M[2])
    close(dy.pick_batch_elem(x, 1).npvalue(), a[:, 1])
    assert dy.pick_batch_elem(x, 1).dim() == ((4,), 1)
    close(dy.pick_batch_elems(x, [2, 0]).npvalue(), a[:, [2, 0]])
    close(x[1].npvalue(), a[1:2])
    close(x[-1].npvalue(), a[3:4])


def test_pickrange(rng):
    M = sample(rng, (5, 3), "any")
    close(dy.pickrange(T(M), 1, 4).npvalue(), M[1:4])
    close(dy.pickrange(T(M), 0, 2, d=1).npvalue(), M[:, 0:2])
    v = dy.inputVector([0, 1, 2, 3, 4])
    close(v[1:3].npvalue(), [1, 2])
    close(dy.pick_range(v, 2, 5).npvalue(), [2, 3, 4])


# ===================================================================== reductions


def test_sums_and_means(rng):
    a = sample(rng, (3, 4, 2), "any")
    x = T(a, batched=True)
    close(dy.sum_elems(x).npvalue(), a.sum((0, 1))[None])
    assert dy.sum_elems(x).dim() == ((1,), 2)
    close(dy.mean_elems(x).npvalue(), a.mean((0, 1))[None])
    close(dy.sum_batches(x).npvalue(), a.sum(2))
    assert dy.sum_batches(x).dim() == ((3, 4), 1)
    close(dy.mean_batches(x).npvalue(), a.mean(2))
    close(dy.sum_dim(x, [0]).npvalue(), a.sum(0))
    close(dy.sum_dim(x, [1]).npvalue(), a.sum(1))
    close(dy.sum_dim(x, [1], b=True).npvalue(), a.sum((1, 2)))
    assert dy.sum_dim(x, [1], b=True).dim() == ((3,), 1)
    close(dy.mean_dim(x, [0]).npvalue(), a.mean(0))
    close(dy.mean_dim(x, [0, 1]).npvalue(), a.mean((0, 1))[None])
    close(dy.mean_dim(x, [1], b=True).npvalue(), a.mean((1, 2)))
    # n overrides the divisor
    close(dy.mean_dim(x, [0], n=10).npvalue(), a.sum(0) / 10)
    assert dy.sum_elems(dy.inputVector([1, 2, 3])).value() == 6.0


# ===================================================================== losses


def test_pickneglogsoftmax(rng):
    v = f32([1.0, 2.0, 0.5])
    expected = math.log(math.exp(1) + math.exp(2) + math.exp(0.5)) - 2.0
    assert dy.pickneglogsoftmax(T(v), 1).value() == pytest.approx(expected, rel=1e-6)
    a = sample(rng, (4, 3), "any")
    y = dy.pickneglogsoftmax_batch(T(a, batched=True), [0, 3, 2])
    assert y.dim() == ((1,), 3)
    lse = np.log(np.exp(a).sum(0))
    close(y.npvalue(), (lse - a[[0, 3, 2], [0, 1, 2]])[None])


def _hinge_ref(x: np.ndarray, idx: list[int], m: float) -> np.ndarray:
    """DyNet: sum over i != gold of max(0, x_i - x_gold + m), per batch element."""
    out = []
    for b in range(x.shape[1]):
        col = x[:, b]
        out.append(sum(max(0.0, col[i] - col[idx[b]] + m) for i in range(len(col)) if i != idx[b]))
    return np.array(out)


def test_hinge(rng):
    # hand: x = [1, 3, 2.5], gold 1, m = 1: max(0, 1-3+1) + max(0, 2.5-3+1) = 0 + 0.5
    assert dy.hinge(dy.inputVector([1.0, 3.0, 2.5]), 1).value() == pytest.approx(0.5)
    assert dy.hinge(dy.inputVector([1.0, 3.0, 2.5]), 1, m=2.0).value() == pytest.approx(0.0 + 1.5 + 0.0 + 0.0 + 0.0)
    a = sample(rng, (5, 3), "any")
    y = dy.hinge_batch(T(a, batched=True), [4, 0, 2], m=0.7)
    close(y.npvalue(), _hinge_ref(a, [4, 0, 2], 0.7)[None])


def test_distances(rng):
    a = sample(rng, (4, 2), "any")
    b = sample(rng, (4,), "any")
    sq = dy.squared_distance(T(a, batched=True), T(b))
    assert sq.dim() == ((1,), 2)
    close(sq.npvalue(), ((a - b[:, None]) ** 2).sum(0, keepdims=True))
    u, w = f32([0.0, 1.0, -2.0, 0.5]), f32([0.5, -1.0, 1.0, 0.5])
    assert dy.l1_distance(T(u), T(w)).value() == pytest.approx(0.5 + 2 + 3 + 0)
    # DyNet's Huber is twice the textbook one: d^2 inside c, c (2|d| - c) outside
    c = 1.345
    d = np.abs(u - w)
    expected = 0.5 * np.where(d < c, d * d, c * (2 * d - c)).sum()  # DyNet halves the sum
    assert dy.huber_distance(T(u), T(w)).value() == pytest.approx(expected, rel=1e-6)
    assert dy.huber_distance(T(u), T(w), c=1.0).value() == pytest.approx(0.5 * (0.25 + 3 + 5 + 0), rel=1e-6)


def test_binary_log_loss(rng):
    x, t = f32([0.2, 0.7, 0.9]), f32([0.0, 1.0, 0.3])
    expected = -(t * np.log(x) + (1 - t) * np.log(1 - x)).sum()
    assert dy.binary_log_loss(T(x), T(t)).value() == pytest.approx(expected, rel=1e-5)


# ===================================================================== gradient control and argmax


def test_gradient_control_values_and_gradients():
    x = dy.inputVector([1.0, -2.0, 3.0])
    for f in (dy.nobackprop, dy.flip_gradient, lambda e: dy.scale_gradient(e, 0.25)):
        close(f(x).npvalue(), [1, -2, 3])
    for f, factor in ((dy.nobackprop, 0.0), (dy.flip_gradient, -1.0), (lambda e: dy.scale_gradient(e, 0.25), 0.25)):
        dy.renew_cg()
        x = dy.inputVector([1.0, -2.0, 3.0])
        c = dy.inputVector([0.5, 1.0, 2.0])
        loss = dy.dot_product(f(x), c)
        loss.backward(full=True)
        close(x.gradient(), factor * np.array([0.5, 1.0, 2.0]))


@pytest.mark.parametrize("mode,factor", [("zero_gradient", 0.0), ("straight_through_gradient", 1.0)])
def test_argmax(mode, factor):
    a = np.array([[0.1, 5.0], [3.0, -1.0], [2.0, 0.0]])  # {3} x 2
    x = T(a, batched=True)
    y = dy.argmax(x, gradient_mode=mode)
    close(y.npvalue(), [[0, 1], [1, 0], [0, 0]])
    c = T(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), batched=True)
    dy.sum_batches(dy.dot_product(y, c)).backward(full=True)
    close(x.gradient(), factor * np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))


def test_argmax_bad_mode_raises():
    with pytest.raises(ValueError, match="gradient_mode"):
        dy.argmax(dy.inputVector([1.0, 2.0]), gradient_mode="nope")


# ===================================================================== random tensors, dropout and noise


def test_dropout_statistics_and_gradient():
    n = 20000
    p = 0.3
    x = dy.inputTensor(np.ones(n))
    y = dy.dropout(x, p)
    v = y.npvalue()
    kept = v != 0
    # inverted dropout: survivors are scaled by 1/(1-p), so the mean stays 1
    close(v[kept], np.full(kept.sum(), 1 / (1 - p)), rtol=1e-6)
    assert abs((~kept).mean() - p) < 0.02
    assert abs(v.mean() - 1.0) < 0.03
    # the gradient is the same mask
    dy.sum_elems(y).backward(full=True)
    close(x.gradient(), v)


def test_const_lookup_and_update_false_give_no_gradient():
    pc = dy.ParameterCollection()
    lp = pc.lookup_parameters_from_numpy(np.arange(6.0).reshape(3, 2))
    e = dy.const_lookup(lp, 2)
    close(e.npvalue(), [4, 5])
    f = dy.lookup_batch(lp, [0, 1], update=False)
    loss = dy.sum_elems(e) + dy.sum_batches(dy.sum_elems(f))
    assert loss.value() == pytest.approx(4 + 5 + 0 + 1 + 2 + 3)
    loss.backward()
    close(lp.grad_as_array(), np.zeros((3, 2)))


def test_dropout_p0_is_identity():
    x = dy.inputVector([1.0, 2.0, 3.0])
    close(dy.dropout(x, 0.0).npvalue(), [1, 2, 3])
    close(dy.dropout_dim(x, 0, 0.0).npvalue(), [1, 2, 3])
    close(dy.dropout_batch(x, 0.0).npvalue(), [1, 2, 3])


def test_dropout_p1_gives_zeros():
    # DyNet's Bernoulli(1 - p) mask is all zeros when p == 1 (never NaN)
    x = dy.inputVector([1.0, 2.0, 3.0])
    close(dy.dropout(x, 1.0).npvalue(), [0, 0, 0])


def test_dropout_dim_and_batch_share_masks():
    a = np.ones((50, 40, 8))
    x = T(a, batched=True)
    v = dy.dropout_dim(x, 0, 0.5).npvalue()
    # the mask has size 1 along dimension 0: each column of each batch element is all kept or all dropped
    assert np.all(v == v[:1])
    assert set(np.unique(v)) <= {0.0, 2.0}
    assert 0.3 < (v[0] == 0).mean() < 0.7
    w = dy.dropout_batch(T(np.ones((5, 400)), batched=True), 0.5).npvalue()
    assert np.all(w == w[:1])
    assert 0.4 < (w[0] == 0).mean() < 0.6
    b = dy.block_dropout(dy.inputVector(np.ones(100)), 0.5).npvalue()
    assert len(set(b.tolist())) == 1 and b[0] in (0.0, 2.0)


def test_noise_statistics():
    n = 20000
    y = dy.noise(dy.inputTensor(np.full(n, 3.0)), 0.5).npvalue()
    assert abs(y.mean() - 3.0) < 0.02
    assert abs(y.std() - 0.5) < 0.02


def test_random_tensors_statistics():
    n = 20000
    v = dy.random_normal(n, mean=1.0, stddev=2.0).npvalue()
    assert abs(v.mean() - 1.0) < 0.06 and abs(v.std() - 2.0) < 0.06
    u = dy.random_uniform(n, -1.0, 3.0).npvalue()
    assert u.min() >= -1.0 and u.max() <= 3.0 and abs(u.mean() - 1.0) < 0.05
    b = dy.random_bernoulli(n, 0.25, scale=2.0).npvalue()
    assert set(np.unique(b)) <= {0.0, 2.0} and abs((b == 2.0).mean() - 0.25) < 0.02
    g = dy.random_gumbel(n).npvalue()
    assert abs(g.mean() - 0.5772156649) < 0.05  # Euler-Mascheroni constant
    assert dy.random_normal((2, 3), batch_size=4).dim() == ((2, 3), 4)


def test_random_tensors_are_seeded():
    dy.reset_random_seed(7)
    a = dy.random_normal(5).npvalue()
    dy.renew_cg()
    dy.reset_random_seed(7)
    b = dy.random_normal(5).npvalue()
    close(a, b, rtol=0, atol=0)


# ===================================================================== gradients by finite differences

EPS = 2.0 ** -7


def _loss(build, arrays, batched, weight):
    xs = [T(a, b) for a, b in zip(arrays, batched, strict=True)]
    y = build(*xs)
    w = dy.inputTensor(weight, batched=True)
    return xs, dy.sum_batches(dy.sum_elems(dy.cmult(y, w)))


def check_grad(build, arrays, batched=None, rtol=2e-2, atol=2e-3, seed=0):
    """Compare gradients from backward(full=True) with central differences of the same loss.

    The loss is sum(op(x) * W) for a fixed random W, so every output element counts.
    Inputs are float32-exact and the step is a power of two.
    """
    arrays = [f32(a) for a in arrays]
    batched = batched or [False] * len(arrays)
    dy.renew_cg()
    xs = [T(a, b) for a, b in zip(arrays, batched, strict=True)]
    y = build(*xs)
    d, bd = y.dim()
    weight = f32(np.random.default_rng(seed).uniform(0.5, 1.5, d + (bd,)))
    dy.renew_cg()
    xs, loss = _loss(build, arrays, batched, weight)
    loss.backward(full=True)
    analytic = [x.gradient().astype(np.float64) for x in xs]
    for k, a in enumerate(arrays):
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            vals = []
            steps = []
            for s in (+1, -1):
                b = a.copy()
                b[idx] = np.float32(a[idx] + s * EPS)
                steps.append(b[idx])
                arrs = list(arrays)
                arrs[k] = b
                dy.renew_cg()
                vals.append(_loss(build, arrs, batched, weight)[1].scalar_value())
            num[idx] = (vals[0] - vals[1]) / (steps[0] - steps[1])
        scale = max(1.0, np.abs(num).max())
        assert analytic[k].size == num.size, f"gradient of input {k} has shape {analytic[k].shape}, input {a.shape}"
        np.testing.assert_allclose(analytic[k].reshape(num.shape), num, rtol=rtol, atol=atol * scale,
                                   err_msg=f"gradient of input {k}")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name, rng):
    f, _, domain = UNARY[name]
    check_grad(f, [sample(rng, (3, 2), domain)], [True])


def _pos(rng, shape):
    return sample(rng, shape, "pos")


def _any(rng, shape):
    return sample(rng, shape, "any")


def _separated(rng, shape, gap=0.15):
    """Values whose pairwise differences are at least `gap` (no ties for max/min/hinge kinks)."""
    n = int(np.prod(shape))
    base = np.arange(n) * gap * 2 - n * gap
    return f32(rng.permutation(base).reshape(shape))


GRAD_CASES = {
    # name: (build, inputs(rng) -> list of arrays, batched flags)
    "add_batch_bcast": (lambda x, y: x + y, lambda r: [_any(r, (3, 2, 2)), _any(r, (3, 2))], [True, False]),
    "add_size1_bcast": (lambda x, y: x + y, lambda r: [_any(r, (3, 2, 2)), _any(r, (3, 1))], [True, False]),
    "sub": (lambda x, y: x - y, lambda r: [_any(r, (3, 2)), _any(r, (3,))], [True, False]),
    "cmult_bcast": (dy.cmult, lambda r: [_any(r, (3, 2, 2)), _any(r, (1, 2))], [True, False]),
    "cdiv_bcast": (dy.cdiv, lambda r: [_any(r, (3, 2)), _pos(r, (3, 1))], [True, False]),
    "bmin": (dy.bmin, lambda r: [*np.split(_separated(r, (6, 2)), 2)], [True, True]),
    "bmax": (dy.bmax, lambda r: [*np.split(_separated(r, (6, 2)), 2)], [False, True]),
    "matmul_Wx": (lambda W, x: W * x, lambda r: [_any(r, (2, 3)), _any(r, (3, 2))], [False, True]),
    "matmul_batchedW": (lambda W, x: W * x, lambda r: [_any(r, (2, 3, 2)), _any(r, (3, 2))], [True, False]),
    "matmul_mat": (lambda A, B: A * B, lambda r: [_any(r, (2, 3)), _any(r, (3, 2))], [False, False]),
    "affine": (lambda b, W, x, V, z: dy.affine_transform([b, W, x, V, z]),
               lambda r: [_any(r, (2,)), _any(r, (2, 3)), _any(r, (3, 2)), _any(r, (2, 2)), _any(r, (2,))],
               [False, False, True, False, False]),
    "affine_colbias": (lambda b, W, X: dy.affine_transform([b, W, X]),
                       lambda r: [_any(r, (2,)), _any(r, (2, 3)), _any(r, (3, 3))], [False, False, False]),
    "colwise_add": (dy.colwise_add, lambda r: [_any(r, (3, 2)), _any(r, (3,))], [False, False]),
    "colwise_add_batched_bias": (dy.colwise_add, lambda r: [_any(r, (3, 2)), _any(r, (3, 2))], [False, True]),
    "affine_batched_bias": (lambda b, W, x: dy.affine_transform([b, W, x]),
                            lambda r: [_any(r, (2, 3)), _any(r, (2, 2)), _any(r, (2,))], [True, False, False]),
    "matmul_both_batched": (lambda A, B: A * B, lambda r: [_any(r, (2, 3, 2)), _any(r, (3, 2, 2))], [True, True]),
    "transpose_batched_vector": (dy.transpose, lambda r: [_any(r, (3, 2))], [True]),
    "pick_batch_dim1": (lambda x: dy.pick_batch(x, [2, 0], dim=1), lambda r: [_any(r, (2, 3, 2))], [True]),
    "esum": (lambda a, b, c: dy.esum([a, b, c]), lambda r: [_any(r, (3, 2)), _any(r, (3,)), _any(r, (3,))],
             [True, False, False]),
    "average": (lambda a, b: dy.average([a, b]), lambda r: [_any(r, (3, 2)), _any(r, (3,))], [True, False]),
    "emax": (lambda a, b, c: dy.emax([a, b, c]), lambda r: [*np.split(_separated(r, (6, 2)), 3)], [True, True, True]),
    "logsumexp": (lambda a, b: dy.logsumexp([a, b]), lambda r: [_any(r, (3, 2)), _any(r, (3,))], [True, False]),
    "dot_product": (dy.dot_product, lambda r: [_any(r, (3, 2)), _any(r, (3,))], [True, False]),
    "squared_norm": (dy.squared_norm, lambda r: [_any(r, (3, 2))], [True]),
    "l2_norm": (dy.l2_norm, lambda r: [_any(r, (3, 2))], [True]),
    "pow": (dy.pow, lambda r: [_pos(r, (3, 2)), _pos(r, (1,))], [True, False]),
    "pow_batched_exp": (dy.pow, lambda r: [_pos(r, (3, 2)), _pos(r, (2,))], [True, True]),
    "softmax": (dy.softmax, lambda r: [_any(r, (3, 2))], [True]),
    "softmax_d1": (lambda x: dy.softmax(x, 1), lambda r: [_any(r, (2, 3))], [False]),
    "log_softmax": (dy.log_softmax, lambda r: [_any(r, (3, 2, 2))], [True]),
    "log_softmax_restrict": (lambda x: dy.select_rows(dy.log_softmax(x, [0, 2, 3]), [0, 2, 3]),
                             lambda r: [_any(r, (4,))], [False]),
    "logsumexp_dim0": (lambda x: dy.logsumexp_dim(x, 0), lambda r: [_any(r, (3, 2, 2))], [True]),
    "logsumexp_dim1": (lambda x: dy.logsumexp_dim(x, 1), lambda r: [_any(r, (3, 2, 2))], [True]),
    "transpose": (dy.transpose, lambda r: [_any(r, (2, 3, 2))], [True]),
    "transpose3": (lambda x: dy.transpose(x, [1, 2, 0]), lambda r: [_any(r, (2, 3, 2))], [False]),
    "reshape": (lambda x: dy.reshape(x, (3, 2)), lambda r: [_any(r, (2, 3, 2))], [True]),
    "reshape_to_batch": (lambda x: dy.reshape(x, (2,), batch_size=3), lambda r: [_any(r, (6,))], [False]),
    "concatenate0": (lambda a, b: dy.concatenate([a, b]), lambda r: [_any(r, (2, 2, 2)), _any(r, (1, 2))],
                     [True, False]),
    "concatenate1": (lambda a, b: dy.concatenate([a, b], d=1), lambda r: [_any(r, (2, 2, 2)), _any(r, (2, 1))],
                     [True, False]),
    "concatenate_cols": (lambda a, b: dy.concatenate_cols([a, b]), lambda r: [_any(r, (3,)), _any(r, (3,))],
                         [False, False]),
    "concatenate_to_batch": (lambda a, b: dy.concatenate_to_batch([a, b]), lambda r: [_any(r, (3, 2)), _any(r, (3,))],
                             [True, False]),
    "select_rows": (lambda x: dy.select_rows(x, [2, 0, 2]), lambda r: [_any(r, (3, 2, 2))], [True]),
    "select_cols": (lambda x: dy.select_cols(x, [1, 1, 0]), lambda r: [_any(r, (2, 3))], [False]),
    "pick": (lambda x: dy.pick(x, 1), lambda r: [_any(r, (3, 2))], [True]),
    "pick_dim1": (lambda x: dy.pick(x, 2, dim=1), lambda r: [_any(r, (2, 3, 2))], [True]),
    "pick_batch": (lambda x: dy.pick_batch(x, [2, 0]), lambda r: [_any(r, (3, 2))], [True]),
    "pick_batch_unbatched": (lambda x: dy.pick_batch(x, [2, 0, 2]), lambda r: [_any(r, (3,))], [False]),
    "pick_batch_elems": (lambda x: dy.pick_batch_elems(x, [2, 0, 2]), lambda r: [_any(r, (2, 3))], [True]),
    "pickrange": (lambda x: dy.pickrange(x, 1, 3), lambda r: [_any(r, (4, 2))], [True]),
    "pickrange_d1": (lambda x: dy.pickrange(x, 1, 3, d=1), lambda r: [_any(r, (2, 4))], [False]),
    "sum_elems": (dy.sum_elems, lambda r: [_any(r, (2, 3, 2))], [True]),
    "mean_elems": (dy.mean_elems, lambda r: [_any(r, (2, 3, 2))], [True]),
    "sum_batches": (dy.sum_batches, lambda r: [_any(r, (2, 3))], [True]),
    "mean_batches": (dy.mean_batches, lambda r: [_any(r, (2, 3))], [True]),
    "sum_dim1b": (lambda x: dy.sum_dim(x, [1], b=True), lambda r: [_any(r, (2, 3, 2))], [True]),
    "mean_dim0": (lambda x: dy.mean_dim(x, [0]), lambda r: [_any(r, (2, 3, 2))], [True]),
    "mean_dim_n": (lambda x: dy.mean_dim(x, [1], n=5), lambda r: [_any(r, (2, 3))], [False]),
    "pickneglogsoftmax": (lambda x: dy.pickneglogsoftmax(x, 2), lambda r: [_any(r, (4,))], [False]),
    "pickneglogsoftmax_batch": (lambda x: dy.pickneglogsoftmax_batch(x, [2, 0]), lambda r: [_any(r, (4, 2))], [True]),
    "hinge": (lambda x: dy.hinge(x, 1, m=0.5), lambda r: [_separated(r, (5,), 0.2)], [False]),
    "hinge_batch": (lambda x: dy.hinge_batch(x, [1, 3], m=0.5), lambda r: [_separated(r, (5, 2), 0.2)], [True]),
    "binary_log_loss": (dy.binary_log_loss, lambda r: [sample(r, (3,), "prob"), sample(r, (3,), "prob")],
                        [False, False]),
    "squared_distance": (dy.squared_distance, lambda r: [_any(r, (3, 2)), _any(r, (3,))], [True, False]),
    "l1_distance": (dy.l1_distance, lambda r: [f32([0.5, -1.0, 2.0]), f32([-0.5, 0.25, 1.0])], [False, False]),
    "huber_distance": (lambda x, y: dy.huber_distance(x, y, c=1.0),
                       lambda r: [f32([0.5, -1.0, 2.0, 0.0]), f32([-0.1, 0.25, 0.5, -0.3])], [False, False]),
    "dropout_fixed_seed": (lambda x: dy.dropout(x, 0.5), lambda r: [_any(r, (4, 2))], [True]),
    "noise_fixed_seed": (lambda x: dy.noise(x, 0.3), lambda r: [_any(r, (3,))], [False]),
    "dropout_dim_fixed_seed": (lambda x: dy.dropout_dim(x, 1, 0.5), lambda r: [_any(r, (3, 4, 2))], [True]),
    "dropout_batch_fixed_seed": (lambda x: dy.dropout_batch(x, 0.5), lambda r: [_any(r, (2, 4))], [True]),
    "block_dropout_fixed_seed": (lambda x: dy.block_dropout(x, 0.3), lambda r: [_any(r, (3,))], [False]),
}


@pytest.fixture
def reseed_each_graph(monkeypatch):
    """Random ops get the same draws in every graph of a gradient check (the loss is then deterministic)."""
    real = dy.renew_cg

    def renew(*args, **kwargs):
        out = real(*args, **kwargs)
        dy.reset_random_seed(99)
        return out

    monkeypatch.setattr(dy, "renew_cg", renew)


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients(name, rng, reseed_each_graph):
    build, inputs, batched = GRAD_CASES[name]
    check_grad(build, inputs(rng), batched)
