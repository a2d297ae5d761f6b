"""``renew_cg`` empties the graph's node list with the accelerator's ``clear_list`` (each item
fetched ahead of its release): it must behave as ``list.clear``, also when releasing an item runs
code that refills the list, and leave the graph's lists reusable."""

from __future__ import annotations

import gc
import weakref

import pytest

import dynet_api as dy
from dynet_api.accelerator import fastgraph

pytestmark = pytest.mark.skipif(fastgraph is None, reason="no compiled accelerator")


class _Item:
    pass


class _Refills:
    """An item whose release appends to the list being emptied."""

    def __init__(self, target: list) -> None:
        self.target = target

    def __del__(self) -> None:
        self.target.append("appended while clearing")


def test_clear_list_releases_every_item_and_the_list_stays_usable():
    items = [_Item() for _ in range(100)]
    refs = [weakref.ref(x) for x in items]
    lst = list(items)
    del items
    fastgraph.clear_list(lst)
    gc.collect()
    assert lst == [] and all(r() is None for r in refs)
    lst.extend(range(5))
    assert lst == [0, 1, 2, 3, 4]
    fastgraph.clear_list([])  # an empty list, never allocated


def test_clear_list_survives_a_release_that_refills_the_list():
    lst: list = []
    lst.extend([_Item(), _Refills(lst), _Item()])
    fastgraph.clear_list(lst)
    assert lst == ["appended while clearing"]


def test_clear_list_refuses_what_is_not_a_list():
    with pytest.raises(TypeError, match="clear_list"):
        fastgraph.clear_list((1, 2))


def test_graphs_after_renew_keep_their_nodes_right():
    dy.renew_cg()
    a = dy.inputVector([1.0, 2.0])
    b = dy.sum_elems(a * 2.0)
    assert b.value() == pytest.approx(6.0)
    n = len(dy.cg().nodes)
    dy.renew_cg()
    assert len(dy.cg().nodes) == 0
    c = dy.sum_elems(dy.inputVector([3.0, 4.0]) + 1.0)
    assert c.value() == pytest.approx(9.0) and len(dy.cg().nodes) <= n + 1
