"""Bad input raises a clear Python exception (op, dims, index, backend name) and leaves
the graph as it was; unknown and broken backend plugins are reported by name."""

from __future__ import annotations

import types

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import plugins
from dynet_api.backend import Backend, BackendUnavailable
from dynet_api.hookspecs import BackendSpec, hookimpl


def n_nodes() -> int:
    return len(dy.cg().nodes)


@pytest.fixture
def x3():
    return dy.inputVector([1.0, 2.0, 3.0])


@pytest.fixture
def ops():
    """Operands made before the graph length is measured."""
    return types.SimpleNamespace(
        x3=dy.inputVector([1.0, 2.0, 3.0]), x4=dy.inputVector([1.0, 2.0, 3.0, 4.0]),
        m=dy.inputTensor(np.ones((2, 3))), v2=dy.inputVector([0.0, 0.0]),
        t3=dy.inputTensor(np.ones((2, 2, 2))), xb=dy.inputTensor(np.ones((3, 2)), batched=True))


# ===================================================================== dim mismatches

MISMATCH = {
    # name: (call, op name in the message, the dims shown)
    "add": (lambda a, b, m: a + b, "add", ("{3}", "{4}")),
    "sub": (lambda a, b, m: a - b, "add", ("{3}", "{4}")),
    "cmult": (lambda a, b, m: dy.cmult(a, b), "cmult", ("{3}", "{4}")),
    "cdiv": (lambda a, b, m: dy.cdiv(a, b), "cdiv", ("{3}", "{4}")),
    "bmax": (lambda a, b, m: dy.bmax(a, b), "bmax", ("{3}", "{4}")),
    "bmin": (lambda a, b, m: dy.bmin(a, b), "bmin", ("{3}", "{4}")),
    "matmul": (lambda a, b, m: m * b, "MatrixMultiply", ("{2,3}", "{4}")),
    "affine": (lambda a, b, m: dy.affine_transform([a, m, b]), "MatrixMultiply", ("{2,3}", "{4}")),
    "esum": (lambda a, b, m: dy.esum([a, b]), "sum", ("{3}", "{4}")),
    "average": (lambda a, b, m: dy.average([a, b]), "average", ("{3}", "{4}")),
    "logsumexp": (lambda a, b, m: dy.logsumexp([a, b]), "logsumexp", ("{3}", "{4}")),
    "concatenate": (lambda a, b, m: dy.concatenate([m, b], d=1), "concatenate", ("{2,3}", "{4}")),
    "concatenate_to_batch": (lambda a, b, m: dy.concatenate_to_batch([a, b]), "concatenate_to_batch", ("{3}", "{4}")),
    "dot_product": (lambda a, b, m: dy.dot_product(a, b), "dot_product", ("{3}", "{4}")),
    "squared_distance": (lambda a, b, m: dy.squared_distance(a, b), "squared_distance", ("{3}", "{4}")),
    "l1_distance": (lambda a, b, m: dy.l1_distance(a, b), "l1_distance", ("{3}", "{4}")),
    "huber_distance": (lambda a, b, m: dy.huber_distance(a, b), "huber_distance", ("{3}", "{4}")),
    "binary_log_loss": (lambda a, b, m: dy.binary_log_loss(a, b), "binary_log_loss", ("{3}", "{4}")),
    "colwise_add": (lambda a, b, m: dy.colwise_add(m, b), "colwise_add", ("{2,3}", "{4}")),
    "pow": (lambda a, b, m: dy.pow(a, b), "pow", ("{3}", "{4}")),
    "reshape": (lambda a, b, m: dy.reshape(a, (2,)), "reshape", ("{3}", "{2}")),
    "pickneglogsoftmax_matrix": (lambda a, b, m: dy.pickneglogsoftmax(m, 0), "pickneglogsoftmax", ("{2,3}",)),
    "hinge_matrix": (lambda a, b, m: dy.hinge(m, 0), "hinge", ("{2,3}",)),
    "transpose": (lambda a, b, m: dy.transpose(m, [0]), "transpose", ("{2,3}",)),
    "softmax_3d": (lambda a, b, m: dy.softmax(b), "softmax", ("{2,2,2}",)),
    "softmax_axis": (lambda a, b, m: dy.softmax(a, 1), "softmax", ("{3}",)),
    "sum_dim_axis": (lambda a, b, m: dy.sum_dim(a, [3]), "sum_dim", ("{3}",)),
    "mean_dim_axis": (lambda a, b, m: dy.mean_dim(a, [1]), "moment_dim", ("{3}",)),
    "logsumexp_dim_axis": (lambda a, b, m: dy.logsumexp_dim(a, 2), "logsumexp_dim", ("{3}",)),
}


@pytest.mark.parametrize("name", sorted(MISMATCH))
def test_dim_mismatch_names_op_and_dims_and_adds_no_node(name, ops):
    call, op, shown = MISMATCH[name]
    a = ops.v2 if name == "affine" else ops.x3
    b = ops.t3 if name == "softmax_3d" else ops.x4
    x3 = ops.x3
    n = n_nodes()
    with pytest.raises(ValueError) as info:
        call(a, b, ops.m)
    msg = str(info.value)
    assert op in msg
    for d in shown:
        assert d in msg
    assert n_nodes() == n  # raised before touching the graph
    # the graph is still healthy
    assert dy.sum_elems(x3 + x3).value() == 12.0


def test_batch_size_mismatch_names_op():
    a = dy.inputTensor(np.ones((3, 2)), batched=True)
    b = dy.inputTensor(np.ones((3, 4)), batched=True)
    n = n_nodes()
    with pytest.raises(ValueError, match=r"cmult.*batch") as info:
        dy.cmult(a, b)
    assert "{3X2}" in str(info.value) and "{3X4}" in str(info.value)
    assert n_nodes() == n


def test_single_index_on_batched_scores_raises():
    x = dy.inputTensor(np.ones((3, 2)), batched=True)
    with pytest.raises(ValueError, match="_batch"):
        dy.pickneglogsoftmax(x, 0)
    with pytest.raises(ValueError):
        dy.hinge(x, 0)
    with pytest.raises(ValueError):
        dy.pickneglogsoftmax_batch(x, [0, 1, 2])


@pytest.mark.parametrize("call", [
    lambda x: dy.l1_distance(x, x),
    lambda x: dy.huber_distance(x, x),
    lambda x: dy.binary_log_loss(x, x),
    lambda x: dy.log_softmax(x, restrict=[0]),
])
def test_nodes_that_reject_batched_input(call):
    # as DyNet (section 11, item 9)
    x = dy.inputTensor(np.full((3, 2), 0.5), batched=True)
    with pytest.raises(ValueError, match="batch"):
        call(x)


def test_failed_pickneglogsoftmax_then_more_ops_work():
    # DyNet's graph was corrupt after this (the next op segfaulted); ours is untouched
    m = dy.inputTensor(np.ones((2, 3)))
    with pytest.raises(ValueError):
        dy.pickneglogsoftmax(m, 0)
    v = dy.inputVector([0.0, 0.0])
    loss = dy.pickneglogsoftmax(v, 1)
    assert loss.value() == pytest.approx(np.log(2.0))
    loss.backward()


# ===================================================================== indices

INDEX_ERRORS = {
    "pick": (lambda o: dy.pick(o.x3, 5), "5"),
    "pick_negative": (lambda o: dy.pick(o.x3, -1), "-1"),
    "pick_dim1": (lambda o: dy.pick(o.m, 3, dim=1), "3"),
    "pick_batch": (lambda o: dy.pick_batch(o.x3, [0, 7]), "7"),
    "select_rows": (lambda o: dy.select_rows(o.m, [0, 7]), "7"),
    "select_cols": (lambda o: dy.select_cols(o.m, [9]), "9"),
    "pickrange": (lambda o: dy.pickrange(o.x3, 1, 9), "9"),
    "pickneglogsoftmax": (lambda o: dy.pickneglogsoftmax(o.x3, 8), "8"),
    "pickneglogsoftmax_batch": (lambda o: dy.pickneglogsoftmax_batch(o.xb, [0, 6]), "6"),
    "hinge": (lambda o: dy.hinge(o.x3, 8), "8"),
    "hinge_batch": (lambda o: dy.hinge_batch(o.xb, [4, 0]), "4"),
    "pick_batch_elem": (lambda o: dy.pick_batch_elem(o.x3, 3), "3"),
    "pick_batch_elems": (lambda o: dy.pick_batch_elems(o.x3, [0, 2]), "2"),
    "getitem": (lambda o: o.x3[7], "7"),
    "getitem_negative": (lambda o: o.x3[-4], "-4"),
}


@pytest.mark.parametrize("name", sorted(INDEX_ERRORS))
def test_out_of_range_index_raises_index_error(name, ops):
    call, shown = INDEX_ERRORS[name]
    n = n_nodes()
    with pytest.raises(IndexError) as info:
        call(ops)
    assert shown in str(info.value)
    assert n_nodes() == n


def test_lookup_out_of_range():
    pc = dy.ParameterCollection()
    lp = pc.add_lookup_parameters((4, 2))
    n = n_nodes()
    for call in (lambda: dy.lookup(lp, 4), lambda: lp[10], lambda: dy.lookup_batch(lp, [0, 5]),
                 lambda: lp.batch([-1]), lambda: lp.row_as_array(4)):
        with pytest.raises(IndexError):
            call()
    assert n_nodes() == n
    with pytest.raises(TypeError, match="lookup"):
        dy.lookup(lp, "a")


def test_hinge_negative_margin_raises():
    with pytest.raises(ValueError, match="hinge: m must be >= 0"):
        dy.hinge(dy.inputVector([1.0, 2.0]), 0, m=-1.0)
    with pytest.raises(ValueError, match="hinge_batch: m must be >= 0"):
        dy.hinge_batch(dy.inputVector([1.0, 2.0]), [0], m=-0.5)


def test_bad_probabilities_and_modes():
    x = dy.inputVector([1.0])
    for f in (dy.dropout, dy.dropout_batch, dy.block_dropout):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            f(x, 1.5)
    with pytest.raises(ValueError):
        dy.random_bernoulli(3, -0.1)


# ===================================================================== non-expressions

NOT_EXPRESSIONS = {
    "tanh": lambda x: dy.tanh(3.0),
    "cmult": lambda x: dy.cmult(x, [1.0, 2.0, 3.0]),
    "esum": lambda x: dy.esum([x, 5]),
    "concatenate": lambda x: dy.concatenate([x, "a"]),
    "dot_product": lambda x: dy.dot_product(x, np.ones(3)),
    "pickneglogsoftmax": lambda x: dy.pickneglogsoftmax(None, 1),
    "affine_transform": lambda x: dy.affine_transform([x, 1.0, x]),
    "sum_elems": lambda x: dy.sum_elems([x]),
    "mean_elems": lambda x: dy.mean_elems(np.ones(3)),
    "reshape": lambda x: dy.reshape(np.ones(3), (3,)),
    "dropout": lambda x: dy.dropout("x", 0.5),
    "noise": lambda x: dy.noise(None, 0.1),
    "transpose": lambda x: dy.transpose([[1.0]]),
    "softmax": lambda x: dy.softmax(1.0),
}


@pytest.mark.parametrize("name", sorted(NOT_EXPRESSIONS))
def test_non_expression_argument_is_type_error_naming_op(name, x3):
    n = n_nodes()
    with pytest.raises(TypeError, match="sum" if name == "esum" else name):  # esum adds the op "sum"
        NOT_EXPRESSIONS[name](x3)
    assert n_nodes() == n


def test_operators_with_unsupported_operands(x3):
    with pytest.raises(TypeError):
        x3 + "a"
    with pytest.raises(TypeError):
        x3 * object()
    with pytest.raises(TypeError, match="int"):
        x3["a"]
    with pytest.raises(ZeroDivisionError):
        x3 / 0


def test_bad_input_data():
    with pytest.raises(TypeError, match="inputTensor"):
        dy.inputTensor("abc")
    with pytest.raises(TypeError, match="inputTensor"):
        dy.inputTensor([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError):
        dy.inputVector([])
    with pytest.raises(ValueError, match="inputMatrix"):
        dy.inputMatrix([1.0, 2.0, 3.0], (2, 2))


# ===================================================================== dims given by the user


def test_dims_accept_ints_tuples_and_lists():
    # DyNet takes an int or a tuple; `zeros([3])` printed an ignored TypeError and returned a
    # 0-dim expression there.  We accept lists as tuples.
    assert dy.zeros(3).dim() == ((3,), 1)
    assert dy.zeros((2, 3)).dim() == ((2, 3), 1)
    assert dy.zeros([3]).dim() == ((3,), 1)
    assert dy.ones([2, 2], batch_size=3).dim() == ((2, 2), 3)
    assert dy.zeros(np.int64(4)).dim() == ((4,), 1)


@pytest.mark.parametrize("dim,exc", [
    (0, ValueError), ((2, -1), ValueError), ("a", TypeError), (3.5, TypeError), ((2.0, 3), TypeError),
    (True, TypeError), ((1, 1, 1, 1, 1), ValueError), (None, TypeError),
])
def test_bad_dims_raise(dim, exc):
    n = n_nodes()
    with pytest.raises(exc, match="zeros"):
        dy.zeros(dim)
    assert n_nodes() == n


def test_bad_batch_size_raises():
    with pytest.raises(ValueError, match="batch"):
        dy.ones(3, batch_size=0)


# ===================================================================== backends and plugins


class _TinyBackend(Backend):
    name = "tiny"
    forward_kernels = {"input": lambda xs, a, d: a[0]}


def _plugin(*specs, fail: Exception | None = None):
    def dynet_api_backends():
        if fail is not None:
            raise fail
        return list(specs)

    return types.SimpleNamespace(dynet_api_backends=hookimpl(dynet_api_backends))


def test_unknown_backend_lists_installed_names():
    with pytest.raises(ValueError) as info:
        plugins.registry.get("nope")
    msg = str(info.value)
    assert "nope" in msg and "reference_numpy" in msg


def test_set_backend_unknown_keeps_current():
    before = dy.backend_name()
    with pytest.raises(ValueError, match="reference_numpy"):
        dy.set_backend("nope")
    assert dy.backend_name() == before
    assert (dy.inputVector([1.0]) * 2.0).value() == 2.0


def test_plugin_raising_at_registration_is_reported_and_others_work():
    reg = plugins.Registry()
    reg._discovered = True  # only the plugins registered here
    reg.register_plugin(_plugin(fail=RuntimeError("boom")), "brokenplugin")
    reg.register_plugin(_plugin(BackendSpec("tiny", _TinyBackend)), "goodplugin")
    assert reg.names() == ["tiny"]
    assert "brokenplugin" in reg.plugin_errors and "boom" in reg.plugin_errors["brokenplugin"]
    assert isinstance(reg.get("tiny"), _TinyBackend)
    with pytest.raises(ValueError) as info:
        reg.get("nope")
    msg = str(info.value)
    assert "tiny" in msg and "brokenplugin" in msg and "RuntimeError: boom" in msg
    rows = {r["name"]: r for r in reg.report()}
    assert rows["tiny"]["status"] == "available"
    assert "boom" in rows["brokenplugin"]["status"]


def test_backend_factory_failure_is_reported_and_best_skips_it():
    def unavailable():
        raise BackendUnavailable("no GPU on this machine")

    reg = plugins.Registry()
    reg._discovered = True
    reg.register_plugin(_plugin(BackendSpec("fast", unavailable, priority=10),
                                BackendSpec("tiny", _TinyBackend, priority=0)), "multi")
    with pytest.raises(RuntimeError, match="no GPU on this machine") as info:
        reg.get("fast")
    assert "fast" in str(info.value)
    assert isinstance(reg.best(), _TinyBackend)
    rows = {r["name"]: r for r in reg.report()}
    assert rows["fast"]["status"].startswith("unavailable") and "no GPU" in rows["fast"]["status"]


def test_factory_returning_a_non_backend_is_reported():
    reg = plugins.Registry()
    reg._discovered = True
    reg.register_plugin(_plugin(BackendSpec("odd", lambda: object())), "odd")
    with pytest.raises(RuntimeError, match="odd.*not a Backend"):
        reg.get("odd")


def test_entry_point_that_fails_to_import_is_reported(monkeypatch):
    class EP:
        def __init__(self, name, obj=None, exc=None):
            self.name, self.obj, self.exc = name, obj, exc

        def load(self):
            if self.exc is not None:
                raise self.exc
            return self.obj

    eps = [EP("broken", exc=ImportError("No module named 'missing_dependency'")),
           EP("tinyplug", obj=_plugin(BackendSpec("tiny", _TinyBackend)))]

    def entry_points(group=None):
        assert group == "dynet_api.backends"
        return eps

    monkeypatch.setattr(plugins.md, "entry_points", entry_points)
    monkeypatch.delenv("DYNET_API_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("DYNET_API_BLOCK_BACKENDS", raising=False)
    reg = plugins.Registry()
    assert reg.names() == ["tiny"]
    assert "missing_dependency" in reg.plugin_errors["broken"]
    assert isinstance(reg.get("tiny"), _TinyBackend)
    with pytest.raises(ValueError, match="broken"):
        reg.get("nope")


def test_unsupported_op_names_op_and_backend(monkeypatch):
    # a backend without a kernel for an op fails at graph construction, naming both
    monkeypatch.setattr(dy.cg(), "supported", frozenset({"input"}))
    monkeypatch.setattr(dy.cg(), "_shapes", {})
    x = dy.inputVector([1.0])
    with pytest.raises(NotImplementedError, match=rf"tanh.*{dy.backend_name()}"):
        dy.tanh(x)
