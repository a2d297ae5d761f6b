"""Conformance cases generated from the op table.

Every non-leaf op gets labelled samples: operand dims from a default pool
(vectors, matrices, 3-d and 4-d tensors, batch 1 and > 1, a batched operand
beside an unbatched one, broadcasting and size-1 dims, matrix-product shapes)
or from the op's own ``sample_dims``, crossed with the attribute tuples of the
op's ``sample_attrs``.  The op's shape rule keeps what fits, so nothing here
knows what an op computes.  Input values are drawn inside each input's
``domain`` and away from the op's ``kinks``, from a generator seeded by the
case id, so every backend sees the same numbers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..dim import Dim
from ..ops import OP_LIST, OpDef

MAX_SAMPLES = 10  # dims entries per op with their first attribute option
MAX_OTHER_ATTRS = 4  # dims entries for each further attribute option


def _D(d, bd: int = 1) -> Dim:
    return Dim(tuple(d), bd)


# Labelled operand dims, in order of preference (the first accepted ones are kept).
POOL: list[tuple[str, list[Dim]]] = [
    # one operand
    ("vector", [_D((3,))]),
    ("matrix", [_D((3, 4))]),
    ("batched", [_D((3, 2), 3)]),
    ("3d", [_D((2, 3, 2))]),
    ("batched-vector", [_D((4,), 2)]),
    ("size1", [_D((1,))]),
    ("row", [_D((1, 3))]),
    ("3d-batched", [_D((2, 3, 2), 2)]),
    ("4d", [_D((2, 1, 3, 2))]),
    ("column-batched", [_D((3, 1), 2)]),
    ("square", [_D((3, 3))]),
    ("square-batched", [_D((2, 2), 2)]),
    # two operands
    ("vector", [_D((3,)), _D((3,))]),
    ("matrix", [_D((3, 4)), _D((3, 4))]),
    ("batched", [_D((3, 2), 3), _D((3, 2), 3)]),
    ("batched-unbatched", [_D((3, 2), 3), _D((3, 2))]),
    ("unbatched-batched", [_D((3, 2)), _D((3, 2), 3)]),
    ("broadcast-col", [_D((3, 4)), _D((3, 1))]),
    ("broadcast-row", [_D((1, 4), 2), _D((3, 4))]),
    ("scalar", [_D((3, 4)), _D((1,))]),
    ("scalar-batched", [_D((3,), 2), _D((1,), 2)]),
    ("3d", [_D((2, 3, 2)), _D((2, 3, 2))]),
    ("size1", [_D((1,)), _D((1,))]),
    ("matmul", [_D((2, 3)), _D((3, 4))]),
    ("matvec", [_D((2, 3)), _D((3,))]),
    ("matmul-batched", [_D((2, 3), 2), _D((3, 4), 2)]),
    ("matmul-mixed", [_D((2, 3)), _D((3, 4), 3)]),
    ("matvec-batched-w", [_D((2, 3), 2), _D((3,))]),
    ("colwise", [_D((3, 4)), _D((3,))]),
    ("colwise-batched", [_D((3, 4), 2), _D((3,))]),
    # three or more operands
    ("three", [_D((2, 3)), _D((2, 3)), _D((2, 3))]),
    ("three-mixed-batch", [_D((2, 3), 2), _D((2, 3)), _D((2, 3), 2)]),
    ("three-cols", [_D((2, 1)), _D((2, 3)), _D((2, 2))]),
    ("affine", [_D((2,)), _D((2, 3)), _D((3,))]),
    ("affine-batched", [_D((2,)), _D((2, 3)), _D((3,), 3)]),
    ("affine-matrix", [_D((2, 4)), _D((2, 3)), _D((3, 4))]),
    ("affine-vector-bias", [_D((2,), 2), _D((2, 3)), _D((3, 4), 2)]),
    ("affine-two-pairs", [_D((2,)), _D((2, 3)), _D((3,), 2), _D((2, 4)), _D((4,))]),
    ("four", [_D((3,)), _D((3,), 2), _D((3,)), _D((3,))]),
]

# Sampling intervals of the op table's domains.
DOMAINS: dict[str, tuple[float, float]] = {
    "any": (-2.0, 2.0),
    "pos": (0.3, 2.5),
    "unit": (-0.9, 0.9),
    "prob": (0.05, 0.95),
    "gt1": (1.2, 3.0),
    "away0": (0.4, 2.0),  # magnitude; the sign is random
}
KINK_MARGIN = 0.05


@dataclass(frozen=True)
class Sample:
    """One conformance case of one op: operand dims, attributes and a readable label."""

    op: OpDef
    label: str
    dims: tuple[Dim, ...]
    attrs: tuple | None

    @property
    def id(self) -> str:
        return f"{self.op.name}-{self.label}"

    def seed(self) -> int:
        return zlib.crc32(self.id.encode())

    def inputs(self, dtype=np.float64) -> list[np.ndarray]:
        """The case's input values (shaped ``Dim.shape``), exactly representable in float32."""
        rng = np.random.default_rng(self.seed())
        return [draw(rng, d.shape, domain_of(self.op, k), self.op.kinks).astype(np.float32).astype(dtype)
                for k, d in enumerate(self.dims)]

    def upstream(self, out: Dim, dtype=np.float64) -> np.ndarray:
        """A random upstream gradient for the output (the C in loss = sum(C * y))."""
        rng = np.random.default_rng(self.seed() + 1)
        return rng.uniform(-1.0, 1.0, out.shape).astype(np.float32).astype(dtype)

    def repro(self) -> str:
        shown = ", ".join(repr(d) for d in self.dims)
        return f"op {self.op.name!r}, operand dims [{shown}], attrs {self.attrs!r}"


def domain_of(op: OpDef, k: int) -> str:
    dom = op.domain or ("any",)
    return dom[k] if k < len(dom) else dom[-1]


def draw(rng: np.random.Generator, shape: tuple[int, ...], domain: str, kinks=()) -> np.ndarray:
    """Uniform values in ``domain``, at least KINK_MARGIN away from every kink."""
    if domain == "spd":
        return _spd(rng, shape)
    if domain not in DOMAINS:
        raise ValueError(f"unknown sampling domain {domain!r}; known: {', '.join(DOMAINS)}, spd")
    lo, hi = DOMAINS[domain]
    x = rng.uniform(lo, hi, shape)
    if domain == "away0":
        x *= rng.choice([-1.0, 1.0], shape)
    for _ in range(100):
        bad = np.zeros(shape, bool)
        for k in kinks:
            bad |= np.abs(x - k) < KINK_MARGIN
        if not bad.any():
            break
        x[bad] = rng.uniform(lo, hi, int(bad.sum())) * (np.sign(x[bad]) if domain == "away0" else 1.0)
    return x


def _spd(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Well-conditioned symmetric positive definite matrices, one per batch element.

    A shape that is not a square matrix (the shape rule will reject it) gets
    positive values, so edge-case sweeps still reach the shape rule.
    """
    if len(shape) != 3 or shape[0] != shape[1]:
        return rng.uniform(*DOMAINS["pos"], shape)
    n, _, bd = shape
    out = np.empty(shape)
    for b in range(bd):
        m = rng.uniform(-1.0, 1.0, (n, n))
        out[:, :, b] = m @ m.T / n + np.eye(n)
    return out


def attr_label(op: OpDef, attrs: tuple | None) -> str:
    """``d=1``, ``indices=0_2,dim=0``: short enough for a test id."""
    if not attrs:
        return ""

    def show(v) -> str:
        if v is None:
            return "none"
        if isinstance(v, bool):
            return str(int(v))
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, Dim):
            return "x".join(map(str, v.d)) + (f"b{v.bd}" if v.bd > 1 else "")
        if isinstance(v, (tuple, list)):
            return "_".join(show(x) for x in v) or "empty"
        return str(v)

    names = op.attrs if len(op.attrs) == len(attrs) else [f"a{k}" for k in range(len(attrs))]
    return ",".join(f"{n}={show(v)}" for n, v in zip(names, attrs, strict=True))


def _pool_for(op: OpDef) -> list[tuple[str, list[Dim]]]:
    pool = op.sample_dims() if op.sample_dims is not None else POOL
    if op.nargs >= 0:
        pool = [(lab, ds) for lab, ds in pool if len(ds) == op.nargs]
    return pool


def _attr_options(op: OpDef, dims: list[Dim]) -> list[tuple | None]:
    if op.sample_attrs is None:
        return [None] if not op.attrs else []
    try:
        return [tuple(a) for a in op.sample_attrs(dims)]
    except (IndexError, ValueError, TypeError):
        return []  # the generator could not build attributes for these dims


def samples(op: OpDef, first: int = MAX_SAMPLES, others: int = MAX_OTHER_ATTRS) -> list[Sample]:
    """The op's cases: pool dims x attribute options that its shape rule accepts.

    Every dims entry's first accepted attribute option is kept for up to
    ``first`` entries, each later option for up to ``others`` entries; the
    entries of a variadic op alternate between operand counts.
    """
    if op.leaf:
        return []
    by_option: dict[int, list[tuple[tuple[int, int], Sample]]] = {}
    seen: set[str] = set()
    per_count: dict[int, int] = {}
    for label, dims in _pool_for(op):
        rank = 0
        for attrs in _attr_options(op, list(dims)):
            try:
                op.shape(op, list(dims), attrs)
            except (ValueError, IndexError, TypeError):
                continue
            al = attr_label(op, attrs)
            full = f"{label}-{al}" if al else label
            if full in seen:
                continue
            seen.add(full)
            n = per_count.get(len(dims), 0)
            by_option.setdefault(rank, []).append(((n, len(dims)), Sample(op, full, tuple(dims), attrs)))
            rank += 1
        if rank:
            per_count[len(dims)] = per_count.get(len(dims), 0) + 1
    out: list[Sample] = []
    for rank in sorted(by_option):
        ranked = sorted(by_option[rank], key=lambda t: t[0])
        out.extend(s for _, s in ranked[: first if rank == 0 else others])
    return out


def compute_ops() -> list[OpDef]:
    """Ops with kernels of their own to check sample by sample (not leaves)."""
    return [o for o in OP_LIST if not o.leaf]


def random_ops() -> list[OpDef]:
    return [o for o in OP_LIST if o.leaf and o.random]


def missing_samples_reason(op: OpDef) -> str:
    """Why an op got no samples: what to add to its op-table entry."""
    if op.attrs and op.sample_attrs is None:
        return (f"op {op.name!r} has attributes {op.attrs} but no sample_attrs in its op-table entry; "
                "add sample_attrs=lambda dims: [attribute tuples...]")
    return (f"op {op.name!r}: its shape rule accepts none of the sample dims; give its op-table entry "
            "sample_dims=lambda: [(label, [Dim, ...]), ...]")
