"""Trainer rules are declared once: a record in the trainer class (dynet_api/trainers.py) and one
kernel per backend that has its own (issue 13, "a new trainer rule is one record and one kernel
per backend").

* the classes are made from the records: DyNet's signatures, the Args of the docstring, the
  hyper keys each backend gets;
* a toy rule written here -- its record and a reference kernel, nothing else -- trains through
  the public API on the reference backend (checked against the formula in float64, dense and
  sparse, with clipping), and runs on the cuda backend's table through its fallback;
* a backend with no kernel for a rule refuses it with an error naming the rule and the backend;
* the C++ rule table (csrc/update_rules_table.h) is generated from the records and current, and
  the built module has a kernel for every record.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import pathlib

import numpy as np
import pytest
from dynet_backends.reference_numpy.updates import KERNELS

import dynet_api as dy
from dynet_api import trainers as T
from dynet_api.plugins import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- a toy rule, written the way a contributor would


class ToyDecayTrainer(dy.Trainer):
    """A toy rule: a decaying sum of gradients, ``s = decay s + g; w -= learning_rate * s``."""

    record = T.TrainerRule("toy_decay", 1, (T.learning_rate(0.5), T.Arg("decay", 0.25, "the decay of s.", hi=1.0)))


def toy_decay(u, w, g, s, h):
    s[0] *= h["decay"]
    s[0] += h["gscale"] * g
    w -= h["lr"] * s[0]


@pytest.fixture
def toy_kernel():
    """The toy rule's reference kernel, registered for the test only."""
    KERNELS.rule("toy_decay")(toy_decay)
    yield
    del KERNELS.own["toy_decay"]


@pytest.fixture
def on_reference():
    before = dy.backend_name()
    dy.set_backend("reference_numpy")
    yield
    dy.set_backend(before)


def _steps(tr, W, L, cW, cL, rows, scales):
    """One update per scale of the loss <W, cW*scale> + sum over rows of <L[row], cL*scale>."""
    for sc in scales:
        dy.renew_cg()
        loss = dy.dot_product(W, dy.inputTensor(cW * sc))
        loss = loss + dy.sum_batches(dy.dot_product(dy.lookup_batch(L, rows), dy.inputTensor(cL * sc, batched=True)))
        loss.backward()
        tr.update()


def test_a_toy_rule_trains_through_the_public_api(toy_kernel, on_reference):
    rng = np.random.default_rng(5)
    W0, L0 = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (6, 2))
    cW, cL = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (2, 2))
    rows, scales = [1, 4], (0.5, 8.0)  # the second update's gradient norm is over 5: clipped
    pc = dy.ParameterCollection()
    W, L = pc.parameters_from_numpy(W0.astype(np.float32)), pc.lookup_parameters_from_numpy(L0.astype(np.float32))
    tr = ToyDecayTrainer(pc, decay=0.5)
    assert (tr.rule, tr.n_states, tr.learning_rate, tr.decay) == ("toy_decay", 1, 0.5, 0.5)
    _steps(tr, W, L, cW, cL, rows, scales)
    # the same in float64: dense W; the lookup table sparse (only the looked-up rows and their states)
    w, lt, sw, sl = W0.copy(), L0.copy(), np.zeros_like(W0), np.zeros_like(L0)
    for sc in scales:
        gw, gl = cW * sc, (cL * sc).T
        clip = min(1.0, 5.0 / np.sqrt((gw ** 2).sum() + (gl ** 2).sum()))
        sw = 0.5 * sw + clip * gw
        w -= 0.5 * sw
        sl[rows] = 0.5 * sl[rows] + clip * gl
        lt[rows] -= 0.5 * sl[rows]
    assert tr.clips == 1
    np.testing.assert_allclose(W.as_array(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack([L[r].npvalue() for r in range(6)]), lt, rtol=1e-5, atol=1e-6)
    untouched = [r for r in range(6) if r not in rows]
    np.testing.assert_array_equal(np.stack([L[r].npvalue() for r in untouched]), L0[untouched].astype(np.float32))


def test_the_toy_rules_class_is_made_from_its_record():
    sig = inspect.signature(ToyDecayTrainer)
    assert [(p.name, p.default) for p in sig.parameters.values()] == [
        ("m", inspect.Parameter.empty), ("learning_rate", 0.5), ("decay", 0.25)]
    assert "decay (float): the decay of s." in ToyDecayTrainer.__doc__
    assert ToyDecayTrainer.record.hyper_keys == ("lr", "decay")
    with pytest.raises(ValueError, match=r"ToyDecayTrainer: decay must be a finite number in \[0, 1\], got 2"):
        ToyDecayTrainer(dy.ParameterCollection(), decay=2)
    with pytest.raises(TypeError, match="ToyDecayTrainer: .*unexpected keyword argument 'mom'"):
        ToyDecayTrainer(dy.ParameterCollection(), mom=0.1)
    # a rule of a test or a plugin is not one of this module's rules (no C++ table entry, no conformance case)
    assert "toy_decay" not in T.RULES


@pytest.mark.parametrize("backend", registry.names())
def test_a_backend_without_the_kernel_names_the_rule_and_itself(backend):
    rec = registry.load(backend)
    if rec.backend is None:
        pytest.skip(f"{backend}: {rec.error}")
    before = dy.backend_name()
    dy.set_backend(backend)
    try:
        pc = dy.ParameterCollection()
        W = pc.add_parameters((2, 2))
        tr = ToyDecayTrainer(pc)
        dy.renew_cg()
        dy.squared_norm(dy.parameter(W)).backward()
        with pytest.raises(ValueError, match=rf"{rec.backend.name}( backend)?: unknown update rule 'toy_decay'; "
                                             r"known: .*\(this backend has no kernel for any other trainer rule\)"):
            tr.update()
    finally:
        dy.set_backend(before)


def test_the_cuda_table_falls_back_to_the_reference_kernels(toy_kernel):
    """A rule with only a reference kernel runs on the cuda backend's table (the reference's code over CuPy)."""
    from dynet_backends.cuda.updates import DEVICE_KERNELS

    assert DEVICE_KERNELS.get("toy_decay") is toy_decay
    assert DEVICE_KERNELS.get("adam") is not KERNELS.get("adam")  # cuda's fused kernel
    assert DEVICE_KERNELS.get("eg") is KERNELS.get("eg")


# ---------------------------------------------------------------- DyNet's trainers from their records


def test_every_rule_has_a_record_and_a_kernel_on_each_python_backend():
    from dynet_backends.cuda.updates import DEVICE_KERNELS

    assert list(T.RULES) == ["sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "amsgrad", "eg"]
    assert set(T.RULES) <= set(KERNELS.names()) and set(T.RULES) <= set(DEVICE_KERNELS.names())


@pytest.mark.parametrize("name", [n for n in T.__all__ if n != "Trainer" and "record" in vars(getattr(T, n))])
def test_the_hyper_sent_is_the_records(name):
    cls = getattr(T, name)
    tr = cls(dy.ParameterCollection())
    h = tr._hyper()
    assert tuple(h) == cls.record.hyper_keys
    for a in cls.record.args:
        if a.sent and not a.is_lr:
            assert h[a.name] == a.default


SHADOWING = [(T.Arg("updates", 1.0, "."), "record argument 'updates' is not a new attribute"),
             (T.Arg("update", 1.0, "."), "record argument 'update' is not a new attribute"),
             (T.learning_rate(0.1, "alpha"), "a record has n_states >= 0 and at most one learning rate")]


@pytest.mark.parametrize("arg, why", SHADOWING)
def test_a_record_must_not_shadow_the_trainer(arg, why):
    with pytest.raises(ValueError, match=f"Shadowing: {why}"):
        type("Shadowing", (dy.Trainer,), {"__doc__": "x", "record": T.TrainerRule("x", 0, (T.learning_rate(0.1), arg))})


def test_a_rule_declared_twice_is_refused():
    with pytest.raises(ValueError, match="trainer rule 'adam' is declared twice"):
        type("AdamAgain", (dy.Trainer,), {"__module__": T.__name__, "__doc__": "Adam again.",
                                           "record": T.AdamTrainer.record})
    gc.collect()  # the half-made class leaves Trainer.__subclasses__()


# ---------------------------------------------------------------- the C++ rule table


def _gen():
    spec = importlib.util.spec_from_file_location("gen_update_rules", ROOT / "scripts" / "gen_update_rules.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_cpp_rule_table_is_generated_from_the_records():
    gen = _gen()
    assert (ROOT / "csrc" / "update_rules_table.h").read_text() == gen.render(T.RULES.values()), (
        "csrc/update_rules_table.h is stale: run python scripts/gen_update_rules.py")


def test_the_generated_table_follows_a_new_record():
    toy = ToyDecayTrainer.record
    text = _gen().render([*T.RULES.values(), toy])
    assert "eg, toy_decay };" in text and '"toy_decay"' in text
    assert "beta_2, decay, gscale, wscale, gbound;" in text  # the new key becomes a field of Hyper


def _cpu_eigen():
    rec = registry.load("cpu_eigen")
    if rec.backend is None:
        pytest.skip(f"cpu_eigen: {rec.error}")
    from dynet_backends.cpu_eigen import _cpu_eigen

    return rec.backend, _cpu_eigen


def test_cpu_eigen_has_a_kernel_for_every_record():
    _, m = _cpu_eigen()
    assert m.update_rules() == list(T.RULES)
    states, keys = m.update_rule_table()
    assert states == {r.name: r.n_states for r in T.RULES.values()}
    assert set(keys) == {k for r in T.RULES.values() for k in r.hyper_keys} | {"gscale", "wscale", "gbound"}


def test_cpu_eigen_refuses_a_wrong_number_of_states():
    be, _ = _cpu_eigen()
    w, g = be.from_numpy(np.ones((3, 1), np.float32)), be.from_numpy(np.ones((3, 1), np.float32))
    s = be.zeros((3, 1))
    with pytest.raises(ValueError, match="update rule 'adam' takes 2 state tensors, got 1"):
        be.update_all("adam", [(w, g, [s], None, True)], {"lr": 0.1})
    with pytest.raises(ValueError, match="update rule 'sgd' takes 0 state tensors, got 1"):
        be.update("sgd", w, g, [s], None, {"lr": 0.1})
    np.testing.assert_array_equal(be.to_numpy(w), np.ones((3, 1)))
    np.testing.assert_array_equal(be.to_numpy(g), np.ones((3, 1)))


def test_a_cuda_fused_kernel_is_its_device_function_alone():
    """Every dn_upd_<rule> of elementwise.cuh is the cuda kernel of <rule>: the ElementwiseKernel's
    parameters come from its signature, its call from hyper by the parameters' names."""
    from dynet_backends.cuda.ewspec import ELEMENTWISE, update_specs
    from dynet_backends.cuda.updates import DEVICE_KERNELS

    fused = {n[len("upd_"):] for n in ELEMENTWISE if n.startswith("upd_")}
    assert fused == set(T.RULES) - {"eg"}
    assert all(DEVICE_KERNELS.own[r] is not KERNELS.get(r) for r in fused)
    spec = update_specs("DN_F void dn_upd_toy_decay(float g, float decay, float lr_gs, float& w, float &s) {}")
    assert spec == {"upd_toy_decay": ("float32 g, float32 decay, float32 lr_gs", "float32 w, float32 s",
                                      "dn_upd_toy_decay(g, decay, lr_gs, w, s)")}
    with pytest.raises(ValueError, match=r"dn_upd_bad: parameter 'double x' is not 'float x' or 'float& x'"):
        update_specs("DN_F void dn_upd_bad(float g, double x, float& w) {}")
