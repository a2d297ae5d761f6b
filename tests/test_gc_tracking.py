"""What graph construction leaves to Python's garbage collector.

A graph's nodes, their ids and attribute tuples and the Expressions over them cannot close a
reference cycle (they hold ints, op records and values, never the graph), so the C accelerator
makes them untracked.  Tracked, a tagger graph of 64 sentences left ~10k tuples per update that
survived into the old generation and set off a full collection over every object of the program
every few updates (5-8 ms an update of a 20 ms construction).  These checks keep them untracked.
"""

from __future__ import annotations

import gc

import pytest

import dynet_api as dy
from dynet_api.accelerator import fastgraph

pytestmark = pytest.mark.skipif(fastgraph is None, reason="the C accelerator is not built")


def _graph():
    """The second of two identical graphs (the first binds the graph to the backend, in Python)."""
    pc = dy.ParameterCollection()
    E = pc.add_lookup_parameters((10, 4))
    W = pc.add_parameters((3, 8))
    lstm = dy.VanillaLSTMBuilder(1, 4, 4, pc)
    for _ in range(2):
        dy.renew_cg()
        xs = [E[w] for w in (1, 2, 3)] + [dy.lookup(E, 4)]
        fw = lstm.initial_state().transduce(xs)
        ys = [dy.tanh(W * dy.concatenate([f, x])) for f, x in zip(fw, xs)]
        loss = dy.esum([dy.sum_elems(y) for y in ys])
    return xs, fw, ys, loss


def test_expressions_of_ops_and_builders_are_not_tracked():
    xs, fw, ys, loss = _graph()
    made = [xs[0]] + fw + ys + [loss]
    assert [e for e in made if gc.is_tracked(e)] == []


def test_node_tuples_of_the_c_paths_are_not_tracked():
    _graph()
    cg = dy.cg()
    tracked = [j for j, node in enumerate(cg.nodes) if gc.is_tracked(node) or gc.is_tracked(node[1])]
    # the leaves Python appends (a parameter's node on its first use in a graph, a builder's zero
    # initial state) may stay tracked: a few per graph; no per-word node
    assert {cg.nodes[j][0].name for j in tracked} <= {"parameter", "constant"}, [cg.nodes[j][0].name for j in tracked]
    lstm_nodes = [n for n in cg.nodes if n[0].name.startswith("vanilla_lstm")]
    assert lstm_nodes and not any(gc.is_tracked(n) for n in lstm_nodes)
