"""cpu_eigen's C++ executor groups every op kind as the front end's scheduler does: its executed
records (one list of node ids per kernel call) equal dynet_api.autobatch.plan_order's, node for
node, for both strategies; values and gradients equal the unbatched run and the NumPy reference;
and the kernel calls drop as a forest of instances grows."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import autobatch, profiling
from dynet_api.plugins import registry

try:
    registry.get("cpu_eigen")
except (ValueError, RuntimeError) as _e:
    pytest.skip(f"cpu_eigen backend unavailable: {_e}", allow_module_level=True)

pytestmark = pytest.mark.usefixtures("restore_autobatch")


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    m = dy.ParameterCollection()
    ps = {
        "E": m.add_lookup_parameters((7, 4)),
        "W": m.add_parameters((4, 8)),
        "b": m.add_parameters(4),
        "V": m.add_parameters((5, 4)),
        "U": m.add_parameters((4, 4)),
    }
    ps["E"].init_from_array(rng.normal(size=(7, 4)).astype(np.float32))
    for k in ("W", "b", "V", "U"):
        ps[k].set_value(rng.normal(size=ps[k].shape()).astype(np.float32) * 0.5)
    return m, ps


def _instance(ps, rng, k: int):
    """A small tree over looked-up words (repeated rows), with every kind of op a forest joins:
    lookups, concatenation, an affine transform and a matmul of shared weights, elementwise ops,
    per-instance constants, picks, losses with per-instance indices, a batch-summing reduction
    (never joined) and random dropout masks (never joined)."""
    E, W, b, V, U = (ps[n] for n in "EWbVU")
    words = [int(w) for w in rng.integers(7, size=2 + k % 3)]
    hs = [dy.lookup(E, w) for w in words]
    while len(hs) > 1:  # binary tree, left to right
        left, right = hs.pop(0), hs.pop(0)
        h = dy.tanh(dy.affine_transform([b, W, dy.concatenate([left, right])]))
        h = dy.cmult(dy.logistic(U * h), h) + h * 0.5 if k % 2 else dy.rectify(h)
        hs.append(h)
    h = hs[0]
    if k % 4 == 3:
        h = dy.dropout(h, 0.3)
    scores = V * h
    terms = [dy.pickneglogsoftmax(scores, k % 5), dy.pick(dy.log_softmax(scores), (k + 1) % 5),
             dy.sum_elems(dy.square(h - dy.inputVector(rng.normal(size=4))))]
    if k % 3 == 0:
        terms.append(dy.hinge(scores, (k + 2) % 5, 0.5))
    return dy.esum(terms)


def _forest(backend: str, strategy: int, n: int, seed: int = 1):
    dy.set_backend(backend)
    m, ps = _model()
    dy.reset_random_seed(7)
    dy.renew_cg(autobatching=strategy)
    rng = np.random.default_rng(seed)
    loss = dy.esum([_instance(ps, rng, k) for k in range(n)])
    profiling.reset()
    v = loss.value()
    loss.backward()
    grads = {k: p.grad_as_array() for k, p in ps.items()}
    calls = sum(c.calls for c in profiling.counts().values())
    return v, grads, calls, loss


@pytest.mark.parametrize("strategy", [1, 2])
def test_the_executor_runs_the_front_ends_plan(strategy):
    v, _, _, loss = _forest("cpu_eigen", strategy, 9)
    cg = dy.cg()
    got = cg.executor.plan()
    want = autobatch.plan_order(cg.nodes, cg.dims, 0, loss.i + 1, strategy)
    assert got == want
    assert max(len(g) for g in got) > 1


@pytest.mark.parametrize("strategy", [1, 2])
def test_forest_values_and_gradients_match_unbatched_and_reference(strategy):
    v0, g0, _, _ = _forest("cpu_eigen", 0, 9)
    v1, g1, _, _ = _forest("cpu_eigen", strategy, 9)
    np.testing.assert_allclose(v1, v0, rtol=1e-5, atol=1e-5)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-4, atol=1e-5, err_msg=k)
    # dropout's masks are the reference's own draws: compare with a forest without them
    vr, gr, _, _ = _forest("reference_numpy", 0, 3)
    vc, gc, _, _ = _forest("cpu_eigen", strategy, 3)
    np.testing.assert_allclose(vc, vr, rtol=1e-5, atol=1e-5)
    for k in gr:
        np.testing.assert_allclose(gc[k], gr[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_kernel_calls_drop_with_the_forest_size():
    _, _, off, _ = _forest("cpu_eigen", 0, 32)
    _, _, on, _ = _forest("cpu_eigen", 1, 32)
    assert on * 5 < off, (on, off)


def test_prefix_read_then_rest_and_revert_keep_the_plan_consistent():
    """A value read in the middle (forward over a prefix: two planned ranges), then backward over
    both; and a revert cutting a group in two: its members below the cut run backward alone."""
    for strategy in (0, 1):
        dy.set_backend("cpu_eigen")
        _, ps = _model()
        dy.reset_random_seed(3)  # the dropout masks: the same draws either way
        dy.renew_cg(autobatching=strategy)
        rng = np.random.default_rng(4)
        first = [_instance(ps, rng, k) for k in range(3)]
        mid = dy.esum(first).value()
        dy.cg_checkpoint()
        rest = [_instance(ps, rng, k) for k in range(3, 6)]
        dy.esum(rest).value()
        dy.cg_revert()
        more = [_instance(ps, rng, k) for k in range(6, 8)]
        loss = dy.esum(first + more)
        out = (mid, loss.value())
        loss.backward()
        grads = {k: p.grad_as_array() for k, p in ps.items()}
        if strategy == 0:
            want = (out, grads)
    np.testing.assert_allclose(out, want[0], rtol=1e-5, atol=1e-5)
    for k in grads:
        np.testing.assert_allclose(grads[k], want[1][k], rtol=1e-4, atol=1e-5, err_msg=k)


def _check_plan(loss, strategy):
    cg = dy.cg()
    loss.value()
    got = cg.executor.plan()
    assert got == autobatch.plan_order(cg.nodes, cg.dims, 0, loss.i + 1, strategy)
    return got


def test_each_graph_of_a_sequence_runs_its_own_plan():
    """The executor keeps the last order when a range's operands and signatures repeat (a graph
    rebuilt): graphs that repeat, change structure, change only an op (the same operands, other
    signatures) or the strategy must each still run the front end's plan for them."""
    dy.set_backend("cpu_eigen")
    _, ps = _model()
    for strategy, seed, n in [(1, 1, 5), (1, 1, 5), (1, 2, 6), (2, 2, 6), (1, 2, 6), (1, 1, 5)]:
        dy.renew_cg(autobatching=strategy)
        rng = np.random.default_rng(seed)
        _check_plan(dy.esum([_instance(ps, rng, k) for k in range(n)]), strategy)
    sizes = []
    for second in (dy.tanh, dy.logistic, dy.tanh):  # same operands throughout; the signatures differ
        dy.renew_cg(autobatching=1)
        x = dy.inputVector([0.5, -1.0, 2.0])
        loss = dy.sum_elems(dy.tanh(x) + second(x))
        got = _check_plan(loss, 1)
        sizes.append(max(len(g) for g in got))
        want = np.tanh([0.5, -1.0, 2.0]) + (np.tanh if second is dy.tanh else lambda v: 1 / (1 + np.exp(-v)))(
            np.array([0.5, -1.0, 2.0]))
        np.testing.assert_allclose(loss.value(), want.sum(), rtol=1e-5)
    assert sizes == [2, 1, 2]  # the two tanh join; tanh and logistic do not


def test_backward_from_a_node_inside_the_forest_then_from_the_end():
    """Backward from one instance's loss while groups run past it (their members after it get no
    gradient: their parts of the group's block must be zeroed before the group's backward reads
    them), then from the whole sum and from another instance on the same graph: gradients equal
    the unbatched run's (without that zeroing the first comparison fails)."""
    got = {}
    for strategy in (0, 1):
        dy.set_backend("cpu_eigen")
        _, ps = _model()
        dy.reset_random_seed(5)
        dy.renew_cg(autobatching=strategy)
        rng = np.random.default_rng(6)
        losses = [_instance(ps, rng, k) for k in range(7)]
        total = dy.esum(losses)
        total.value()
        out = []
        for top in (losses[2], total, losses[4]):  # (the gradients accumulate alike either way)
            top.backward()
            out.append({k: p.grad_as_array().copy() for k, p in ps.items()})
        got[strategy] = out
    for want, have in zip(got[0], got[1], strict=True):
        for k in want:
            np.testing.assert_allclose(have[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


def _mixed_batch_graph(strategy: int):
    """Eight instances of attribute-less ops over inputs of batch sizes 2, 3 and 4 (one graph), a
    batch-1 operand broadcast in two of them; (loss, parameters)."""
    _, ps = _model()
    W, b, U = ps["W"], ps["b"], ps["U"]
    rng = np.random.default_rng(3)
    dy.renew_cg(autobatching=strategy)
    terms = []
    for k in range(8):
        x = dy.inputTensor(rng.normal(size=(8, 2 + k % 3)).astype(np.float32), batched=True)
        h = dy.tanh(dy.affine_transform([b, W, x]))
        g = dy.cmult(dy.logistic(U * h), h)
        if k % 4 == 1:  # a batch-1 operand broadcast over the batch: never joined
            g = dy.cmult(g, dy.inputVector(rng.normal(size=4)))
        terms.append(dy.sum_batches(dy.sum_elems(g + h)))
    return dy.esum(terms), ps


@pytest.mark.parametrize("strategy", [1, 2])
def test_nodes_without_attributes_of_different_batch_sizes_group_as_the_front_end_says(strategy):
    """The executor finds an attribute-less node's signature by the identities of its Dim and its
    operands' (a fast path before building the key): nodes whose Dims differ only in the batch
    size still join, and a broadcast operand still keeps its node alone, as the front end plans;
    values and gradients equal the unbatched run's."""
    dy.set_backend("cpu_eigen")
    loss, ps = _mixed_batch_graph(strategy)
    v1 = loss.value()
    loss.backward()
    g1 = {k: ps[k].grad_as_array() for k in ("W", "b", "U")}
    cg = dy.cg()
    got = cg.executor.plan()
    assert got == autobatch.plan_order(cg.nodes, cg.dims, 0, loss.i + 1, strategy)
    assert max(len(g) for g in got) >= 8  # e.g. the eight instances' tanh (batch sizes 2, 3, 4): one call
    loss0, ps0 = _mixed_batch_graph(0)
    np.testing.assert_allclose(v1, loss0.value(), rtol=1e-5, atol=1e-5)
    loss0.backward()
    for k in g1:
        np.testing.assert_allclose(g1[k], ps0[k].grad_as_array(), rtol=1e-4, atol=1e-5, err_msg=k)


def _chain_graph(strategy: int, branch: bool):
    """An RNN of separate ops unrolled step by step (each op reads the one before), with dropout in
    it; with ``branch``, a second tanh of one step's sum beside the chain (independent of it)."""
    _, ps = _model()
    b, U = ps["b"], ps["U"]
    dy.reset_random_seed(11)
    dy.renew_cg(autobatching=strategy)
    h = dy.inputVector(np.linspace(-1.0, 1.0, 4))
    side = None
    for t in range(6):
        s = U * h + b
        if branch and t == 2:
            side = dy.tanh(s)
        h = dy.dropout(dy.tanh(s), 0.2) if t == 3 else dy.tanh(s)
    loss = dy.sum_elems(h) if side is None else dy.sum_elems(h) + dy.sum_elems(side)
    profiling.reset()
    v = loss.value()
    loss.backward()
    calls = sum(c.calls for c in profiling.counts().values())
    return v, {k: p.grad_as_array() for k, p in ps.items()}, calls, loss


def test_a_chain_runs_in_node_order_as_unbatched():
    """A range whose ops form one dependency chain cannot batch: the executor runs it in node order
    without planning.  Its records are the front end's (every one a single node; only the order of
    the leaves, which read nothing, may differ), and values, gradients and dropout's draws are the
    unbatched run's, bit for bit; a node beside the chain makes the range planned again."""
    dy.set_backend("cpu_eigen")
    v0, g0, _, _ = _chain_graph(0, branch=False)
    v1, g1, _, loss = _chain_graph(1, branch=False)
    cg = dy.cg()
    got = cg.executor.plan()
    assert got == [[j] for j in range(loss.i + 1)]
    want = autobatch.plan_order(cg.nodes, cg.dims, 0, loss.i + 1, 1)
    assert sorted(got) == sorted(want) and all(len(g) == 1 for g in want)
    assert v1 == v0
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-6, atol=1e-7, err_msg=k)
    _, _, _, loss = _chain_graph(1, branch=True)
    cg = dy.cg()
    assert cg.executor.plan() == autobatch.plan_order(cg.nodes, cg.dims, 0, loss.i + 1, 1)
