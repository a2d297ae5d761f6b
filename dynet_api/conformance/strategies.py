"""Hypothesis strategies for the edge-case test: random operand dims and (perturbed) attributes of an op.

The same idea as :func:`dynet_api.conformance.edge.random_case`, drawn with
hypothesis so failures shrink to a small example.  Imported only where
hypothesis is installed.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from ..dim import Dim
from ..ops import OpDef
from .samples import samples


def dims() -> st.SearchStrategy[Dim]:
    return st.builds(Dim, st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
                     st.sampled_from([1, 1, 2, 3]))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def mutated(v) -> st.SearchStrategy:
    """Values near ``v`` of the same kind (valid or not); numbers and flags stay."""
    if _is_int(v):
        return st.integers(-2, 6)
    if isinstance(v, Dim):
        return dims()
    if isinstance(v, tuple) and v and all(_is_int(x) for x in v):
        return st.lists(st.integers(-1, 5), max_size=3).map(tuple)
    if isinstance(v, tuple) and v:
        return st.tuples(*(st.one_of(st.just(x), mutated(x)) for x in v))
    return st.just(v)


@st.composite
def edge_cases(draw, op: OpDef):
    """(dims, attrs) for op: half the time a valid sample with one dim changed, else random dims."""
    base = samples(op)
    if base and draw(st.booleans()):
        s = draw(st.sampled_from(base))
        ds = list(s.dims)
        k = draw(st.integers(0, len(ds) - 1))
        d = ds[k]
        nd = list(d.d)
        nd[draw(st.integers(0, len(nd) - 1))] = draw(st.integers(1, 4))
        ds[k] = Dim(tuple(nd), draw(st.sampled_from([d.bd, d.bd, 1, 2, 3])))
    else:
        n = op.nargs if op.nargs >= 0 else draw(st.integers(1, 3))
        first = draw(dims())
        ds = [first if draw(st.booleans()) else draw(dims()) for _ in range(n)]
    attrs = None
    if op.attrs:
        opts: list = []
        for candidate in (ds, list(base[0].dims) if base else None):
            if candidate is None or opts:
                continue
            try:
                opts = [tuple(a) for a in op.sample_attrs(candidate)] if op.sample_attrs else []
            except (IndexError, ValueError, TypeError):
                opts = []
        assume(opts)
        attrs = draw(st.sampled_from(opts))
        if draw(st.booleans()):
            attrs = tuple(draw(st.one_of(st.just(v), mutated(v))) for v in attrs)
    return ds, attrs
