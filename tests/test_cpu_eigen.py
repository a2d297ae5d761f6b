"""The cpu_eigen backend against the NumPy reference: every C++ op (values and gradients,
through the whole-graph executor and through the per-op kernel tables), trainer rules,
the memory limit, parameter bookkeeping and a small MLP that trains."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api.plugins import registry

try:
    CE = registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)

from dynet_backends.cpu_eigen import _cpu_eigen as M  # noqa: E402

from dynet_api.conformance.opcheck import grad_inputs, run_graph, run_kernels  # noqa: E402
from dynet_api.conformance.samples import compute_ops, samples  # noqa: E402
from dynet_api.ops import OP_LIST  # noqa: E402

REF = registry.get("reference_numpy")
ROOT = pathlib.Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(autouse=True)
def back_to_default():
    yield
    dy.set_backend("cpu_eigen")


# ------------------------------------------------------------------ cases, from the op records
# Every op with a C++ kernel, on its records' conformance samples (operand dims, attributes,
# input domains: dynet_api.conformance.samples), the first two per attribute option's first
# choice and one of each other: a new op is tested here the moment its record and kernel exist.

CASES = [s for op in compute_ops() if op.name in CE.forward_kernels for s in samples(op, first=2, others=1)]


@pytest.mark.parametrize("path", ["graph", "kernels"])
@pytest.mark.parametrize("sample", CASES, ids=lambda s: s.id)
def test_op_matches_reference(sample, path):
    """Value and every input's gradient through the C++ executor (graph) and through the single-op
    kernels, against the reference's kernels."""
    op = sample.op
    xs = sample.inputs(np.float32)
    up = sample.upstream(op.shape(op, list(sample.dims), sample.attrs), np.float32)
    grads = grad_inputs(sample)
    want = run_kernels(REF, sample, xs, up, grads)
    got = (run_graph if path == "graph" else run_kernels)(CE, sample, xs, up, grads)
    np.testing.assert_allclose(got["y"], want["y"], rtol=RTOL, atol=ATOL, err_msg=f"{sample.repro()}: value")
    if np.isfinite(want["y"]).all():
        for i in grads:
            np.testing.assert_allclose(got[i], want[i], rtol=RTOL, atol=ATOL,
                                       err_msg=f"{sample.repro()}: gradient of input {i}")


def _run(backend: str, build, arrays, kernels_only: bool):
    """Value of build(inputs) and the gradients of sum(w * y) with respect to each input."""
    dy.set_backend(backend)
    be = registry.get(backend)
    if kernels_only:  # the node-by-node executor over the kernel tables
        dy.cg().executor = dy.graph.PyExecutor(dy.cg(), be)
    xs = [dy.inputTensor(a, batched=True) for a in arrays]
    y = build(*xs)
    d, bd = y.dim()
    yv = y.npvalue().reshape(d + (bd,))
    w = np.random.default_rng(7).normal(size=d + (bd,))
    w[~np.isfinite(yv)] = 0.0
    loss = dy.sum_batches(dy.sum_elems(dy.cmult(y, dy.inputTensor(w, batched=True))))
    loss.backward(full=True)
    grads = [x.gradient() for x in xs]
    return yv, grads


def test_every_cpp_kernel_is_exercised():
    leaves = {op.name for op in OP_LIST if op.leaf}  # test_leaves_* and the parameter tests below
    assert set(CE.forward_kernels) - leaves <= {s.op.name for s in CASES}


def test_every_op_of_the_table_is_registered_once():
    names = M.kernel_names()  # DY_REGISTER lines next to the kernels, gathered and sorted by name
    assert names == sorted(set(names))
    assert set(names) == set(dy.OPS)


def test_unsupported_ops_are_declared():
    missing = set(dy.OPS) - set(CE.forward_kernels)
    assert set(CE.unsupported) == missing


def _generator():
    path = ROOT / "scripts" / "gen_op_attrs.py"
    spec = importlib.util.spec_from_file_location("gen_op_attrs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_attribute_names_header_is_current():
    """csrc/op_attrs.h, the names the kernels read attributes by, is what the op records make."""
    header = ROOT / "csrc" / "op_attrs.h"
    assert header.read_text() == _generator().render(OP_LIST), \
        "csrc/op_attrs.h is stale: run python scripts/gen_op_attrs.py"


def test_attribute_names_are_cxx_names_in_the_header():
    gen = _generator()
    assert gen.cxx_name("restrict") == "restrict" and gen.cxx_name("default") == "default_"
    with pytest.raises(ValueError, match="not usable"):
        gen.cxx_name("a-b")
    text = gen.render(OP_LIST)
    assert 'namespace conv2d { constexpr AttrKey stride{0, "conv2d.stride"}, is_valid{1, "conv2d.is_valid"}; }' in text
    assert '{"lookup", "storage,indices,update,dim"},' in text


def test_module_was_built_with_the_records_attribute_names():
    built = {name: tuple(names.split(",")) for name, names in M.op_attr_names().items()}
    assert built == {op.name: op.attrs for op in OP_LIST if op.attrs}


def test_a_kernel_missing_an_attribute_names_it():
    x = CE.from_numpy(np.ones((3, 1), np.float32))
    with pytest.raises(RuntimeError, match=r"attribute elu\.alpha \(place 0 of the attribute tuple\) is missing"):
        CE.forward_kernels["elu"]([x], (), dy.Dim((3,)))
    y = CE.forward_kernels["round"]([x], (False,), dy.Dim((3,)))
    with pytest.raises(RuntimeError, match=r"attribute round\.straight_through .* not an integer"):
        CE.backward_kernels["round"]([x], y, y, ("no",), dy.Dim((3,)), 0)


def test_a_module_built_from_another_op_table_is_refused(monkeypatch):
    from dynet_backends.cpu_eigen.backend import CpuEigenBackend

    from dynet_api.backend import BackendUnavailable

    monkeypatch.setattr(dy.OPS["conv2d"], "attrs", ("is_valid", "stride"))
    with pytest.raises(BackendUnavailable, match=r"attributes of conv2d differ.*gen_op_attrs"):
        CpuEigenBackend()


def test_leaves_constant_and_random():
    dy.renew_cg()
    assert np.array_equal(dy.constant((2, 3), 1.5).npvalue(), np.full((2, 3), 1.5, np.float32))
    dy.reset_random_seed(5)
    n = dy.random_normal((4000,), 1.0, 2.0).npvalue()
    assert abs(n.mean() - 1.0) < 0.15 and abs(n.std() - 2.0) < 0.15
    u = dy.random_uniform((4000,), -1.0, 3.0).npvalue()
    assert u.min() >= -1.0 and u.max() <= 3.0 and abs(u.mean() - 1.0) < 0.1
    bern = dy.random_bernoulli((4000,), 0.25, 2.0).npvalue()
    assert set(np.unique(bern)) <= {0.0, 2.0} and abs(bern.mean() - 0.5) < 0.06
    g = dy.random_gumbel((4000,), 0.0, 1.0).npvalue()
    assert abs(g.mean() - 0.5772) < 0.1
    dy.reset_random_seed(5)
    assert np.array_equal(dy.random_normal((4000,), 1.0, 2.0).npvalue(), n)  # seeded


# ------------------------------------------------------------------ parameters, lookups, bookkeeping


def test_parameter_and_lookup_gradients_and_bookkeeping():
    def grads(backend):
        dy.set_backend(backend)
        dy.reset_random_seed(11)
        m = dy.ParameterCollection()
        W = m.add_parameters((3, 4))
        E = m.add_lookup_parameters((6, 4))
        dy.renew_cg()
        h = dy.tanh(W * (E[2] + E[5]))
        z = dy.tanh(W * dy.lookup_batch(E, [5, 1, 1]))
        loss = dy.sum_elems(h) + dy.sum_batches(dy.sum_elems(z)) + dy.sum_elems(W.expr() * dy.const_lookup(E, 0))
        loss.backward()
        return W.grad_as_array(), E.grad_as_array(), set(E._st.touched), W._st.has_grad

    gw, ge, touched, has = grads("cpu_eigen")
    rw, re_, rtouched, rhas = grads("reference_numpy")
    np.testing.assert_allclose(gw, rw, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ge, re_, rtol=RTOL, atol=ATOL)
    assert touched == rtouched == {1, 2, 5}  # row 0 came through const_lookup
    assert has and rhas


def test_set_input_and_recompute():
    x = dy.inputVector([1.0, 2.0])
    x2 = dy.vecInput(2)
    x2.set([1.0, 2.0])
    y = dy.squared_norm(x2)
    assert y.value() == pytest.approx(5.0)
    x2.set([3.0, 0.0])
    assert y.value() == pytest.approx(9.0)
    assert x.npvalue().tolist() == [1.0, 2.0]


def test_checkpoint_revert_and_intermediate_gradient():
    x = dy.inputVector([0.5, -1.0])
    y = dy.tanh(x)
    dy.cg_checkpoint()
    z = dy.exp(y)
    z.value()
    dy.cg_revert()
    w = dy.sum_elems(dy.square(y))
    w.backward(full=True)
    t = np.tanh([0.5, -1.0])
    np.testing.assert_allclose(w.value(), (t * t).sum(), rtol=1e-6)
    np.testing.assert_allclose(y.gradient(), 2 * t, rtol=1e-5)


def test_backward_needs_a_scalar_and_values_are_copies():
    x = dy.inputVector([1.0, 2.0])
    v = x.npvalue()
    v[0] = 9.0
    assert x.npvalue()[0] == 1.0
    with pytest.raises(ValueError, match="scalar"):
        x.backward()


# ------------------------------------------------------------------ trainer rules


RULES = {
    "sgd": (0, {"lr": 0.1}), "momentum": (1, {"lr": 0.1, "mom": 0.9}), "adagrad": (1, {"lr": 0.1, "eps": 1e-8}),
    "adadelta": (2, {"lr": 1.0, "eps": 1e-6, "rho": 0.95}), "rmsprop": (1, {"lr": 0.01, "eps": 1e-8, "rho": 0.9}),
    "adam": (2, {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8}),
    "amsgrad": (3, {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8}), "eg": (1, {"lr": 0.1, "mom": 0.5}),
}


@pytest.mark.parametrize("rows", [None, [0, 3]], ids=["dense", "sparse"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_update_rule_matches_reference(rule, rows):
    n_states, hyper = RULES[rule]
    hyper = dict(hyper, gscale=0.7)
    rng = np.random.default_rng(3)
    shape = (3, 2, 5)
    w0 = rng.uniform(0.1, 1.0, shape).astype(np.float32)
    if rule == "eg":
        w0 /= w0.sum()
    tensors = {}
    for be in (CE, REF):
        w, s = be.from_numpy(w0), [be.zeros(shape) for _ in range(n_states)]
        for step in range(3):
            g = be.from_numpy(np.random.default_rng(step).normal(size=shape).astype(np.float32))
            be.update(rule, w, g, s, rows, hyper)
        tensors[be.name] = (be.to_numpy(w), [be.to_numpy(t) for t in s])
    (gw, gs), (rw, rs) = tensors["cpu_eigen"], tensors["reference_numpy"]
    np.testing.assert_allclose(gw, rw, rtol=2e-4, atol=2e-5)
    for a, b in zip(gs, rs, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    if rows is not None and rule != "eg":
        untouched = [1, 2, 4]
        assert np.array_equal(gw[..., untouched], w0[..., untouched])


def test_storage_methods():
    a = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    t = CE.from_numpy(a)
    assert np.array_equal(CE.to_numpy(t), a)
    CE.scale(t, 2.0, [1])
    assert np.array_equal(CE.to_numpy(t)[..., 1], 2 * a[..., 1])
    assert CE.sq_norm(t, [0]) == pytest.approx(float((a[..., 0].astype(np.float64) ** 2).sum()))
    g = CE.gather_batch(t, [1, 1, 0])
    assert CE.to_numpy(g).shape == (2, 3, 3)
    CE.scatter_add_batch(t, [0, 0], CE.from_numpy(np.ones((2, 3, 2), np.float32)))
    assert np.array_equal(CE.to_numpy(t)[..., 0], a[..., 0] + 2)
    CE.clear_rows(t, [1])
    assert not CE.to_numpy(t)[..., 1].any() and CE.to_numpy(t)[..., 0].all()
    CE.clip(t, 0.0, 5.0)
    assert CE.to_numpy(t).max() == 5.0
    CE.fill(t, 0.25)
    assert np.all(CE.to_numpy(t) == 0.25)
    with pytest.raises(IndexError, match="row 7"):
        CE.gather_batch(t, [7])
    with pytest.raises(ValueError, match="values"):
        CE.assign(t, np.zeros(5))



SQ_NORM_LENGTHS = [1, 4, 7, 8, 15, 16, 17, 24, 31, 32, 40, 63, 64, 100, 127, 128, 129, 2047, 2048, 2131, 5000, 70001]


@pytest.mark.parametrize("n", SQ_NORM_LENGTHS)
def test_sq_norm_every_length(n):
    """The squared norm's lanes, blocks and tails (they differ per instruction set) against float64."""
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    a[:: 7] *= 1e3  # magnitudes that float lanes would lose if a lane summed too many terms
    expect = float((a.astype(np.float64) ** 2).sum())
    assert CE.sq_norm(CE.from_numpy(a), None) == pytest.approx(expect, rel=1e-6)

# ------------------------------------------------------------------ memory, threads, availability


def test_memory_limit_raises_memory_error_and_recovers():
    old = config.settings["mem"]
    try:
        config.settings["mem"] = "2"  # MB
        CE.configure()
        dy.renew_cg()
        big = dy.inputTensor(np.ones((512, 512), np.float32))  # 1 MB of values per node
        y = big
        for _ in range(4):
            y = y + big
        with pytest.raises(MemoryError, match="memory limit"):
            y.npvalue()
    finally:
        config.settings["mem"] = old
        CE.configure()
    dy.renew_cg()
    assert dy.squared_norm(dy.inputVector([3.0, 4.0])).value() == pytest.approx(25.0)


def test_bad_mem_setting_is_rejected():
    from dynet_backends.cpu_eigen.backend import parse_mem_mb

    assert parse_mem_mb("256,256,512") == 1024 and parse_mem_mb(None) == 0
    with pytest.raises(ValueError, match="mem"):
        parse_mem_mb("lots")


def test_threads_setting():
    old = config.settings["threads"]
    try:
        config.settings["threads"] = 2
        CE.configure()
        assert M.threads() == 2
        dy.renew_cg()
        x = dy.inputTensor(np.ones((64, 64), np.float32))
        assert np.allclose((x * x).npvalue(), 64.0)
    finally:
        config.settings["threads"] = old
        CE.configure()
    assert M.threads() == 1


def test_failed_import_makes_backend_unavailable(monkeypatch):
    import sys

    from dynet_backends import cpu_eigen

    from dynet_api.backend import BackendUnavailable

    monkeypatch.setitem(sys.modules, "dynet_backends.cpu_eigen._cpu_eigen", None)
    monkeypatch.delattr(cpu_eigen, "_cpu_eigen", raising=False)
    with pytest.raises(BackendUnavailable, match="does not import"):
        cpu_eigen.make_backend()


def test_outranks_the_reference_backend():
    rec = registry.records
    assert rec["cpu_eigen"].spec.priority > rec["reference_numpy"].spec.priority
    better = [r for r in rec.values() if r.spec.priority > rec["cpu_eigen"].spec.priority and r.backend is not None]
    if not better:
        assert registry.best() is CE


# ------------------------------------------------------------------ training


def _train_mlp(backend: str) -> list[float]:
    dy.set_backend(backend)
    dy.reset_random_seed(2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    Y = (X[:, 0] * X[:, 1] > 0).astype(int)
    m = dy.ParameterCollection()
    W1, b1 = m.add_parameters((16, 4)), m.add_parameters(16)
    W2, b2 = m.add_parameters((2, 16)), m.add_parameters(2)
    tr = dy.AdamTrainer(m, 0.02)
    losses = []
    for _ in range(40):
        dy.renew_cg()
        x = dy.inputTensor(X.T, batched=True)
        h = dy.rectify(W1 * x + b1)
        loss = dy.sum_batches(dy.pickneglogsoftmax_batch(W2 * h + b2, Y.tolist())) / 64.0
        losses.append(loss.value())
        loss.backward()
        tr.update()
    return losses


def test_small_mlp_trains_like_the_reference():
    got = _train_mlp("cpu_eigen")
    want = _train_mlp("reference_numpy")
    assert got[-1] < 0.6 * got[0]
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)


# ------------------------------------------------------------------ bad input raises, never crashes


def test_bad_direct_kernel_calls_raise():
    x = CE.from_numpy(np.zeros((5, 4), np.float32))
    with pytest.raises((TypeError, ValueError, IndexError)):  # indices given flat: the shape rule rejects them
        CE.forward_kernels["pickneglogsoftmax"]([x], (1, 1, 1, 1), dy.Dim((1,), 4))
    with pytest.raises(ValueError, match="output shape"):
        CE.forward_kernels["tanh"]([x], None, dy.Dim((6,), 4))
    pick = M.kernel_names().index("pick")
    with pytest.raises(IndexError, match="index 9 out of range"):  # the op table's rule, before C++
        M.fwd_op(pick, [x], ((9,), 0), (1, 4))


def test_raw_single_op_calls_run_the_shape_rule_first():
    """The compiled module's own fwd_op/bwd_op check operand dims against the op table (they
    used to trust them: inconsistent dims read out of bounds)."""
    aff = M.kernel_names().index("affine_transform")
    t = lambda *s: M.from_numpy(np.ones(s, np.float32))  # noqa: E731
    b, W, x = t(4, 1), t(4, 3, 1), t(3, 1)
    y = M.fwd_op(aff, [b, W, x], (), (4, 1))
    np.testing.assert_array_equal(M.to_numpy(y).ravel(), [4.0] * 4)
    with pytest.raises(ValueError, match=r"affine_transform: output shape \(4, 1\) .* \(4, 5\)"):
        M.fwd_op(aff, [b, W, t(3, 5)], (), (4, 1))  # x batched over 5, the output claimed unbatched
    with pytest.raises(ValueError, match="Mismatched input dimensions"):
        M.fwd_op(aff, [b, W, t(2, 1)], (), (4, 1))
    with pytest.raises(ValueError, match="affine_transform: output shape"):
        M.bwd_op(aff, [b, W, t(3, 5)], y, y, (), 2)
    with pytest.raises(ValueError, match="y and dy differ"):
        M.bwd_op(aff, [b, W, x], y, t(4, 2), (), 2)
    np.testing.assert_array_equal(M.to_numpy(M.bwd_op(aff, [b, W, x], y, y, (), 2)).ravel(), [16.0] * 3)


def test_pick_set_index_out_of_range_raises():
    p = dy.pick(dy.inputVector([1.0, 2.0, 3.0]), 0)
    assert p.value() == 1.0
    with pytest.raises((RuntimeError, IndexError), match="out of range"):
        p.set_index(7)
        p.value()


# ------------------------------------------------------------------ the AVX2+FMA build of the matrix products


@pytest.mark.parametrize("isa", ["baseline", "avx2+fma"])
def test_large_products_on_each_build(isa, monkeypatch):
    from dynet_backends.cpu_eigen.backend import load_fast_gemm

    monkeypatch.setenv("DYNET_CPU_EIGEN_ISA", "baseline" if isa == "baseline" else "best")
    try:
        if load_fast_gemm() != isa:
            pytest.skip("no AVX2+FMA on this CPU, or its module was not built")
        rng = np.random.default_rng(5)
        cases = [
            (lambda a, b: a * b, [(40, 30, 1), (30, 20, 3)]),
            (lambda a, b: a * b, [(40, 30, 3), (30, 20, 3)]),
            (lambda a, b: a * b, [(40, 30, 3), (30, 20, 1)]),
            (lambda b, w, x: dy.affine_transform([b, w, x]), [(64, 1), (64, 48, 1), (48, 5)]),
        ]
        for build, shapes in cases:
            arrays = [rng.normal(size=s).astype(np.float32) for s in shapes]
            want_y, want_g = _run("reference_numpy", build, arrays, False)
            got_y, got_g = _run("cpu_eigen", build, arrays, False)
            np.testing.assert_allclose(got_y, want_y, rtol=RTOL, atol=1e-4)
            for g, w in zip(got_g, want_g, strict=True):
                np.testing.assert_allclose(g, w, rtol=RTOL, atol=1e-4)
    finally:
        monkeypatch.delenv("DYNET_CPU_EIGEN_ISA")
        load_fast_gemm()


def test_denormals_flushed_inside_graphs_only():
    tiny = np.float32(1e-38)
    x = dy.inputVector([float(tiny)])
    y = x * 0.5  # a denormal result
    assert y.value() == 0.0  # flushed while the graph runs (FTZ/DAZ: denormals are ~100x slower)
    assert np.multiply(tiny, np.float32(0.5)) > 0  # and the process's float mode is restored afterwards


@pytest.mark.parametrize("autobatching", [0, 1])
def test_first_written_gradients_of_add_and_tanh_with_broadcasts(autobatching):
    """add and tanh write a gradient nothing has written yet (instead of adding into zeros): a
    batched x plus an unbatched b (b's gradient summed over the batch), a column broadcast along a
    matrix, and an operand read twice (its second gradient adds to the first) match NumPy."""
    rng = np.random.default_rng(5)
    X, B, C = rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(3, 1))
    dy.set_backend("cpu_eigen")
    dy.renew_cg(autobatching=autobatching)
    x = dy.inputTensor(X, batched=True)  # 4 batch elements of 3 values
    b = dy.inputVector(B)
    c = dy.inputTensor(C)
    m = dy.inputTensor(X)  # 3 x 4
    t = dy.tanh(x + b)
    u = dy.tanh(m + c) + m  # c broadcast along the columns; m read twice
    loss = dy.sum_batches(dy.sum_elems(t)) + dy.sum_elems(u)
    loss.backward(full=True)
    dt = 1 - np.tanh(X + B[:, None]) ** 2
    du = 1 - np.tanh(X + C) ** 2
    np.testing.assert_allclose(x.gradient().reshape(3, 4), dt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.gradient().reshape(3), dt.sum(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.gradient().reshape(3, 1), du.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.gradient().reshape(3, 4), du + 1, rtol=1e-5, atol=1e-6)
