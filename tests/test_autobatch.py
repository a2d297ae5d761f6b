"""Front-end autobatching (dynet_api/autobatch.py): values and gradients equal unbatched execution,
kernel calls drop, random ops draw the same numbers, and the conformance check catches a wrong
split or a wrong merge."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import autobatch, config, profiling
from dynet_api.conformance.autobatch import check_autobatch, check_mixed
from dynet_api.ops import OPS

pytestmark = pytest.mark.usefixtures("restore_autobatch")


def _tree_model(h: int = 6):
    rng = np.random.default_rng(0)
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((30, h))
    E.init_from_array(rng.normal(size=(30, h)).astype(np.float32))
    W = m.add_parameters((h, 2 * h))
    W.set_value(rng.normal(size=(h, 2 * h)).astype(np.float32) * 0.3)
    b = m.add_parameters(h)
    V = m.add_parameters((5, h))
    V.set_value(rng.normal(size=(5, h)).astype(np.float32) * 0.3)
    return m, E, W, b, V


def _trees(n: int, seed: int = 1):
    """Random binary trees over word ids, as nested tuples."""
    rng = np.random.default_rng(seed)

    def tree(depth):
        if depth == 0 or rng.random() < 0.3:
            return int(rng.integers(30))
        return (tree(depth - 1), tree(depth - 1))

    return [tree(int(rng.integers(1, 5))) for _ in range(n)]


def _tree_loss(model, trees, batching):
    """Per-instance code (one tree at a time, as a DyNet user writes it), all trees in one graph."""
    _, E, W, b, V = model
    dy.renew_cg(autobatching=batching)

    def enc(t):
        if isinstance(t, int):
            return dy.lookup(E, t)
        return dy.tanh(W * dy.concatenate([enc(t[0]), enc(t[1])]) + b)

    losses = [dy.pickneglogsoftmax(V * enc(t), k % 5) for k, t in enumerate(trees)]
    return dy.esum(losses)


def _run(model, trees, batching):
    m, E, W, *_ = model
    before = {p: p.grad_as_array().copy() for p in (E, W)}
    profiling.reset()
    loss = _tree_loss(model, trees, batching)
    v = loss.value()
    loss.backward()
    calls = profiling.kernel_calls()
    return v, {p: p.grad_as_array() - before[p] for p in (E, W)}, calls


@pytest.mark.parametrize("strategy", [1, 2])
def test_trees_match_unbatched_with_far_fewer_kernel_calls(each_backend, strategy):
    model = _tree_model()
    trees = _trees(32)
    v0, g0, calls0 = _run(model, trees, False)
    v1, g1, calls1 = _run(model, trees, strategy)
    assert dy.cg().autobatch == strategy
    np.testing.assert_allclose(v1, v0, rtol=1e-5)
    for p in g0:
        np.testing.assert_allclose(g1[p], g0[p], rtol=1e-4, atol=1e-5)
    if not each_backend.batches_itself:
        assert calls0 >= 8 * calls1, (calls0, calls1)


def test_strategy_numbers_follow_dynet(each_backend):
    dy.renew_cg(autobatching=3)  # DyNet's other values run as the agenda
    assert dy.cg().autobatch == 1
    dy.renew_cg(autobatching=0)
    assert dy.cg().autobatch == 0
    config.set_values(autobatch=2)
    dy.renew_cg()
    assert dy.cg().autobatch == 2


def test_random_ops_draw_the_same_numbers_batched_or_not():
    dy.set_backend("reference_numpy")
    model = _tree_model()
    _, E, W, b, _ = model
    out = []
    for batching in (False, True):
        dy.reset_random_seed(5)
        dy.renew_cg(autobatching=batching)
        hs = [dy.dropout(dy.tanh(W * dy.concatenate([dy.lookup(E, k), dy.lookup(E, k + 1)]) + b), 0.5)
              for k in range(8)]
        noise = [dy.noise(h, 0.1) for h in hs]
        out.append(np.stack([n.npvalue() for n in noise]))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)  # other masks would differ by O(1)


def test_revert_and_invalidate_keep_batched_values_and_gradients():
    dy.set_backend("reference_numpy")
    model = _tree_model()
    _, E, W, b, V = model
    res = []
    for batching in (False, True):
        before = W.grad_as_array().copy()
        dy.renew_cg(autobatching=batching)
        xs = [dy.lookup(E, k) for k in range(6)]
        hs = [dy.tanh(W * dy.concatenate([x, x]) + b) for x in xs]
        dy.cg_checkpoint()
        extra = [dy.logistic(h) for h in hs]
        dy.esum([dy.sum_elems(e) for e in extra]).value()  # batched groups that straddle the checkpoint
        dy.cg_revert()
        inp = dy.inputVector([0.5] * 6)
        loss = dy.esum([dy.dot_product(h, inp) for h in hs])
        v1 = loss.value()
        inp.set([0.25] * 6)  # invalidates the values from the input on
        v2 = loss.value()
        loss.backward()
        res.append((v1, v2, W.grad_as_array() - before))
    np.testing.assert_allclose(res[1][0], res[0][0], rtol=1e-6)
    np.testing.assert_allclose(res[1][1], res[0][1], rtol=1e-6)
    np.testing.assert_allclose(res[1][2], res[0][2], rtol=1e-5, atol=1e-6)


def test_nodes_with_different_attributes_or_batch_reductions_never_merge():
    dy.set_backend("reference_numpy")
    dy.renew_cg(autobatching=True)
    xs = [dy.inputVector([1.0, -2.0, 3.0]) for _ in range(4)]
    ys = [dy.elu(xs[0], 1.0), dy.elu(xs[1], 0.5), dy.elu(xs[2], 1.0), dy.sum_batches(xs[3])]
    got = [y.npvalue() for y in ys]
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(got[0], np.where(x > 0, x, np.expm1(x)), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.where(x > 0, x, 0.5 * np.expm1(x)), rtol=1e-6)
    sig = autobatch.signature
    nodes, dims = dy.cg().nodes, dy.cg().dims
    assert sig(nodes, dims, ys[0].i) == sig(nodes, dims, ys[2].i) != sig(nodes, dims, ys[1].i)
    assert sig(nodes, dims, ys[3].i) is None


def test_conformance_check_catches_a_wrong_split(monkeypatch):
    from dynet_api.plugins import registry

    ref = registry.get("reference_numpy")
    assert not check_autobatch(ref, OPS["tanh"]).failed
    # the group's output read back to front: each node gets another one's slice
    monkeypatch.setattr(type(ref), "batch_slice", lambda self, t, a, b, d: t[..., ::-1][..., a:b])
    res = check_autobatch(ref, OPS["tanh"])
    assert res.failed and "differs with autobatching on" in res.explain()
    assert check_mixed(ref, 0).failed


def test_conformance_check_catches_nodes_merged_across_attributes(monkeypatch):
    from dynet_api.plugins import registry

    ref = registry.get("reference_numpy")
    assert not check_autobatch(ref, OPS["elu"]).failed
    plans = list(autobatch._ATTR_PLAN)
    keep, per, b = plans[OPS["elu"].id]
    plans[OPS["elu"].id] = ((), per, b)  # alpha left out of the signature: alpha 1 and 0.5 merge
    monkeypatch.setattr(autobatch, "_ATTR_PLAN", plans)
    simple = list(autobatch._SIMPLE)
    simple[OPS["elu"].id] = False  # through signature(), which reads the plan
    monkeypatch.setattr(autobatch, "_SIMPLE", simple)
    res = check_autobatch(ref, OPS["elu"])
    assert res.failed and "differs with autobatching on" in res.explain()


def test_profiling_prints_per_op_calls(capsys):
    dy.set_backend("reference_numpy")
    saved = config.settings.get("profiling")
    config.settings["profiling"] = 1
    try:
        dy.cg().executor = None  # a new executor reads the profiling setting
        model = _tree_model()
        loss = _tree_loss(model, _trees(8), True)
        loss.value()
        loss.backward()
    finally:
        config.settings["profiling"] = saved
        dy.cg().executor = None
        dy.renew_cg()
    err = capsys.readouterr().err
    assert "-- profile forward of nodes 0.." in err and "-- profile backward from node" in err
    line = next(ln for ln in err.splitlines() if ln.startswith("tanh"))
    nodes, calls = (int(v) for v in line.split()[1:3])
    assert calls < nodes
    assert profiling.counts()["tanh"].seconds > 0


@pytest.mark.parametrize("strategy", [1, 2])
def test_the_c_scheduler_plans_exactly_as_the_python_one(strategy):
    """csrc/autobatch_plan.c against dynet_api/autobatch.py (the specification), node for node."""
    from dynet_api.accelerator import fastgraph

    if fastgraph is None:
        pytest.skip("the C accelerator is not built (or DYNET_API_PURE_PYTHON is set)")
    dy.set_backend("reference_numpy")
    model = _tree_model()
    _, E, W, b, V = model
    _tree_loss(model, _trees(24, seed=3), strategy)
    cg = dy.cg()
    xs = [dy.lookup(E, k) for k in range(5)]  # lookups, a shared parameter, a batch reduction, attributes
    ys = [dy.elu(x, 0.5 if k % 2 else 1.0) for k, x in enumerate(xs)] + [dy.sum_batches(x) for x in xs]
    dy.esum([dy.sum_elems(y) for y in ys] + [dy.dropout(dy.tanh(W * dy.concatenate([x, x]) + b), 0.3)[0] for x in xs])
    n = len(cg.nodes)
    for a in (0, 7, n // 2):
        want = autobatch.plan_order(cg.nodes, cg.dims, a, n, strategy, accelerated=False)
        assert autobatch.plan_order(cg.nodes, cg.dims, a, n, strategy) == want
        assert sorted(j for g in want for j in g) == list(range(a, n))
    assert max(len(g) for g in want) > 1


def _same(a, b) -> bool:
    """Equal structures, tensors compared by identity (both twins hand back the same objects)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, type(None))) or isinstance(b, (int, type(None))):
        return type(a) is type(b) and a == b
    return a is b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_c_join_and_scatter_plans_match_the_python_ones(monkeypatch, seed):
    """csrc/autobatch_gather.c against join_sources / scatter_targets, on every call a batched
    forward and backward of trees and mixed forests make (interleaved sources, batched nodes,
    nodes read alone, parameters shared)."""
    from dynet_api.accelerator import fastgraph

    if fastgraph is None or not hasattr(fastgraph, "join_sources"):
        pytest.skip("the C accelerator is not built (or DYNET_API_PURE_PYTHON is set)")
    seen = {"join": 0, "scatter": 0, "perm": 0, "alone": 0}

    def join(*args):
        got, want = fastgraph.join_sources(*args), autobatch.join_sources(*args)
        assert _same(got, want), (got, want)
        seen["join"] += 1
        seen["perm"] += want[1] is not None
        return got

    def scatter(*args):
        got, want = fastgraph.scatter_targets(*args), autobatch.scatter_targets(*args)
        assert _same(got, want), (got, want)
        seen["scatter"] += 1
        seen["alone"] += bool(want[1])
        return got

    monkeypatch.setattr(autobatch, "_join_sources", join)
    monkeypatch.setattr(autobatch, "_scatter_targets", scatter)
    dy.set_backend("reference_numpy")
    model = _tree_model()
    loss = _tree_loss(model, _trees(12, seed=seed), 1)
    loss.value()
    loss.backward()
    from dynet_api.plugins import registry

    assert not check_mixed(registry.get("reference_numpy"), seed).failed
    assert seen["join"] and seen["scatter"] and seen["perm"]


@pytest.mark.parametrize("order", ["same", "reversed", "interleaved"])
def test_gradients_of_batched_nodes_equal_those_without_batching(each_backend, order):
    """Expression.gradient() of nodes that ran in a group reads their part of the group's gradient:
    the same numbers as without batching, whether the consumers took the group whole, reversed or
    interleaved with other nodes (a node read alone as well, by a single op, adds its share)."""
    m = dy.ParameterCollection()
    W = m.add_parameters((4, 4))
    E = m.add_lookup_parameters((10, 4))
    W.set_value(np.random.default_rng(0).normal(0, 0.5, (4, 4)))
    E.init_from_array(np.random.default_rng(1).normal(0, 1, (10, 4)))

    def grads(ab):
        dy.renew_cg(autobatching=ab)
        hs = [dy.tanh(W * E[k]) for k in range(6)]
        feed = {"same": hs, "reversed": hs[::-1], "interleaved": hs[1::2] + hs[::2]}[order]
        zs = [dy.logistic(W * h) for h in feed]
        loss = dy.sum_elems(dy.esum(zs) + dy.cmult(hs[2], hs[3]))
        loss.backward()
        return [h.gradient() for h in hs] + [z.gradient() for z in zs]

    want, got = grads(0), grads(1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert any(np.abs(w).sum() > 0 for w in want)
