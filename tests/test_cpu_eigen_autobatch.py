"""cpu_eigen's batching of products that share a weight (one GEMM W [x_1 ... x_n] forward,
W^T [dy_1 ... dy_n] and one dW GEMM backward): values and gradients must equal the
unbatched executor's and the NumPy reference's, where batching applies, applies only in
part, and must not apply because one product needs another's result."""

from __future__ import annotations

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

RTOL, ATOL = 1e-5, 1e-6


pytestmark = pytest.mark.usefixtures("restore_autobatch")


def _batching(on: bool) -> None:
    """Through the setting, as a program would (each new graph reads it and tells the backend)."""
    config.set_values(autobatch=int(on))
    dy.renew_cg()


def _model():
    rng = np.random.default_rng(3)
    m = dy.ParameterCollection()
    ps = {}
    for name, shape in {"W": (5, 4), "b": (5,), "U": (4, 4), "c": (4,), "V": (4, 3)}.items():
        ps[name] = m.add_parameters(shape)
        ps[name].set_value(rng.normal(size=shape).astype(np.float32) * 0.5)
    return m, ps




def _chain(ps, xs):
    """A recurrence h = tanh(U h + V x_t + c) (U products depend on each other: no batching of U;
    V x_t are independent: batched), and an output layer W h_t at every step (batched)."""
    W, b, U, c, V = ps["W"], ps["b"], ps["U"], ps["c"], ps["V"]
    h = dy.zeros(4)
    losses = []
    for k, x in enumerate(xs):
        h = dy.tanh(dy.affine_transform([c, U, h]) + V * x)
        losses.append(dy.pickneglogsoftmax_batch(dy.affine_transform([b, W, h]), [k % 5] * x.dim()[1]))
    return dy.esum(losses)


def _nested(ps, xs):
    """U (U x) and U x side by side: the outer product needs the inner one's value."""
    U, c = ps["U"], ps["c"]
    terms = []
    for x in xs:
        inner = dy.affine_transform([c, U, x])
        terms.append(dy.sum_elems(dy.tanh(dy.affine_transform([c, U, inner]))))
        terms.append(dy.sum_elems(U * dy.tanh(U * inner)))
    return dy.esum(terms)


def _dropout(ps, xs):
    """Random masks between batched products: they must draw in the same order either way."""
    W, b = ps["W"], ps["b"]
    return dy.esum([dy.sum_elems(dy.dropout(dy.affine_transform([b, W, x]), 0.5)) for x in xs])


def _run(backend, batched, build, dims, batch):
    """The graph built, run forward and backward twice (the second graph's values and gradients
    then lie where the first one's did, so a gradient part left unwritten shows as the old one)."""
    dy.set_backend(backend)
    _batching(batched)
    _, ps = _model()
    for _ in range(2):
        dy.reset_random_seed(11)
        dy.renew_cg()
        for p in ps.values():
            p.scale_gradient(0.0)
        rng = np.random.default_rng(5)
        xs = [dy.inputTensor(rng.normal(size=(dims, batch)).astype(np.float32), batched=True) for _ in range(6)]
        loss = dy.sum_batches(build(ps, xs))
        before = M.autobatch_stats() if backend == "cpu_eigen" else None
        v = loss.value()
        loss.backward(full=True)
        if before is not None:  # batched GEMMs run (forward, input gradients, weight gradients)
            ran = [a - b for a, b in zip(M.autobatch_stats(), before, strict=True)]
            assert all(ran) if batched else not any(ran), ran
    return v, {k: p.grad_as_array() for k, p in ps.items()}, [x.gradient() for x in xs]


def _independent(ps, xs):
    """Products of W over independent inputs, matmuls of V and W, all feeding one loss."""
    W, b, V = ps["W"], ps["b"], ps["V"]
    outs = [dy.tanh(dy.affine_transform([b, W, x])) for x in xs]
    outs += [dy.logistic(V * dy.pickrange(x, 0, 3)) for x in xs]
    outs += [dy.rectify(W * x) for x in xs[:2]]  # matmul of W next to affine_transforms of W
    return dy.esum([dy.sum_elems(o) for o in outs])


def _first_writers(ps, xs):
    """Batched products whose gradients (one unzeroed block) pickneglogsoftmax writes first, or adds
    into after another op (or a second loss) wrote them, or only other ops add into."""
    W, b = ps["W"], ps["b"]
    terms = []
    for k, x in enumerate(xs):
        s = dy.affine_transform([b, W, x])
        n = x.dim()[1]
        if k % 3 == 0:  # a tanh built first: the loss (later, so first in the sweep) writes, the tanh adds
            terms.append(dy.sum_elems(dy.tanh(s)))
        if k % 3 != 2:
            terms.append(dy.pickneglogsoftmax_batch(s, [k % 5] * n))
        if k % 3 == 1:  # a second loss and a pick after it: they add into what the first one wrote
            terms.append(dy.pickneglogsoftmax_batch(s, [(k + 2) % 5] * n))
            terms.append(dy.pick(s, 3))
        if k % 3 == 2:  # no loss: a pick alone, on a part of the block nothing else writes
            terms.append(dy.pick(s, 1))
    return dy.esum(terms)


def _scattered_activations(ps, xs):
    """logistic and tanh groups whose operands lie scattered (KernelDef::fwd_runs, no joined copy):
    each member's input alternates between two products' output blocks, or is an input slice; the
    activations feed a product and each other, so their gradients reach both blocks."""
    W, b, U = ps["W"], ps["b"], ps["U"]
    terms = []
    for x in xs:
        a, m = dy.affine_transform([b, W, x]), W * x
        i, o = dy.logistic(a), dy.logistic(m)
        g, t = dy.tanh(m), dy.tanh(dy.pickrange(x, 1, 3))
        terms.append(dy.sum_elems(dy.cmult(i, g) + o) + dy.sum_elems(U * dy.logistic(x)) + dy.sum_elems(t))
    return dy.esum(terms)


def _partly_written_runs(ps, xs):
    """A logistic group over two groups' outputs (runs [a0 a1] [b0] [a2 a3] [b1]: Executor::grad_in_runs
    writes its operands' gradients in place, a segment per side-by-side run), where a later product
    of a0 and of a3 wrote their gradients first: the segments mix written and unwritten parts."""
    U, c = ps["U"], ps["c"]
    s = [dy.affine_transform([c, U, x]) for x in xs]  # (every node needs its gradient: U's)
    a = [dy.tanh(v) for v in s[:4]]
    b = [dy.rectify(v) for v in s[4:]]
    g = [dy.logistic(v) for v in (a[0], a[1], b[0], a[2], a[3], b[1])]
    later = dy.cmult(a[0], g[0]) + dy.cmult(a[3], g[4])
    return dy.sum_elems(later) + dy.esum([dy.sum_elems(v) for v in g]) + dy.sum_elems(U * a[1])


def _stacked_vectors(ps, xs):
    """Concatenations of vectors from two groups' outputs (Executor::stack_members copies each
    member's operands from where they lie), of unequal sizes, and of a concatenation, under
    products whose gradients flow back through them; with a batch of 3 they run as joined copies."""
    W, U, c, V = ps["W"], ps["U"], ps["c"], ps["V"]
    h = [dy.tanh(dy.affine_transform([c, U, x])) for x in xs]
    g = [dy.logistic(V * dy.pickrange(x, 0, 3)) for x in xs]
    e = [dy.concatenate([h[k], g[(k + 1) % len(g)]]) for k in range(len(xs))]
    f = [dy.concatenate([g[k], dy.pickrange(h[k], 1, 3), h[(k + 2) % len(h)]]) for k in range(len(xs))]
    n = [dy.concatenate([e[k], f[k]]) for k in range(len(xs))]
    return dy.esum([dy.sum_elems(dy.cmult(v, v)) + dy.sum_elems(W * dy.pickrange(v, 0, 4)) for v in n])


CASES = [("independent", _independent, 4), ("chain", _chain, 3), ("scattered_activations", _scattered_activations, 4),
         ("nested", _nested, 4), ("dropout", _dropout, 4), ("first_writers", _first_writers, 4),
         ("partly_written_runs", _partly_written_runs, 4), ("stacked_vectors", _stacked_vectors, 4)]


def test_input_gradients_follow_a_changed_weight():
    """A batched product's input gradient W^T dy uses W^T made once per backward sweep: after the weight
    changes (an update), the next sweep's gradients are the new weight's."""
    dy.set_backend("cpu_eigen")
    got = {}
    for batched in (False, True):
        _batching(batched)
        _, ps = _model()
        W, b = ps["W"], ps["b"]
        grads = []
        for step in range(3):
            dy.renew_cg()
            rng = np.random.default_rng(step)
            xs = [dy.inputTensor(rng.normal(size=4).astype(np.float32)) for _ in range(5)]
            loss = dy.esum([dy.sum_elems(dy.tanh(dy.affine_transform([b, W, x]))) for x in xs])
            loss.backward(full=True)
            grads.append([x.gradient() for x in xs])
            W.set_value(W.as_array() * -0.7 + 0.3)  # between sweeps, as a trainer's update
        got[batched] = grads
    for step, (want, have) in enumerate(zip(got[False], got[True], strict=True)):
        for j, (a, c) in enumerate(zip(want, have, strict=True)):
            np.testing.assert_allclose(c, a, rtol=RTOL, atol=ATOL, err_msg=f"step {step} dx{j}")


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_batched_products_match_unbatched_and_reference(case, batch):
    name, build, dims = case
    base = _run("cpu_eigen", False, build, dims, batch)
    got = _run("cpu_eigen", True, build, dims, batch)
    runs = [("batched", got)]
    if name != "dropout":  # random masks differ between backends; compare the two cpu_eigen runs there
        runs.append(("reference", _run("reference_numpy", False, build, dims, batch)))
    for label, (v, pg, xg) in runs:
        np.testing.assert_allclose(v, base[0], rtol=RTOL, atol=ATOL, err_msg=f"{name} {label} loss")
        for k in pg:
            np.testing.assert_allclose(pg[k], base[1][k], rtol=RTOL, atol=ATOL, err_msg=f"{name} {label} d{k}")
        for j, (g, w) in enumerate(zip(xg, base[2], strict=True)):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{name} {label} dx{j}")


def test_lazy_prefix_then_rest():
    """A value read in the middle of a graph (forward over a prefix), then the rest batched."""
    _, ps = _model()
    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=4).astype(np.float32) for _ in range(5)]
    out = {}
    for on in (False, True):
        _batching(on)
        dy.renew_cg()
        xs = [dy.inputTensor(a) for a in arrays]
        first = dy.affine_transform([ps["b"], ps["W"], xs[0]])
        v0 = first.npvalue()
        rest = [dy.affine_transform([ps["b"], ps["W"], x]) for x in xs[1:]]
        out[on] = (v0, [r.npvalue() for r in rest])
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=RTOL, atol=ATOL)
    for a, b in zip(out[True][1], out[False][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    w, bias = ps["W"].as_array(), ps["b"].as_array()
    np.testing.assert_allclose(out[True][1][-1], w @ arrays[-1] + bias, rtol=1e-5, atol=1e-5)


def test_setting_switches_batching():
    _batching(False)
    assert M.autobatch() is False
    _batching(True)
    assert M.autobatch() is True
    config.settings["autobatch"] = 0
    config._explicit.discard("autobatch")  # not chosen by the program: the backend's default, on
    dy.renew_cg()
    assert M.autobatch() is True
    dy.renew_cg(autobatching=False)  # DyNet's per-graph switch
    assert M.autobatch() is False
    dy.renew_cg()
    assert M.autobatch() is True


def test_revert_keeps_batched_outputs():
    """Products batched into one output block, then cg_revert to a checkpoint after them and new
    nodes: the earlier products keep their values (the block lies past the checkpoint's mark)."""
    _, ps = _model()
    rng = np.random.default_rng(5)
    arrays = [rng.normal(size=4).astype(np.float32) for _ in range(4)]
    _batching(True)
    dy.renew_cg()
    xs = [dy.inputTensor(a) for a in arrays]
    outs = [dy.affine_transform([ps["b"], ps["W"], x]) for x in xs]
    dy.cg_checkpoint()
    extra = dy.tanh(outs[0])
    before = M.autobatch_stats()[0]
    extra.npvalue()  # evaluates the products as one group, then the tanh
    assert M.autobatch_stats()[0] == before + 1
    dy.cg_revert()
    more = [dy.inputTensor(rng.normal(size=4).astype(np.float32) * 100) for _ in range(3)]
    dy.esum(more).npvalue()  # new nodes fill the arena past the checkpoint
    w, bias = ps["W"].as_array(), ps["b"].as_array()
    for o, a in zip(outs, arrays, strict=True):
        np.testing.assert_allclose(o.npvalue(), w @ a + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [601, 640])
def test_large_batched_output_block(rows):
    """A batched output block past the caches (filled with streaming stores before the GEMM),
    with columns of a length that leaves them unaligned (601) or aligned (640)."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=(rows, 5)).astype(np.float32)
    bias = rng.normal(size=rows).astype(np.float32)
    xs = [rng.normal(size=(5, 160)).astype(np.float32) for _ in range(6)]  # 960 columns
    out = {}
    for on in (False, True):
        _batching(on)
        m = dy.ParameterCollection()
        W, b = m.add_parameters((rows, 5)), m.add_parameters((rows,))
        W.set_value(w), b.set_value(bias)
        dy.renew_cg()
        withb = [dy.affine_transform([b, W, dy.inputTensor(x, batched=True)]) for x in xs[:3]]
        plain = [W * dy.inputTensor(x, batched=True) for x in xs[3:]]
        before = M.autobatch_stats()[0]
        dy.esum([dy.sum_batches(dy.sum_elems(y)) for y in withb + plain]).value()
        assert (M.autobatch_stats()[0] > before) == on
        out[on] = [y.npvalue() for y in withb + plain]
    for k, (a, x) in enumerate(zip(out[True], xs, strict=True)):
        want = (w @ x + (bias[:, None] if k < 3 else 0)).astype(np.float32)
        np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a, out[False][k], rtol=RTOL, atol=ATOL)
