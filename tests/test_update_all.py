"""Backend.update_all (one trainer step over many parameters, gradients cleared as stepped)
against update() followed by the separate clear, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from dynet_api.plugins import registry

RULES = {
    "sgd": ({"lr": 0.1}, 0),
    "momentum": ({"lr": 0.1, "mom": 0.9}, 1),
    "adagrad": ({"lr": 0.1, "eps": 1e-8}, 1),
    "adadelta": ({"lr": 1.0, "eps": 1e-6, "rho": 0.95}, 2),
    "rmsprop": ({"lr": 0.01, "eps": 1e-8, "rho": 0.9}, 1),
    "adam": ({"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8}, 2),
    "amsgrad": ({"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "eps": 1e-8}, 3),
    "eg": ({"lr": 0.1, "mom": 0.5}, 1),
}


def _backends():
    out = []
    for name in registry.names():
        rec = registry.load(name)
        out.append(pytest.param(name, marks=[] if rec.backend else pytest.mark.skip(reason=f"{name}: {rec.error}")))
    return out


@pytest.fixture(params=_backends())
def be(request):
    return registry.load(request.param).backend


def _case(rng, rule, n_states):
    """A dense 3x5000 weight (bigger than one clear chunk), a 4-row sparse table and a small vector."""
    shapes = [(3, 5000, 1), (4, 10), (7, 1)]
    rows = [None, [1, 3], None]
    out = []
    for shape, r in zip(shapes, rows):
        w = rng.uniform(0.1, 1.0, shape).astype(np.float32)
        if rule == "eg":
            w /= w.sum()
        g = rng.standard_normal(shape).astype(np.float32)
        if r is not None:  # a sparse gradient: zero outside the touched rows
            keep = np.zeros(shape[-1], bool)
            keep[r] = True
            g[..., ~keep] = 0.0
        st = [rng.uniform(0.0, 0.5, shape).astype(np.float32) for _ in range(n_states)]
        out.append((w, g, st, r))
    return out


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("clear", [True, False])
def test_update_all_matches_update_then_clear(be, rule, clear):
    hyper, n_states = RULES[rule]
    hyper = dict(hyper, gscale=0.5)
    case = _case(np.random.default_rng(3), rule, n_states)
    mk = [(be.from_numpy(w), be.from_numpy(g), [be.from_numpy(s) for s in st], r) for w, g, st, r in case]
    ref = [(be.from_numpy(w), be.from_numpy(g), [be.from_numpy(s) for s in st], r) for w, g, st, r in case]
    be.update_all(rule, [(w, g, st, r, clear) for w, g, st, r in mk], hyper)
    for w, g, st, r in ref:
        be.update(rule, w, g, st, r, hyper)
        if clear:
            be.fill(g, 0.0)
    for (w, g, st, _), (w2, g2, st2, _), (w0, g0, _, _) in zip(mk, ref, case):
        np.testing.assert_allclose(be.to_numpy(w), be.to_numpy(w2), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(be.to_numpy(g), be.to_numpy(g2))
        for a, b in zip(st, st2):
            np.testing.assert_allclose(be.to_numpy(a), be.to_numpy(b), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(be.to_numpy(g), np.zeros_like(g0) if clear else g0)
        assert not np.allclose(be.to_numpy(w), w0)  # the step did happen


def test_update_all_sgd_by_hand(be):
    w = be.from_numpy(np.array([[1.0, 2.0, 3.0]], np.float32).reshape(1, 3))
    g = be.from_numpy(np.array([[10.0, 0.0, -10.0]], np.float32).reshape(1, 3))
    be.update_all("sgd", [(w, g, [], [0, 2], True)], {"lr": 0.1, "gscale": 0.5})
    np.testing.assert_allclose(be.to_numpy(w), [[0.5, 2.0, 3.5]])
    np.testing.assert_array_equal(be.to_numpy(g), np.zeros((1, 3)))


def test_update_all_bad_row_raises(be):
    w = be.from_numpy(np.ones((2, 3), np.float32))
    g = be.from_numpy(np.ones((2, 3), np.float32))
    with pytest.raises((IndexError, ValueError)):
        be.update_all("sgd", [(w, g, [], [5], True)], {"lr": 0.1, "gscale": 1.0})


def test_cpu_eigen_update_all_checks_every_item_first():
    rec = registry.load("cpu_eigen")
    if rec.backend is None:
        pytest.skip(f"cpu_eigen: {rec.error}")
    be = rec.backend
    w1, g1 = be.from_numpy(np.ones((4, 1), np.float32)), be.from_numpy(np.ones((4, 1), np.float32))
    w2, g2 = be.from_numpy(np.ones((2, 3), np.float32)), be.from_numpy(np.ones((2, 3), np.float32))
    with pytest.raises(IndexError, match="row 7 out of range"):
        be.update_all("sgd", [(w1, g1, [], None, True), (w2, g2, [], [7], True)], {"lr": 0.1, "gscale": 1.0})
    np.testing.assert_array_equal(be.to_numpy(w1), np.ones((4, 1)))
    np.testing.assert_array_equal(be.to_numpy(g1), np.ones((4, 1)))
    with pytest.raises(ValueError, match="unknown update rule"):
        be.update_all("nope", [(w1, g1, [], None, True)], {"lr": 0.1})
    np.testing.assert_array_equal(be.to_numpy(g1), np.ones((4, 1)))
    # the arguments are read with the C API: malformed ones still get a clear error, and change nothing
    with pytest.raises(TypeError, match=r"update_all: rows must be ints, got float"):
        be.update_all("sgd", [(w2, g2, [], [1.0], True)], {"lr": 0.1})
    with pytest.raises(ValueError, match=r"items are \(w, g, states, rows, clear\)"):
        be.update_all("sgd", [(w1, g1, [], None)], {"lr": 0.1})
    with pytest.raises(TypeError, match="must be real number"):
        be.update_all("sgd", [(w1, g1, [], None, True)], {"lr": "0.1"})
    with pytest.raises(TypeError, match=r"sq_norm_all: rows must be ints"):
        be.sq_norm_all([(w2, ["0"])])
    np.testing.assert_array_equal(be.to_numpy(w1), np.ones((4, 1)))
    np.testing.assert_array_equal(be.to_numpy(w2), np.ones((2, 3)))


def _cpu_eigen_module():
    rec = registry.load("cpu_eigen")
    if rec.backend is None:
        pytest.skip(f"cpu_eigen: {rec.error}")
    from dynet_backends.cpu_eigen import _cpu_eigen

    return rec.backend, _cpu_eigen


@pytest.mark.parametrize("gbound", [None, 3.0])
@pytest.mark.parametrize("isa", ["baseline", "avx2", "best"])
@pytest.mark.parametrize("rule", sorted(set(RULES) - {"eg"}))
def test_cpu_eigen_update_builds_agree_with_the_reference(rule, isa, gbound):
    """Each instruction-set build of the rule loops (odd sizes: vector tails) against reference_numpy;
    under a gradient bound (gbound) the vector builds' reciprocal-estimate kernels."""
    be, m = _cpu_eigen_module()
    ref = registry.load("reference_numpy").backend
    hyper, n_states = RULES[rule]
    hyper = dict(hyper, gscale=0.7) if gbound is None else dict(hyper, gscale=0.7, gbound=gbound)
    case = _case(np.random.default_rng(11), rule, n_states)
    before = m.update_isa()
    got_isa = m.select_update_isa(isa)
    try:
        assert got_isa in ("baseline", "avx2", "avx512")
        assert isa != "baseline" or got_isa == "baseline"
        for b in (be, ref):
            items = [(b.from_numpy(w), b.from_numpy(g), [b.from_numpy(s) for s in st], r) for w, g, st, r in case]
            b.update_all(rule, [(w, g, st, r, True) for w, g, st, r in items], hyper)
            if b is be:
                mine = [(be.to_numpy(w), [be.to_numpy(s) for s in st]) for w, _, st, _ in items]
                assert all(not be.to_numpy(g).any() for _, g, _, _ in items)  # cleared in the pass
            else:
                theirs = [(ref.to_numpy(w), [ref.to_numpy(s) for s in st]) for w, _, st, _ in items]
    finally:
        m.select_update_isa("baseline" if before == "baseline" else "avx2" if before == "avx2" else "best")
    for (w, st), (w2, st2) in zip(mine, theirs):
        np.testing.assert_allclose(w, w2, rtol=2e-6, atol=2e-6)  # fma vs separate rounding
        for a, b in zip(st, st2):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


def test_sq_norm_all_matches_numpy(be):
    """The clipping norm in one call: dense tensors whole, tables over the given rows only."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 1027)).astype(np.float32)
    tbl = be.from_numpy(rng.standard_normal((6, 13)).astype(np.float32))
    parts = [(be.from_numpy(a), None), (tbl, [0, 4, 5])]
    dense = float((a.astype(np.float64) ** 2).sum())
    # float partial sums (a few dozen squares each) added in double: float32's precision, whatever the size
    assert be.sq_norm_all(parts[:1]) == pytest.approx(dense, rel=1e-6)
    assert be.sq_norm_all(parts) == pytest.approx(dense + be.sq_norm(tbl, [0, 4, 5]), rel=1e-6)
    assert be.sq_norm_all([]) == 0.0
