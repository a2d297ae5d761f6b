"""DyNet behaviours a drop-in must reproduce (DYNET_API_INVENTORY.md, section 11),
and a typical DyNet program that must run with only its import changed."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api import functions as F

# ===================================================================== operators (items 1, 2)


def test_star_is_a_matrix_product():
    W = dy.inputTensor(np.array([[1.0, 2.0], [3.0, 4.0]]))
    x = dy.inputVector([1.0, -1.0])
    assert (W * x).value() == [-1.0, -1.0]
    np.testing.assert_allclose((W * W).npvalue(), [[7, 10], [15, 22]])
    assert dy.cmult(x, x).value() == [1.0, 1.0]  # elementwise is cmult


def test_vector_times_vector_raises_like_dynet():
    x = dy.inputVector([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"Mismatched input dimensions in MatrixMultiply: \[\{3\} \{3\}\]"):
        x * x


def test_numbers_with_expressions():
    x = dy.inputVector([1.0, 2.0])
    assert (2 + x).value() == [3.0, 4.0]
    assert (2 - x).value() == [1.0, 0.0]
    assert (x - 2).value() == [-1.0, 0.0]
    assert (3 * x).value() == [3.0, 6.0]
    assert (x * 3).value() == [3.0, 6.0]
    assert (x / 2).value() == [0.5, 1.0]
    assert (-x).value() == [-1.0, -2.0]
    assert (x ** 2).value() == [1.0, 4.0]


def test_number_divided_by_expression_raises():
    x = dy.inputVector([1.0, 2.0])
    with pytest.raises(NotImplementedError):
        1.0 / x


def test_expression_divided_by_expression_is_cdiv():
    # DyNet raises NotImplementedError here (Python 3); we document it as a harmless extension
    x, y = dy.inputVector([1.0, 3.0]), dy.inputVector([2.0, 4.0])
    assert (x / y).value() == [0.5, 0.75]


# ===================================================================== parameters as expressions (item 3)


def test_parameters_in_arithmetic_get_gradients():
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=dy.NumpyInitializer(np.arange(6.0).reshape(2, 3)))
    b = pc.add_parameters(2, init=dy.ConstInitializer(1.0))
    x = dy.inputVector([1.0, 0.0, -1.0])
    y = W * x + b  # no dy.parameter() needed
    np.testing.assert_allclose(y.npvalue(), np.arange(6.0).reshape(2, 3) @ [1, 0, -1] + 1)
    dy.sum_elems(dy.tanh(y)).backward()
    t = np.tanh(np.arange(6.0).reshape(2, 3) @ [1, 0, -1] + 1)
    np.testing.assert_allclose(b.grad_as_array(), 1 - t ** 2, rtol=1e-5)
    np.testing.assert_allclose(W.grad_as_array(), np.outer(1 - t ** 2, [1, 0, -1]), rtol=1e-5)


def test_parameter_call_returns_the_parameter_and_warns_once(capsys, monkeypatch):
    monkeypatch.setattr(F.inputs, "_notice_shown", False)
    pc = dy.ParameterCollection()
    p = pc.add_parameters(3)
    assert dy.parameter(p) is p
    first = capsys.readouterr().err
    assert "DEPRECATED" in first
    assert dy.parameter(p) is p
    assert capsys.readouterr().err == ""
    q = pc.add_parameters(2)
    assert dy.parameter(p, q) == [p, q]


def test_expr_defaults_to_constant():
    pc = dy.ParameterCollection()
    p = pc.add_parameters(3, init=dy.ConstInitializer(2.0))
    x = dy.inputVector([1.0, 2.0, 3.0])
    dy.dot_product(p.expr(), x).backward()  # DyNet's default: update=False
    np.testing.assert_array_equal(p.grad_as_array(), np.zeros(3))
    dy.renew_cg()
    dy.dot_product(dy.const_parameter(p), dy.inputVector([1.0, 2.0, 3.0])).backward()
    np.testing.assert_array_equal(p.grad_as_array(), np.zeros(3))
    dy.renew_cg()
    dy.dot_product(p.expr(update=True), dy.inputVector([1.0, 2.0, 3.0])).backward()
    np.testing.assert_allclose(p.grad_as_array(), [1, 2, 3])
    assert p.expr().value() == [2.0, 2.0, 2.0]


# ===================================================================== names (item 15)


def test_generated_and_user_names():
    pc = dy.ParameterCollection()
    assert pc.add_parameters(2).name() == "/_0"
    assert pc.add_parameters(2, name="a").name() == "/a"
    assert pc.add_parameters(2, name="a").name() == "/a_1"
    assert pc.add_lookup_parameters((3, 2)).name() == "/_1"  # one counter for both kinds
    sub = pc.add_subcollection("x")
    assert sub.name() == "/x/"
    assert sub.add_parameters(2, name="W").name() == "/x/W"
    assert sub.add_parameters(2).name() == "/x/_0"
    assert pc.add_subcollection("x").name() == "/x_1/"
    assert pc.add_subcollection().name() == "/_0/"


@pytest.mark.parametrize("bad", ["a_b", "a/b", "_", "/"])
def test_reserved_characters_in_names_rejected(bad):
    pc = dy.ParameterCollection()
    # DyNet raises RuntimeError; ours is a ValueError naming the function and the name
    with pytest.raises((ValueError, RuntimeError), match="add_parameters"):
        pc.add_parameters(2, name=bad)
    with pytest.raises((ValueError, RuntimeError), match="add_lookup_parameters"):
        pc.add_lookup_parameters((2, 2), name=bad)
    with pytest.raises((ValueError, RuntimeError), match="add_subcollection"):
        pc.add_subcollection(bad)
    assert pc.parameters_list() == [] and pc.add_parameters(2).name() == "/_0"


# ===================================================================== devices, lookups (items 13, 19)


def test_available_devices_are_bytes():
    devs = dy.available_devices()
    assert devs and all(isinstance(d, bytes) for d in devs)


def test_add_lookup_parameters_with_int_makes_n_by_1():
    pc = dy.ParameterCollection()
    lp = pc.add_lookup_parameters(5)
    assert lp.shape() == (5, 1)
    assert len(lp) == 5
    assert lp[3].dim() == ((1,), 1)


def test_lookup_parameters_shape_puts_lookup_dim_first():
    pc = dy.ParameterCollection()
    table = np.arange(30.0).reshape(10, 3)
    lp = pc.lookup_parameters_from_numpy(table)
    assert lp.shape() == (10, 3)
    assert lp.as_array().shape == (10, 3)
    assert lp[2].dim() == ((3,), 1)
    np.testing.assert_allclose(lp[2].npvalue(), table[2])
    e = lp.batch([1, 4, 1])
    assert e.dim() == ((3,), 3)
    np.testing.assert_allclose(e.npvalue(), table[[1, 4, 1]].T)
    np.testing.assert_allclose(dy.lookup_batch(lp, [0, 9]).npvalue(), table[[0, 9]].T)
    whole = lp + 0.0  # the whole table as an expression: {row dims..., n}
    assert whole.dim() == ((3, 10), 1)
    np.testing.assert_allclose(whole.npvalue(), table.T)


def test_pick_on_batched_picks_same_index():
    x = dy.inputTensor(np.array([[1.0, 10.0], [2.0, 20.0]]), batched=True)
    assert dy.pick(x, 1).value() == [2.0, 20.0]
    assert x[0].value() == [1.0, 10.0]


@pytest.mark.parametrize("backend", ["reference_numpy", "cpu_eigen"])
def test_column_vectors_count_as_vectors(backend):
    """DyNet's class losses take {n} or {n,1} (LooksLikeVector); esum and logsumexp compare
    dims up to trailing 1s (truncate()); a real mismatch still raises."""
    before = dy.backend_name()
    try:
        dy.set_backend(backend)
    except Exception as e:  # noqa: BLE001 - an unavailable backend is skipped with its reason
        pytest.skip(str(e))
    try:
        col = dy.inputTensor([[1.0], [2.0], [3.0]])  # {3,1}
        vec = dy.inputVector([1.0, 2.0, 3.0])  # {3}
        lse = np.log(np.exp(1.0) + np.exp(2.0) + np.exp(3.0))
        assert dy.pickneglogsoftmax(col, 1).value() == pytest.approx(lse - 2.0, rel=1e-6)
        assert dy.hinge(col, 0, 1.0).value() == pytest.approx((2 - 1 + 1) + (3 - 1 + 1))
        s = dy.esum([col, vec])
        assert s.dim() == ((3, 1), 1)  # the first operand's dims
        np.testing.assert_allclose(s.npvalue().ravel(), [2.0, 4.0, 6.0])
        z = dy.logsumexp([col, vec])
        assert z.dim() == ((3,), 1)  # truncated
        np.testing.assert_allclose(z.npvalue(), np.log(2.0) + np.array([1.0, 2.0, 3.0]), rtol=1e-6)
        loss = dy.pickneglogsoftmax(col, 1) + dy.sum_elems(s)
        loss.backward(full=True)
        p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
        np.testing.assert_allclose(col.gradient().ravel(), p - [0, 1, 0] + 1.0, rtol=1e-5)
        np.testing.assert_allclose(vec.gradient().ravel(), [1.0, 1.0, 1.0])
        with pytest.raises(ValueError, match="same dims"):
            dy.esum([vec, dy.inputVector([1.0, 2.0])])
        with pytest.raises(ValueError, match="same dims"):
            dy.esum([dy.inputTensor(np.ones((3, 2))), vec])
        with pytest.raises(ValueError, match="needs a vector of scores"):
            dy.pickneglogsoftmax(dy.inputTensor(np.ones((3, 2))), 0)
    finally:
        dy.set_backend(before)


def test_dynet_flags_are_read_but_left_in_argv():
    argv = ["prog", "--dynet-seed", "5", "--dynet-mem", "512", "--dynet-autobatch=1", "file.txt"]
    copy = list(argv)
    found = config.parse_argv(argv[1:])
    assert found == {"random_seed": 5, "mem": "512", "autobatch": 1}
    assert argv == copy


# ===================================================================== a typical DyNet program


VOCAB, EMB, HID, NCLASS = 12, 8, 16, 3


def _data(rng, n):
    """Three-word sentences; the class is the group (0-3, 4-7, 8-11) most of their words fall in."""
    xs, ys = [], []
    for _ in range(n):
        y = int(rng.integers(NCLASS))
        words = [int(rng.integers(4 * y, 4 * y + 4)) for _ in range(2)] + [int(rng.integers(VOCAB))]
        rng.shuffle(words)
        xs.append(words)
        ys.append(y)
    return xs, ys


class Classifier:
    """Written as a DyNet user would: lookup parameters, an MLP, pickneglogsoftmax."""

    def __init__(self, pc):
        self.E = pc.add_lookup_parameters((VOCAB, EMB))
        self.W = pc.add_parameters((HID, EMB))
        self.b = pc.add_parameters(HID)
        self.V = pc.add_parameters((NCLASS, HID))
        self.a = pc.add_parameters(NCLASS)

    def scores(self, words):
        h = dy.esum([self.E[w] for w in words])
        return self.V * dy.tanh(self.W * h + self.b) + self.a

    def scores_batch(self, sentences):
        h = dy.esum([dy.lookup_batch(self.E, [s[k] for s in sentences]) for k in range(3)])
        return self.V * dy.tanh(self.W * h + self.b) + self.a


def test_typical_program_trains(rng):
    xs, ys = _data(rng, 60)
    pc = dy.ParameterCollection()
    model = Classifier(pc)
    trainer = dy.AdamTrainer(pc, alpha=0.01)
    epoch_losses = []
    for _ in range(8):
        total = 0.0
        for words, y in zip(xs, ys, strict=True):
            dy.renew_cg()
            loss = dy.pickneglogsoftmax(model.scores(words), y)
            total += loss.value()
            loss.backward()
            trainer.update()
        epoch_losses.append(total / len(xs))
    assert epoch_losses[-1] < 0.5 * epoch_losses[0]
    dy.renew_cg()
    correct = sum(int(np.argmax(model.scores(w).npvalue()) == y) for w, y in zip(xs, ys, strict=True))
    assert correct >= 0.9 * len(xs)


def test_typical_batched_program_trains(rng):
    xs, ys = _data(rng, 60)
    pc = dy.ParameterCollection()
    model = Classifier(pc)
    trainer = dy.AdamTrainer(pc, alpha=0.02)
    losses = []
    for _ in range(40):
        for start in range(0, len(xs), 20):
            dy.renew_cg()
            bx, by = xs[start:start + 20], ys[start:start + 20]
            s = model.scores_batch(bx)
            assert s.dim() == ((NCLASS,), len(bx))
            loss = dy.sum_batches(dy.pickneglogsoftmax_batch(s, by)) / len(bx)
            losses.append(loss.scalar_value())
            loss.backward()
            trainer.update()
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    # the batched graph computes the same per-sentence losses as the unbatched one
    dy.renew_cg()
    batched = dy.pickneglogsoftmax_batch(model.scores_batch(xs[:5]), ys[:5]).npvalue().ravel()
    single = []
    for w, y in zip(xs[:5], ys[:5], strict=True):
        dy.renew_cg()
        single.append(dy.pickneglogsoftmax(model.scores(w), y).value())
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
