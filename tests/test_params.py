"""Parameters, lookup parameters, collections and initialisers, against DyNet's documented behaviour.

Expectations come from DyNet's source (param-init.cc, model.cc, _dynet.pyx): the
Glorot range, the variance convention of NormalInitializer, column-major files,
the naming scheme ``/_0``, ``/a_1``, ``/x/`` and sparse lookup gradients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy

# ---------------------------------------------------------------- helpers


def _max_abs(a: np.ndarray) -> float:
    return float(np.abs(a).max())


def _assert_uniform_range(a: np.ndarray, scale: float) -> None:
    """Every value inside [-scale, scale] and the sample reaching close to both ends."""
    assert _max_abs(a) <= scale * (1 + 1e-6)
    assert a.max() > 0.95 * scale and a.min() < -0.95 * scale


# ---------------------------------------------------------------- initialisers


@pytest.mark.parametrize(
    "dims, scale",
    [
        ((60, 40), math.sqrt(6.0 / 100)),  # sqrt(6/(m+n))
        ((500,), math.sqrt(3.0 / 500)),  # 1-d: sqrt(3/n)
        ((10, 20, 30), math.sqrt(9.0 / 60)),  # sqrt(3*nd/sum(dims))
        ((3, 3, 8, 16), math.sqrt(6.0 / (9 * 8 + 9 * 16))),  # conv filter: H*W*Cin + H*W*Cout
    ],
)
def test_glorot_default_range(dims, scale):
    dy.reset_random_seed(11)
    pc = dy.ParameterCollection()
    p = pc.add_parameters(dims)  # init=None means Glorot
    a = p.as_array()
    assert a.shape == dims
    _assert_uniform_range(a, scale)
    q = pc.add_parameters(dims, init=dy.GlorotInitializer())
    _assert_uniform_range(q.as_array(), scale)
    r = pc.add_parameters(dims, init="glorot")
    _assert_uniform_range(r.as_array(), scale)


def test_glorot_gain():
    dy.reset_random_seed(3)
    pc = dy.ParameterCollection()
    p = pc.add_parameters((50, 70), init=dy.GlorotInitializer(gain=2.0))
    _assert_uniform_range(p.as_array(), 2.0 * math.sqrt(6.0 / 120))


def test_lookup_default_glorot_counts_the_rows():
    # DyNet's Python add_lookup_parameters(init=None) uses GlorotInitializer() (is_lookup=False)
    # over all_dim = {row dim, n}: scale = sqrt(3*2/(dim + n)).
    dy.reset_random_seed(5)
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((400, 20))
    assert E.shape() == (400, 20)
    _assert_uniform_range(E.as_array(), math.sqrt(6.0 / 420))


def test_lookup_glorot_is_lookup_leaves_rows_out():
    dy.reset_random_seed(5)
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((400, 20), init=dy.GlorotInitializer(is_lookup=True))
    _assert_uniform_range(E.as_array(), math.sqrt(3.0 / 20))


def test_normal_initializer_takes_a_variance():
    dy.reset_random_seed(1)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((300, 300), init=dy.NormalInitializer(0.5, 4.0)).as_array().astype(np.float64)
    assert abs(a.mean() - 0.5) < 0.03  # std of the mean: 2/300
    assert abs(a.var() / 4.0 - 1) < 0.02  # variance 4, i.e. std 2 (not std 4)


def test_normal_initializer_defaults():
    dy.reset_random_seed(2)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((300, 300), init=dy.NormalInitializer()).as_array().astype(np.float64)
    assert abs(a.mean()) < 0.02
    assert abs(a.var() - 1.0) < 0.02


def test_init_string_normal_uses_mean_and_std():
    dy.reset_random_seed(3)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((300, 300), init="normal", mean=-1.0, std=3.0).as_array().astype(np.float64)
    assert abs(a.mean() + 1.0) < 0.05
    assert abs(a.var() / 9.0 - 1) < 0.02


def test_init_string_he_variance():
    # 'he' -> NormalInitializer(0, 1/(2*dim[-1])), a variance
    dy.reset_random_seed(4)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((400, 50), init="he").as_array().astype(np.float64)
    assert abs(a.var() * 100.0 - 1) < 0.02
    assert abs(a.mean()) < 0.005


def test_init_string_he_for_lookup_uses_the_row_dim():
    # add_lookup_parameters((n, d), init='he'): variance 1/(2*d), d the last row dim (not n)
    dy.reset_random_seed(4)
    pc = dy.ParameterCollection()
    a = pc.add_lookup_parameters((2000, 40), init="he").as_array().astype(np.float64)
    assert abs(a.var() * 80.0 - 1) < 0.02


def test_uniform_initializer_and_string():
    dy.reset_random_seed(6)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((100, 100), init=dy.UniformInitializer(0.3)).as_array()
    _assert_uniform_range(a, 0.3)
    assert abs(float(a.astype(np.float64).var()) - 0.09 / 3) < 0.002  # var of U(-s,s) = s^2/3
    b = pc.add_parameters((100, 100), init="uniform", scale=0.7).as_array()
    _assert_uniform_range(b, 0.7)


@pytest.mark.parametrize("value", [2, 0.5, -3.25, 0])
def test_number_means_const(value):
    pc = dy.ParameterCollection()
    np.testing.assert_array_equal(pc.add_parameters((2, 3), init=value).as_array(), np.full((2, 3), value))
    np.testing.assert_array_equal(pc.add_parameters(4, init=dy.ConstInitializer(value)).as_array(), np.full(4, value))
    np.testing.assert_array_equal(pc.add_lookup_parameters((3, 2), init=value).as_array(), np.full((3, 2), value))


def test_identity():
    pc = dy.ParameterCollection()
    np.testing.assert_array_equal(pc.add_parameters((4, 4), init="identity").as_array(), np.eye(4))
    np.testing.assert_array_equal(pc.add_parameters((3, 3), init=dy.IdentityInitializer()).as_array(), np.eye(3))
    with pytest.raises(ValueError, match="square"):
        pc.add_parameters((3, 4), init=dy.IdentityInitializer())


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_saxe_orthonormal(scale):
    dy.reset_random_seed(8)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((6, 6), init=dy.SaxeInitializer(scale)).as_array().astype(np.float64)
    np.testing.assert_allclose(a.T @ a, scale**2 * np.eye(6), atol=1e-5)
    np.testing.assert_allclose(a @ a.T, scale**2 * np.eye(6), atol=1e-5)
    assert not np.allclose(np.abs(a), np.abs(a[:, ::-1]))  # random, not a permutation of the identity


@pytest.mark.parametrize("bad", ["saxe", "xavier", "Glorot", ""])
def test_bad_init_string_raises(bad):
    pc = dy.ParameterCollection()
    with pytest.raises(ValueError):
        pc.add_parameters((2, 2), init=bad)
    with pytest.raises(ValueError):
        pc.add_lookup_parameters((2, 2), init=bad)


def test_bad_init_object_raises():
    pc = dy.ParameterCollection()
    with pytest.raises((TypeError, ValueError)):
        pc.add_parameters((2, 2), init=object())
    assert pc.parameters_list() == []


def test_from_file_initializer_is_column_major(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("1 2 3\n4 5 6\n")
    pc = dy.ParameterCollection()
    p = pc.add_parameters((2, 3), init=dy.FromFileInitializer(str(f)))
    np.testing.assert_array_equal(p.as_array(), [[1, 3, 5], [2, 4, 6]])


def test_from_file_initializer_errors(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("1 2 3 4 5")
    pc = dy.ParameterCollection()
    with pytest.raises(ValueError, match="5 values"):
        pc.add_parameters((2, 3), init=dy.FromFileInitializer(str(f)))
    f.write_text("1 2 x 4 5 6")
    with pytest.raises(ValueError, match="w.txt"):
        pc.add_parameters((2, 3), init=dy.FromFileInitializer(str(f)))
    with pytest.raises(ValueError, match="missing.txt"):
        pc.add_parameters((2, 3), init=dy.FromFileInitializer(str(tmp_path / "missing.txt")))


def test_numpy_initializer_and_arrays():
    arr = np.arange(6, dtype=np.float64).reshape(2, 3) - 2.5
    pc = dy.ParameterCollection()
    np.testing.assert_array_equal(pc.add_parameters((2, 3), init=dy.NumpyInitializer(arr)).as_array(), arr)
    np.testing.assert_array_equal(pc.add_parameters((2, 3), init=arr).as_array(), arr)
    np.testing.assert_array_equal(pc.parameters_from_numpy(arr).as_array(), arr)
    with pytest.raises(ValueError):
        pc.add_parameters((3, 2), init=dy.NumpyInitializer(arr))


def test_lookup_from_numpy_and_numpy_initializer_refused():
    arr = np.arange(12, dtype=np.float64).reshape(4, 3)
    pc = dy.ParameterCollection()
    E = pc.lookup_parameters_from_numpy(arr)
    assert E.shape() == (4, 3) and len(E) == 4
    np.testing.assert_array_equal(E.as_array(), arr)
    np.testing.assert_array_equal(E.row_as_array(2), [6, 7, 8])
    # DyNet: ValueError('Do not use NumpyInitializer with add_lookup_parameters, use lookup_parameters_from_numpy')
    with pytest.raises(ValueError, match="lookup_parameters_from_numpy"):
        pc.add_lookup_parameters((4, 3), init=dy.NumpyInitializer(arr))


def test_reset_random_seed_makes_init_deterministic():
    def draw():
        pc = dy.ParameterCollection()
        return (pc.add_parameters((5, 4)).as_array(), pc.add_lookup_parameters((6, 3)).as_array(),
                pc.add_parameters(7, init=dy.NormalInitializer(0, 1)).as_array())

    dy.reset_random_seed(1234)
    a = draw()
    dy.reset_random_seed(1234)
    b = draw()
    dy.reset_random_seed(4321)
    c = draw()
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)


# ---------------------------------------------------------------- naming


def test_names_follow_dynet():
    pc = dy.ParameterCollection()
    assert pc.name() == "/"
    assert pc.add_parameters(2).name() == "/_0"
    assert pc.add_parameters(2).name() == "/_1"
    assert pc.add_parameters(2, name="a").name() == "/a"
    assert pc.add_parameters(2, name="a").name() == "/a_1"
    # parameters and lookup parameters share one counter per name
    assert pc.add_lookup_parameters((3, 2), name="a").name() == "/a_2"
    assert pc.add_lookup_parameters((3, 2)).name() == "/_2"
    # subcollections count apart and end in '/'
    x = pc.add_subcollection("x")
    assert x.name() == "/x/"
    assert pc.add_subcollection("x").name() == "/x_1/"
    anon = pc.add_subcollection()
    assert anon.name() == "/_0/"
    assert pc.add_subcollection().name() == "/_1/"
    assert x.add_parameters(2).name() == "/x/_0"
    assert x.add_parameters(2, name="W").name() == "/x/W"
    assert anon.add_lookup_parameters((2, 2), name="E").name() == "/_0/E"
    y = x.add_subcollection("y")
    assert y.name() == "/x/y/"
    assert y.add_parameters(1, name="b").name() == "/x/y/b"
    assert y.add_subcollection().add_parameters(1).name() == "/x/y/_0/_0"


@pytest.mark.parametrize("bad", ["a_b", "a/b", "_", "/"])
def test_reserved_characters_in_names_raise(bad):
    pc = dy.ParameterCollection()
    with pytest.raises(ValueError, match="'/' or '_'"):
        pc.add_parameters(2, name=bad)
    with pytest.raises(ValueError, match="'/' or '_'"):
        pc.add_lookup_parameters((2, 2), name=bad)
    with pytest.raises(ValueError, match="'/' or '_'"):
        pc.add_subcollection(bad)
    assert pc.parameters_list() == [] and pc.lookup_parameters_list() == []


def test_str_and_model_alias():
    assert dy.Model is dy.ParameterCollection
    pc = dy.Model()
    p = pc.add_parameters((2, 3), name="W")
    assert p.name() in repr(p)


# ---------------------------------------------------------------- listing and counting


def test_lists_in_creation_order_including_subcollections():
    pc = dy.ParameterCollection()
    a = pc.add_parameters(2, name="a")
    sub = pc.add_subcollection("s")
    b = sub.add_parameters(2, name="b")
    e1 = pc.add_lookup_parameters((3, 2), name="E")
    c = pc.add_parameters(2, name="c")
    d = sub.add_parameters(2, name="d")  # created after c: DyNet lists by creation time
    e2 = sub.add_lookup_parameters((3, 2), name="F")
    assert [p.name() for p in pc.parameters_list()] == [a.name(), b.name(), c.name(), d.name()]
    assert [p.name() for p in pc.lookup_parameters_list()] == [e1.name(), e2.name()]
    assert [p.name() for p in sub.parameters_list()] == ["/s/b", "/s/d"]
    assert [p.name() for p in sub.lookup_parameters_list()] == ["/s/F"]


def test_parameter_count():
    pc = dy.ParameterCollection()
    pc.add_parameters((3, 4))
    pc.add_parameters(5)
    sub = pc.add_subcollection()
    sub.add_lookup_parameters((10, 2, 3))
    sub.add_parameters((2, 2))
    assert pc.parameter_count() == 12 + 5 + 60 + 4
    assert sub.parameter_count() == 64


# ---------------------------------------------------------------- Parameters methods


def test_set_value_as_array_zero_scale_clip():
    pc = dy.ParameterCollection()
    p = pc.add_parameters((2, 3))
    v = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -6.0]])
    p.set_value(v)
    np.testing.assert_array_equal(p.as_array(), v)
    got = p.as_array()
    got[0, 0] = 99.0  # a copy, not a view of the storage
    np.testing.assert_array_equal(p.as_array(), v)
    p.scale(0.5)
    np.testing.assert_array_equal(p.as_array(), v * 0.5)
    p.clip_inplace(-1.0, 1.0)
    np.testing.assert_array_equal(p.as_array(), np.clip(v * 0.5, -1.0, 1.0))
    p.zero()
    np.testing.assert_array_equal(p.as_array(), np.zeros((2, 3)))
    assert p.shape() == (2, 3)


def test_set_value_shape_mismatch_names_shapes():
    pc = dy.ParameterCollection()
    p = pc.add_parameters((2, 3), init=1.0)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        p.set_value(np.zeros((3, 2)))
    np.testing.assert_array_equal(p.as_array(), np.ones((2, 3)))


def test_gradient_scale_gradient_and_set_updated():
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=0.0)
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0, -3.0])
    loss = dy.dot_product(W * x, dy.inputVector([2.0, -1.0]))
    loss.forward()
    loss.backward()
    expected = np.outer([2.0, -1.0], [1.0, 2.0, -3.0])  # d(c.Wx)/dW = c x^T
    np.testing.assert_allclose(W.grad_as_array(), expected)
    W.scale_gradient(0.25)
    np.testing.assert_allclose(W.grad_as_array(), expected * 0.25)
    assert W.is_updated()
    W.set_updated(False)
    assert not W.is_updated()
    W.set_updated(True)
    assert W.is_updated()


def test_expr_update_false_is_constant():
    pc = dy.ParameterCollection()
    W = pc.add_parameters(3, init=1.0)
    dy.renew_cg()
    loss = dy.sum_elems(dy.cmult(W.expr(), dy.inputVector([1.0, 2.0, 3.0])))
    loss.forward()
    loss.backward()
    np.testing.assert_array_equal(W.grad_as_array(), np.zeros(3))
    dy.renew_cg()
    loss = dy.sum_elems(dy.cmult(W.expr(True), dy.inputVector([1.0, 2.0, 3.0])))
    loss.forward()
    loss.backward()
    np.testing.assert_array_equal(W.grad_as_array(), [1.0, 2.0, 3.0])


# ---------------------------------------------------------------- LookupParameters methods


def test_lookup_rows_init_and_read():
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((4, 3), init=0.0)
    E.init_row(2, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(E.row_as_array(2), [1, 2, 3])
    np.testing.assert_array_equal(E.row_as_array(1), [0, 0, 0])
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    E.init_from_array(table)
    np.testing.assert_array_equal(E.as_array(), table)
    np.testing.assert_array_equal(E.rows_as_array([3, 0]), table[[3, 0]])
    with pytest.raises(ValueError):
        E.init_from_array(np.zeros((5, 3)))
    with pytest.raises(ValueError):
        E.init_row(0, [1.0, 2.0])
    np.testing.assert_array_equal(E.as_array(), table)


def test_lookup_expression_values():
    pc = dy.ParameterCollection()
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    E = pc.lookup_parameters_from_numpy(table)
    dy.renew_cg()
    assert E[1].vec_value() == [3.0, 4.0, 5.0]
    assert dy.lookup(E, 3).vec_value() == [9.0, 10.0, 11.0]
    b = E.batch([2, 0])
    assert b.dim() == ((3,), 2)
    np.testing.assert_array_equal(b.npvalue(), table[[2, 0]].T)


@pytest.mark.parametrize("bad", [4, 10, -1])
def test_lookup_out_of_range_names_the_parameter(bad):
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((4, 3), name="emb")
    dy.renew_cg()
    with pytest.raises(IndexError, match="/emb"):
        dy.lookup(E, bad)
    with pytest.raises(IndexError, match="/emb"):
        dy.lookup_batch(E, [0, bad])
    with pytest.raises(IndexError, match="/emb"):
        E.row_as_array(bad)
    with pytest.raises(IndexError, match="/emb"):
        E.init_row(bad, [0.0, 0.0, 0.0])


def test_sparse_gradient_touches_only_looked_up_rows():
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((5, 2), init=1.0)
    dy.renew_cg()
    c = dy.inputVector([1.0, -2.0])
    loss = dy.dot_product(dy.esum([E[1], E[3], E[1]]), c) + dy.sum_elems(dy.sum_batches(E.batch([4, 1])))
    loss.forward()
    loss.backward()
    g = E.grad_as_array()
    expected = np.zeros((5, 2))
    expected[1] = 2 * np.array([1.0, -2.0]) + 1.0  # twice through esum, once through the batch
    expected[3] = [1.0, -2.0]
    expected[4] = 1.0
    np.testing.assert_allclose(g, expected)
    np.testing.assert_allclose(E.row_grad_as_array(1), expected[1])
    np.testing.assert_allclose(E.rows_grad_as_array([3, 0]), expected[[3, 0]])


def test_const_lookup_gives_no_gradient():
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((3, 2), init=1.0)
    dy.renew_cg()
    loss = dy.sum_elems(dy.const_lookup(E, 1) + dy.lookup(E, 2, update=False))
    loss.forward()
    loss.backward()
    np.testing.assert_array_equal(E.grad_as_array(), np.zeros((3, 2)))


def test_lookup_zero_scale_and_matrix_rows():
    pc = dy.ParameterCollection()
    table = np.arange(24, dtype=np.float64).reshape(3, 2, 4)  # 3 rows of 2x4 matrices
    E = pc.lookup_parameters_from_numpy(table)
    assert E.shape() == (3, 2, 4)
    np.testing.assert_array_equal(E.row_as_array(1), table[1])
    dy.renew_cg()
    np.testing.assert_array_equal(E[2].npvalue(), table[2])
    E.scale(2.0)
    np.testing.assert_array_equal(E.as_array(), 2 * table)
    E.zero()
    np.testing.assert_array_equal(E.as_array(), np.zeros_like(table))
