"""Expressions are freed when the last reference goes (the accelerator frees the Expression class's
instances by a path of its own): no reference to the class or to a node index is leaked, and a
program's own subclass (with a dict, a finaliser) is still freed by Python's general path."""

from __future__ import annotations

import gc
import sys

import dynet_api as dy
from dynet_api.graph import Expression


def test_expressions_release_their_class_and_index():
    dy.renew_cg()
    x = dy.inputVector([0.5, -1.0])
    before = sys.getrefcount(Expression)
    made = [dy.tanh(x) for _ in range(1000)]
    assert sys.getrefcount(Expression) >= before + 1000
    index = made[-1].i
    held = sys.getrefcount(index)
    del made
    assert sys.getrefcount(Expression) == before
    assert sys.getrefcount(index) <= held
    assert dy.tanh(x).npvalue().tolist() == dy.tanh(x).npvalue().tolist()


def test_a_programs_subclass_keeps_its_dict_and_finaliser():
    finalised = []

    class Named(Expression):
        def __del__(self) -> None:
            finalised.append(self.label)

    dy.renew_cg()
    x = dy.inputVector([0.25])
    t = dy.tanh(x)
    e = Named(t.i, t.v)
    e.label = "mine"
    del e
    gc.collect()
    assert finalised == ["mine"]
