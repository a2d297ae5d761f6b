"""The op table: every primitive op declared once.

An entry names the op, its arity, its attributes, its shape rule (``Dim`` in,
``Dim`` out, raising :class:`DimError` that names the op and the dims), which
inputs carry a gradient, and the input domain the conformance suite samples
from.  The public functions (:mod:`dynet_api.functions`), the graph, the
``backends`` listing and the conformance engine all read this table; a backend
implements one forward and one backward kernel per entry, keyed by ``name``.

Composite functions (``dropout``, ``noise``, ``emax``, ``layer_norm``...) are
written in :mod:`dynet_api.functions` over these primitives and need no
kernels of their own.
"""

from __future__ import annotations

import functools
import keyword
import math
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .dim import MAX_DIMS, Dim, truncated


class DimError(ValueError):
    """A shape rule rejected its operands; raised before the graph changes."""


@dataclass(eq=False)
class OpDef:
    name: str
    nargs: int  # -1: variadic (at least one)
    shape: Callable[[OpDef, list, Any], Dim]
    attrs: tuple[str, ...] = ()
    doc: str = ""
    # Inputs that never receive a gradient (indices into the argument list).
    nograd: tuple[int, ...] = ()
    # Sampling domain of each input for the conformance suite: "any", "pos"
    # (> 0), "unit" (-1, 1), "prob" (0, 1), "gt1" (> 1), "away0" (|x| > 0.1).
    domain: tuple[str, ...] = ("any",)
    leaf: bool = False  # inputs, constants, random tensors, parameters
    random: bool = False
    # Elementwise kinks: the finite-difference check keeps inputs this far from
    # these points so the central difference is well defined.
    kinks: tuple[float, ...] = ()
    smooth: bool = True  # False: gradient checked against the reference only
    # Conformance samples (dynet_api.conformance.samples): ``sample_dims()`` gives
    # labelled operand dims replacing the default pool, ``sample_attrs(dims)`` the
    # attribute tuples to try with them (needed by ops with attributes; the shape
    # rule drops what does not fit).  Random ops give ``moments(attrs)`` -> (mean,
    # variance) of one sample.
    sample_dims: Callable[[], list] | None = None
    sample_attrs: Callable[[list], list] | None = None
    moments: Callable[[tuple], tuple] | None = None
    # Attribute domains, checked by the front end before any backend sees the node, so every
    # backend refuses the same values: ((attribute name, ATTR_DOMAINS key), ...).
    attr_domains: tuple[tuple[str, str], ...] = ()
    # Autobatching (dynet_api.autobatch): "map" when batch element b of the output depends only on
    # batch element b of each operand (operands of batch 1 broadcast), so nodes of one signature can
    # run as one call over operands joined along the batch; "none" never merges the op (it reduces
    # or reorders the batch, draws random numbers, or its kernel is not batch-parallel).
    # ``batch_attrs`` names the attributes that hold one entry per batch element (indices); they are
    # joined too, and are left out of the signature.  ``batch_shared`` lists operands the kernel takes
    # unbatched (weights): a group shares one node there.  An op with a ``b`` attribute (sum over the
    # batch too) maps only where ``b`` is false.
    batch: str = "none"
    batch_attrs: tuple[str, ...] = ()
    batch_shared: tuple[int, ...] = ()
    id: int = field(default=-1)
    # The named tuple a Python kernel receives the node's attributes as (``a.stride``, ``a.is_valid``),
    # made from ``attrs`` by :func:`_op`; None for an op without attributes.  See :func:`by_name`.
    Attrs: type | None = field(default=None, repr=False)

    def fail(self, dims, msg: str = "") -> DimError:
        shown = " ".join(repr(d) for d in dims)
        return DimError(f"{self.name}: {msg + ': ' if msg else ''}got [{shown}]")


OPS: dict[str, OpDef] = {}
OP_LIST: list[OpDef] = []

# name -> (test, wording, a value outside the domain for the conformance sweep); NaN fails every test.
ATTR_DOMAINS: dict[str, tuple[Callable[[float], bool], str, float]] = {
    "nonneg": (lambda v: v >= 0, ">= 0", -0.5),
    "pos": (lambda v: v > 0, "> 0", 0.0),
    "prob": (lambda v: 0 <= v <= 1, "in [0, 1]", 1.5),
}


def check_attr(op: OpDef, name: str, value, what: str | None = None) -> None:
    """Raise ValueError naming the function (``what``, else the op) if ``value`` is outside the
    declared domain of the op's attribute ``name``."""
    for attr, dom in op.attr_domains:
        if attr == name:
            test, wording, _ = ATTR_DOMAINS[dom]
            if not test(value):
                raise ValueError(f"{what or op.name}: {name} must be {wording}, got {value!r}")


def check_attrs(op: OpDef, attrs) -> None:
    """Every declared attribute domain of the op, on a node's attribute tuple."""
    for attr, _ in op.attr_domains:
        check_attr(op, attr, attrs[op.attrs.index(attr)])


def _checked(rule):
    def shape(op, dims, attrs):
        check_attrs(op, attrs)
        return rule(op, dims, attrs)
    shape.__doc__ = rule.__doc__
    return shape


def attrs_class(name: str, attrs: tuple[str, ...]) -> type | None:
    """The named tuple of op ``name``'s attributes (``None`` without attributes); the names must be
    Python identifiers that are not keywords (and C++ names: scripts/gen_op_attrs.py reads them)."""
    if not attrs:
        return None
    bad = [a for a in attrs if not a.isidentifier() or keyword.iskeyword(a) or a.startswith("_")]
    if bad or len(set(attrs)) != len(attrs):
        raise ValueError(f"op {name}: attribute names must be distinct Python identifiers, not keywords and "
                         f"not starting with '_'; got {list(attrs)}")
    return namedtuple(f"{name}_attrs", attrs)


def _op(name, nargs, shape, **kw) -> OpDef:
    if kw.get("attr_domains"):
        shape = _checked(shape)  # the memoised shape path then checks each new attribute tuple
    op = OpDef(name, nargs, shape, **kw)
    op.Attrs = attrs_class(name, op.attrs)
    op.id = len(OP_LIST)
    OPS[name] = op
    OP_LIST.append(op)
    return op


# ---------------------------------------------------------------- Python kernels: attributes by name


def _attrs_error(op: OpDef, a) -> TypeError | None:
    """The error for attributes that do not fit ``op``'s record (None when they fit)."""
    n = None if a is None else len(a) if isinstance(a, tuple | list) else -1
    if n == len(op.attrs):
        return None
    got = "None" if n is None else f"{n} values" if n >= 0 else f"a {type(a).__name__}"
    return TypeError(f"{op.name}: its kernels take the attributes ({', '.join(op.attrs)}) as a tuple, got {got}")


def by_name(op: OpDef, kernel: Callable, backward: bool = False) -> Callable:
    """``kernel`` (a forward kernel ``f(xs, a, d)``, or ``b(xs, y, dy, a, d, i)`` if ``backward``)
    handed the node's attribute tuple as an ``op.Attrs`` named tuple, so it reads ``a.stride``;
    ``kernel`` itself for an op without attributes.  The wrapper's ``attrs_class`` is ``op.Attrs``
    (the tests check every table with it) and ``inspect.unwrap`` gives ``kernel`` back.

    The one way every Python kernel table receives attributes by name (the C++ kernels use
    csrc/op_attrs.h, generated from the same records).  Per call it costs one tuple copy; an
    attribute tuple that does not fit the record raises a TypeError naming the op and its attributes.
    """
    cls = op.Attrs
    if cls is None:
        return kernel
    new = tuple.__new__

    if backward:
        @functools.wraps(kernel)  # the kernel's name, and ``__wrapped__`` for inspect.unwrap
        def named_backward(xs, y, dy, a, d, i):
            try:
                return kernel(xs, y, dy, new(cls, a), d, i)
            except (TypeError, IndexError) as e:  # checked here, off the fast path
                err = _attrs_error(op, a)
                if err is None:
                    raise
                raise err from e

        named_backward.attrs_class = cls  # type: ignore[attr-defined]
        return named_backward

    @functools.wraps(kernel)
    def named_forward(xs, a, d):
        try:
            return kernel(xs, new(cls, a), d)
        except (TypeError, IndexError) as e:
            err = _attrs_error(op, a)
            if err is None:
                raise
            raise err from e

    named_forward.attrs_class = cls  # type: ignore[attr-defined]
    return named_forward


def kernels_by_name(table: dict[str, Callable], backward: bool = False) -> dict[str, Callable]:
    """A kernel table (op name -> kernel) whose kernels receive attributes by name (:func:`by_name`)."""
    return {name: by_name(OPS[name], k, backward) for name, k in table.items()}


# ---------------------------------------------------------------- shape rules


def _batch(op, dims) -> int:
    bd = 1
    for d in dims:
        if d.bd != 1:
            if bd != 1 and d.bd != bd:
                raise op.fail(dims, "batch sizes must match or be 1")
            bd = d.bd
    return bd


def s_leaf(op, dims, attrs):
    return attrs[-1]  # leaves carry their Dim as the last attribute


def s_same(op, dims, attrs):
    return dims[0]


def s_broadcast(op, dims, attrs):
    """Elementwise with DyNet's broadcasting of size-1 dims and of batch 1.

    The result has as many dims as the longer operand, trailing 1s included
    (DyNet's CwiseSum/CwiseMultiply/CwiseQuotient: {3,3,1} + {3,3} is {3,3,1})."""
    a, b = dims
    if a.d == b.d:
        if a.bd == b.bd:
            return a
        return Dim(a.d, _batch(op, dims))
    nd = max(len(a.d), len(b.d))
    pa, pb = a.padded(nd), b.padded(nd)
    out = []
    for x, y in zip(pa, pb):
        if x != y and x != 1 and y != 1:
            raise op.fail(dims, "dims must match or be 1")
        out.append(max(x, y))
    return Dim(tuple(out), _batch(op, dims))


def s_same_all(op, dims, attrs):
    """All operands have the same data dims; batch 1 broadcasts."""
    d0 = dims[0].d
    for d in dims:
        if d.d != d0:
            raise op.fail(dims, "all operands must have the same dims")
    return Dim(d0, _batch(op, dims))


def _same_truncated(op, dims) -> tuple[int, ...]:
    t0 = truncated(dims[0].d)
    for d in dims:
        if truncated(d.d) != t0:
            raise op.fail(dims, "all operands must have the same dims (up to trailing 1s)")
    return t0


def s_sum_list(op, dims, attrs):
    """esum: operands equal up to trailing size-1 dims (DyNet's Sum compares truncate());
    the first one's dims; batch 1 broadcasts."""
    _same_truncated(op, dims)
    return Dim(dims[0].d, _batch(op, dims))


def s_lse_list(op, dims, attrs):
    """logsumexp of a list: as esum, the dims truncated (DyNet's LogSumExp)."""
    return Dim(_same_truncated(op, dims), _batch(op, dims))


def s_matmul(op, dims, attrs):
    a, b = dims
    if len(a.d) > 2 or len(b.d) > 2:
        raise op.fail(dims, "cannot multiply tensors of more than 2 dims")
    if a.cols() != b.rows():
        raise DimError(f"{op.name}: Mismatched input dimensions in MatrixMultiply: [{a} {b}]")
    bd = _batch(op, dims)
    if len(b.d) == 1:
        return Dim((a.rows(),), bd)
    return Dim((a.rows(), b.cols()), bd)


def s_affine(op, dims, attrs):
    if len(dims) % 2 != 1:
        raise op.fail(dims, "expects [b, W1, x1, W2, x2, ...]")
    bias = dims[0]
    out = None
    for k in range(1, len(dims), 2):
        p = s_matmul(op, [dims[k], dims[k + 1]], None)
        if out is not None and p.d != out:
            raise op.fail(dims, "every W*x must have the same dims")
        out = p.d
    if out is None:
        return bias
    # The bias matches W*x, or is a vector added to every column.
    if bias.d != out and not (bias.d[0] == out[0] and bias.size() == bias.d[0]):
        raise op.fail(dims, "the bias must match W*x or be a vector with as many rows")
    return Dim(out, _batch(op, dims))


def s_colwise_add(op, dims, attrs):
    x, b = dims
    if len(b.d) != 1 and b.d[1:] != (1,) * (len(b.d) - 1) or b.d[0] != x.d[0] or len(x.d) > 2:
        raise op.fail(dims, "needs a matrix and a vector with as many rows")
    return Dim(x.d, _batch(op, dims))


def s_scalar_out(op, dims, attrs):
    return Dim((1,), _batch(op, dims))


def s_pow(op, dims, attrs):
    if dims[1].size() != 1:
        raise op.fail(dims, "the exponent must be a scalar")
    return Dim(dims[0].d, _batch(op, dims))


def s_dot(op, dims, attrs):
    if dims[0].d != dims[1].d:
        raise op.fail(dims, "operands must have the same dims")
    return Dim((1,), _batch(op, dims))


def s_nobatch_pair_scalar(op, dims, attrs):
    for d in dims:
        if d.bd != 1:
            raise op.fail(dims, "does not support batched input")
    if dims[0].d != dims[1].d:
        raise op.fail(dims, "operands must have the same dims")
    return Dim((1,))


def _check_axis(op, dims, d, nd):
    if not 0 <= d < nd:
        raise op.fail(dims, f"dimension {d} out of range")


def s_softmax(op, dims, attrs):
    x = dims[0]
    d = attrs[0]
    if len(x.d) > 2:
        raise op.fail(dims, "supports vectors and matrices")
    _check_axis(op, dims, d, len(x.d))  # as DyNet: d < nd, never the batch axis
    return x


def s_log_softmax(op, dims, attrs):
    x = dims[0]
    if len(x.d) > 2:
        raise op.fail(dims, "supports vectors and matrices")
    restrict = attrs[0]
    if restrict is not None:
        if not restrict:
            raise op.fail(dims, "restrict needs at least one index")
        if x.bd != 1 or len(x.d) != 1:
            raise op.fail(dims, "restricted log_softmax needs an unbatched vector")
        for i in restrict:
            if not 0 <= i < x.d[0]:
                raise op.fail(dims, f"restrict index {i} out of range")
    return x


def _delete_dims(d: tuple[int, ...], gone) -> tuple[int, ...]:
    out = tuple(n for k, n in enumerate(d) if k not in gone)
    return out or (1,)


def s_reduce_dim(op, dims, attrs):
    x = dims[0]
    axes = attrs[0]
    for a in axes:
        _check_axis(op, dims, a, len(x.d))
    if len(set(axes)) != len(axes):
        raise op.fail(dims, f"repeated dimension in {list(axes)}")
    return Dim(_delete_dims(x.d, set(axes)), 1 if attrs[1] else x.bd)


def s_logsumexp_dim(op, dims, attrs):
    x = dims[0]
    _check_axis(op, dims, attrs[0], len(x.d))
    return Dim(_delete_dims(x.d, {attrs[0]}), x.bd)


def s_transpose(op, dims, attrs):
    x = dims[0]
    perm = attrs[0]
    nd = max(len(perm), len(x.d))
    if len(perm) > MAX_DIMS:
        raise op.fail(dims, f"{list(perm)} has more than {MAX_DIMS} dims")
    if sorted(perm) != list(range(len(perm))) or len(perm) < len(x.d):
        raise op.fail(dims, f"{list(perm)} is not a permutation of the dims")
    p = x.padded(nd)
    return Dim(truncated(tuple(p[k] for k in perm)), x.bd)


def s_reshape(op, dims, attrs):
    x = dims[0]
    new = attrs[0]
    if new.total() != x.total():
        raise DimError(f"reshape: cannot reshape {x} ({x.total()} values) to {new} ({new.total()} values)")
    return new


def s_concat(op, dims, attrs):
    d = attrs[0]
    if not 0 <= d < MAX_DIMS:
        raise op.fail(dims, f"dimension {d} out of range")
    nd = max(max(len(x.d) for x in dims), d + 1)
    first = list(dims[0].padded(nd))
    total = 0
    for x in dims:
        p = x.padded(nd)
        for k in range(nd):
            if k != d and p[k] != first[k]:
                raise op.fail(dims, f"dims must match except along dimension {d}")
        total += p[d]
    first[d] = total
    return Dim(truncated(tuple(first)), _batch(op, dims))


def s_concat_to_batch(op, dims, attrs):
    d0 = dims[0].d
    for x in dims:
        if x.d != d0:
            raise op.fail(dims, "all operands must have the same dims")
    return Dim(d0, sum(x.bd for x in dims))


def _check_indices(op, dims, idx, n, what):
    for i in idx:
        if not 0 <= i < n:
            raise IndexError(f"{op.name}: {what} {i} out of range for {dims[0]} (size {n})")


def s_select_rows(op, dims, attrs):
    x = dims[0]
    if len(x.d) > 2:
        raise op.fail(dims, "supports vectors and matrices")
    _check_indices(op, dims, attrs[0], x.d[0], "row")
    return Dim((len(attrs[0]),) + x.d[1:], x.bd)


def s_select_cols(op, dims, attrs):
    x = dims[0]
    if len(x.d) > 2:
        raise op.fail(dims, "supports vectors and matrices")
    _check_indices(op, dims, attrs[0], x.cols(), "column")
    return Dim((x.d[0], len(attrs[0])), x.bd)


def s_pick(op, dims, attrs):
    x = dims[0]
    idx, d = attrs
    if not idx:
        raise op.fail(dims, "needs at least one index")
    _check_axis(op, dims, d, len(x.d))
    _check_indices(op, dims, idx, x.d[d], "index")
    bd = x.bd
    if len(idx) > 1:
        if bd != 1 and bd != len(idx):
            raise op.fail(dims, f"{len(idx)} indices for batch size {bd}")
        bd = len(idx)
    return Dim(_delete_dims(x.d, {d}), bd)


def s_pick_batch_elems(op, dims, attrs):
    x = dims[0]
    _check_indices(op, dims, attrs[0], x.bd, "batch element")
    return Dim(x.d, len(attrs[0]))


def s_pickrange(op, dims, attrs):
    x = dims[0]
    s, e, d = attrs
    _check_axis(op, dims, d, len(x.d))
    if not 0 <= s < e <= x.d[d]:
        raise IndexError(f"{op.name}: range [{s}, {e}) out of bounds for {x} along dimension {d}")
    out = list(x.d)
    out[d] = e - s
    return Dim(tuple(out), x.bd)


def s_class_loss(op, dims, attrs):
    x = dims[0]
    idx = attrs[0]
    if not _looks_like_vector(x):  # {n} or {n,1}, as DyNet's LooksLikeVector
        raise op.fail(dims, "needs a vector of scores")
    if len(idx) != x.bd:
        # The rule cannot see which form was called, so the hint holds for both.
        hint = f" ({op.name}_batch takes a list)" if len(idx) == 1 else ""
        raise op.fail(dims, f"{len(idx)} {'index' if len(idx) == 1 else 'indices'} for batch size {x.bd}: "
                            f"give one per batch element{hint}")
    _check_indices(op, dims, idx, x.d[0], "index")
    return Dim((1,), x.bd)


def s_argmax(op, dims, attrs):
    x = dims[0]
    if len(x.d) != 1:
        raise op.fail(dims, "supports vectors only")
    return x


# ---------------------------------------------------------------- conformance samples
# Attribute tuples the conformance suite tries with given operand dims (a list of
# Dim); they may over-generate, since the shape rule rejects what does not fit.


def _consts(*cs):
    return lambda ds: [(c,) for c in cs]


def _axes(ds):
    return [(0,), (1,)]


def _n0(ds) -> int:
    return ds[0].d[0]


def _a_reshape(ds):
    x = ds[0]
    return [(Dim(tuple(reversed(x.d)), x.bd),), (Dim((x.size(),), x.bd),)]


def _a_pick(ds):
    n, bd = _n0(ds), ds[0].bd
    return [((n - 1,), 0), ((0,), 1), (tuple(k % n for k in range(max(bd, 2))), 0)]


def _a_pickrange(ds):
    return [(0, 1, 0), (1, _n0(ds), 0), (0, 2, 1)]


def _a_reduce(ds):
    return [((0,), False), ((1,), False), ((0,), True), ((0, 1), False), ((), True)]


def _a_moment(ds):
    return [((0,), False, 2, 0), ((0, 1), True, 1, 0), ((1,), False, 3, 5)]


def _gold(ds):
    n, bd = _n0(ds), ds[0].bd
    return tuple((n - 1 - k) % n for k in range(bd))


# Helpers of the records' conformance samples (OpDef.sample_dims / sample_attrs).


def _Db(d, bd: int = 1) -> Dim:
    return Dim(tuple(d), bd)


def _attr_list(*options):
    return lambda ds: list(options)


def _a_strided(ds):
    x = ds[0]
    nd = len(x.d)
    return [((2,), (0,), ()), ((1, 2), (1, 0), ()), ((1,) * nd + (2,), (0,) * nd + (1,), ()),
            ((3,), (), (x.d[0],))]


def _a_hinge_dim(ds):
    x = ds[0]
    r, c = x.d[0], x.cols()
    per_col = tuple(tuple((k + b) % r for k in range(c)) for b in range(x.bd))
    per_row = (tuple((k + 1) % c for k in range(r)),)
    return [(per_col, 0, 1.0), (per_row, 1, 0.5)]


_H, _I = 2, 3  # LSTM sample sizes: hidden, input
_LSTM_W = [_Db((4 * _H, _I)), _Db((4 * _H, _H)), _Db((4 * _H,))]


# ---------------------------------------------------------------- the table

D_ANY, D_POS, D_UNIT, D_PROB, D_GT1 = "any", "pos", "unit", "prob", "gt1"

# Leaves: attrs end with the node's Dim.
_op("input", 0, s_leaf, leaf=True, attrs=("data", "dim"), doc="A tensor from host data.")
_op("constant", 0, s_leaf, leaf=True, attrs=("value", "dim"), doc="A tensor filled with one value.")
_op("random_normal", 0, s_leaf, leaf=True, random=True, attrs=("mean", "stddev", "dim"),
    attr_domains=(("stddev", "nonneg"),),
    doc="N(mean, stddev^2) samples.", sample_attrs=lambda ds: [(0.5, 2.0)], moments=lambda a: (a[0], a[1] ** 2))
_op("random_bernoulli", 0, s_leaf, leaf=True, random=True, attrs=("p", "scale", "dim"), attr_domains=(("p", "prob"),),
    doc="Bernoulli(p) * scale samples.", sample_attrs=lambda ds: [(0.3, 2.0)],
    moments=lambda a: (a[0] * a[1], a[1] ** 2 * a[0] * (1 - a[0])))
_op("random_uniform", 0, s_leaf, leaf=True, random=True, attrs=("left", "right", "dim"),
    doc="U(left, right) samples.", sample_attrs=lambda ds: [(-1.0, 3.0)],
    moments=lambda a: ((a[0] + a[1]) / 2, (a[1] - a[0]) ** 2 / 12))
_op("random_gumbel", 0, s_leaf, leaf=True, random=True, attrs=("mu", "beta", "dim"), attr_domains=(("beta", "nonneg"),),
    doc="Gumbel(mu, beta) samples.", sample_attrs=lambda ds: [(0.5, 2.0)],
    moments=lambda a: (a[0] + 0.5772156649015329 * a[1], (math.pi * a[1]) ** 2 / 6))
_op("parameter", 0, s_leaf, leaf=True, attrs=("storage", "update", "dim"), doc="A parameter's value.")
_op("lookup", 0, s_leaf, leaf=True, attrs=("storage", "indices", "update", "dim"),
    doc="Rows of a lookup table, one per batch element.", batch="map", batch_attrs=('indices',))

# Arithmetic.
_op("add", 2, s_broadcast, doc="x + y with broadcasting.", batch="map")
_op("negate", 1, s_same, doc="-x.", batch="map")
_op("plus_const", 1, s_same, attrs=("c",), doc="x + c.", sample_attrs=_consts(0.7), batch="map")
_op("const_minus", 1, s_same, attrs=("c",), doc="c - x.", sample_attrs=_consts(0.7), batch="map")
_op("scalar_mult", 1, s_same, attrs=("c",), doc="x * c for a number c.", sample_attrs=_consts(-1.5), batch="map")
_op("cmult", 2, s_broadcast, doc="Elementwise product with broadcasting.", batch="map")
_op("cdiv", 2, s_broadcast, domain=(D_ANY, "away0"), doc="Elementwise quotient with broadcasting.", batch="map")
_op("matmul", 2, s_matmul, doc="Matrix product (batched).", batch="map")
_op("affine_transform", -1, s_affine, doc="b + W1*x1 + W2*x2 + ...", batch="map")
_op("colwise_add", 2, s_colwise_add, doc="Adds a vector to every column of a matrix.", batch="map")
_op("sum", -1, s_sum_list, doc="Sum of a list of expressions.", batch="map")
_op("average", -1, s_same_all, doc="Mean of a list of expressions.", batch="map")
_op("bmin", 2, s_broadcast, smooth=False, doc="Elementwise min.", batch="map")
_op("bmax", 2, s_broadcast, smooth=False, doc="Elementwise max.", batch="map")
_op("pow", 2, s_pow, domain=(D_POS, "any"), doc="x ** y for a scalar y.", batch="map")
_op("dot_product", 2, s_dot, doc="Sum of x * y.", batch="map")
_op("squared_norm", 1, s_scalar_out, doc="Sum of x^2.", batch="map")
_op("l2_norm", 1, s_scalar_out, doc="sqrt(sum of x^2).", batch="map")

# Elementwise unary.
_op("tanh", 1, s_same, doc="Hyperbolic tangent of each element, tanh(x).", batch="map")
_op("logistic", 1, s_same, doc="Logistic sigmoid of each element, 1 / (1 + exp(-x)).", batch="map")
_op("rectify", 1, s_same, kinks=(0.0,), doc="Rectified linear unit of each element, max(x, 0).", batch="map")
_op("elu", 1, s_same, attrs=("alpha",), kinks=(0.0,), sample_attrs=_consts(1.0, 0.5), batch="map")
_op("selu", 1, s_same, kinks=(0.0,), doc="Scaled exponential linear unit of each element (fixed scale and alpha).",
    batch="map")
_op("softsign", 1, s_same, doc="Softsign of each element, x / (1 + abs(x)).", batch="map")
_op("exp", 1, s_same, doc="Natural exponential of each element, e^x.", batch="map")
_op("log", 1, s_same, domain=(D_POS,), doc="Natural logarithm of each element (x > 0).", batch="map")
_op("sqrt", 1, s_same, domain=(D_POS,), doc="Square root of each element (x >= 0).", batch="map")
_op("square", 1, s_same, doc="Square of each element, x^2.", batch="map")
_op("cube", 1, s_same, doc="Cube of each element, x^3.", batch="map")
_op("abs", 1, s_same, kinks=(0.0,), doc="Absolute value of each element, abs(x).", batch="map")
_op("log_sigmoid", 1, s_same, doc="Log of the logistic sigmoid of each element, -log(1 + exp(-x)), computed stably.",
    batch="map")
_op("erf", 1, s_same, doc="Gauss error function of each element.", batch="map")
_op("lgamma", 1, s_same, domain=(D_POS,), doc="Log of the gamma function of each element (x > 0).", batch="map")

# Softmax family.
_op("softmax", 1, s_softmax, attrs=("d",), doc="Softmax over dimension d.", sample_attrs=_axes, batch="map")
_op("log_softmax", 1, s_log_softmax, attrs=("restrict",), doc="Log-softmax over each column (or a subset).",
    sample_attrs=lambda ds: [(None,), (tuple(sorted({0, _n0(ds) - 1})),)], batch="map")
_op("logsumexp", -1, s_lse_list, doc="Elementwise log-sum-exp over a list.", batch="map")
_op("logsumexp_dim", 1, s_logsumexp_dim, attrs=("d",), doc="Log-sum-exp along dimension d.", sample_attrs=_axes,
    batch="map")

# Shape.
_op("transpose", 1, s_transpose, attrs=("dims",), sample_attrs=lambda ds: [((1, 0),), ((2, 0, 1),), ((0, 1),)],
    batch="map")
_op("reshape", 1, s_reshape, attrs=("dim",), sample_attrs=_a_reshape)
_op("concatenate", -1, s_concat, attrs=("d",), sample_attrs=_axes, batch="map")
_op("concatenate_to_batch", -1, s_concat_to_batch)
_op("select_rows", 1, s_select_rows, attrs=("rows",), sample_attrs=lambda ds: [((_n0(ds) - 1, 0, _n0(ds) - 1),)],
    batch="map")
_op("select_cols", 1, s_select_cols, attrs=("cols",), sample_attrs=lambda ds: [((ds[0].cols() - 1, 0, 0),)],
    batch="map")
_op("pick", 1, s_pick, attrs=("indices", "dim"), doc="One index for all batch elements, or one per element.",
    sample_attrs=_a_pick, batch="map", batch_attrs=('indices',))
_op("pick_batch_elems", 1, s_pick_batch_elems, attrs=("indices",),
    sample_attrs=lambda ds: [((ds[0].bd - 1,),), (tuple(range(ds[0].bd))[::-1] + (0,),)])
_op("pickrange", 1, s_pickrange, attrs=("start", "end", "d"), sample_attrs=_a_pickrange, batch="map")

# Reductions.
_op("sum_dim", 1, s_reduce_dim, attrs=("dims", "b"), doc="Sum over dims (and the batch if b).", sample_attrs=_a_reduce,
    batch="map")
_op("moment_dim", 1, s_reduce_dim, attrs=("dims", "b", "r", "n"),
    doc="Raw moment of order r over dims; n > 0 overrides the divisor.", sample_attrs=_a_moment, batch="map")

# Losses.
_op("pickneglogsoftmax", 1, s_class_loss, attrs=("indices",), sample_attrs=lambda ds: [(_gold(ds),)],
    batch="map", batch_attrs=('indices',))
_op("hinge", 1, s_class_loss, attrs=("indices", "m"), smooth=False, attr_domains=(("m", "nonneg"),),
    sample_attrs=lambda ds: [(_gold(ds), 1.0), (_gold(ds), 0.5)], batch="map", batch_attrs=('indices',))
_op("binary_log_loss", 2, s_nobatch_pair_scalar, domain=(D_PROB, D_PROB))
_op("squared_distance", 2, s_dot, batch="map")
_op("l1_distance", 2, s_nobatch_pair_scalar, smooth=False)
_op("huber_distance", 2, s_nobatch_pair_scalar, attrs=("c",), smooth=False, attr_domains=(("c", "pos"),),
    sample_attrs=_consts(1.0), batch="map")

# Gradient control.
_op("nobackprop", 1, s_same, nograd=(0,), batch="map")
# smooth=False: its gradient is lambd times the derivative by design, so no finite-difference check.
_op("scale_gradient", 1, s_same, attrs=("lambd",), smooth=False, sample_attrs=_consts(0.5), batch="map")
_op("argmax", 1, s_argmax, attrs=("straight_through",), smooth=False, sample_attrs=_consts(False, True), batch="map")


# ================================================================ issue 6: the rest of DyNet's op set
# Shape rules and entries of the [B] ops of API_REFERENCE.md.  Domains added here
# for the conformance suite: "spd" (a square matrix, symmetric positive definite
# and well conditioned: inverse, logdet).  Ops whose DyNet node does not support
# batching reject batched operands in their shape rule (inventory section 11, item 9).


def _nobatch(op, dims) -> None:
    for d in dims:
        if d.bd != 1:
            raise op.fail(dims, "does not support batched input (DyNet's node has no minibatch support)")


def _looks_like_vector(d: Dim) -> bool:
    return all(n == 1 for n in d.d[1:])


def _pair_ints(op, dims, v, what) -> None:
    if len(v) != 2 or any(int(s) < 1 for s in v):
        raise op.fail(dims, f"{what} must be two positive ints, got {list(v)}")


def s_same_nobatch(op, dims, attrs):
    _nobatch(op, dims)
    return dims[0]


def s_vector_nobatch(op, dims, attrs):
    _nobatch(op, dims)
    if not _looks_like_vector(dims[0]):
        raise op.fail(dims, "needs a vector")
    return dims[0]


def s_sparsemax_loss(op, dims, attrs):
    x = s_vector_nobatch(op, dims, attrs)
    q = attrs[0]
    if not q:
        raise op.fail(dims, "the target support must not be empty")
    _check_indices(op, dims, q, x.d[0], "target index")
    return Dim((1,))


def s_constrained_softmax(op, dims, attrs):
    _nobatch(op, dims)
    x, u = dims
    if not (_looks_like_vector(x) and _looks_like_vector(u)) or x.size() != u.size():
        raise op.fail(dims, "needs two vectors of the same size (scores, upper bounds)")
    return x


def s_strided_select(op, dims, attrs):
    x = dims[0]
    strides, lo, hi = attrs
    nd = len(x.d)
    if max(len(strides), len(lo), len(hi)) > nd + 1:
        raise op.fail(dims, f"more entries than dims + batch ({nd + 1}) in strides/from/to")
    for s in strides:
        if s < 1:
            raise op.fail(dims, f"strides must be positive, got {list(strides)}")
    out = list(x.d)
    bd = x.bd
    for k in range(max(len(strides), len(lo), len(hi))):
        size = x.d[k] if k < nd else x.bd
        start = lo[k] if k < len(lo) else 0
        stop = hi[k] if k < len(hi) else size
        step = strides[k] if k < len(strides) else 1
        if not (0 <= start < size and start < stop <= size):
            what = f"dimension {k}" if k < nd else "the batch"
            raise IndexError(f"{op.name}: range [{start}, {stop}) out of bounds (or empty) for {what} of {x}")
        n = -(-(stop - start) // step)
        if k < nd:
            out[k] = n
        else:
            bd = n
    return Dim(tuple(out), bd)


def s_max_dim(op, dims, attrs):
    x = dims[0]
    if len(x.d) > 3:
        raise op.fail(dims, "supports tensors of up to 3 dims")
    _check_axis(op, dims, attrs[0], len(x.d))
    return Dim(_delete_dims(x.d, {attrs[0]}), x.bd)


def s_same_axis(op, dims, attrs):
    _check_axis(op, dims, attrs[0], len(dims[0].d))
    return dims[0]


def s_kmax(op, dims, attrs):
    x = dims[0]
    k, d = attrs
    if len(x.d) > 3:
        raise op.fail(dims, "supports tensors of up to 3 dims")
    _check_axis(op, dims, d, len(x.d))
    if not 1 <= k <= x.d[d]:
        raise op.fail(dims, f"k = {k} must be between 1 and the size {x.d[d]} of dimension {d}")
    out = list(x.d)
    out[d] = k
    return Dim(tuple(out), x.bd)


def s_std_dim(op, dims, attrs):
    if not attrs[0] and not attrs[1]:
        raise op.fail(dims, "needs at least one dimension, or b=True")
    return s_reduce_dim(op, dims, attrs)


def s_hinge_dim(op, dims, attrs):
    x = dims[0]
    idx, d, m = attrs
    if len(x.d) != 2:
        raise op.fail(dims, "expects a matrix")
    if d not in (0, 1):
        raise op.fail(dims, f"d must be 0 or 1, got {d}")
    if len(idx) not in (1, x.bd):
        raise op.fail(dims, f"{len(idx)} lists of indices for batch size {x.bd}")
    other = x.d[1 - d]
    for v in idx:
        if len(v) != other:
            raise op.fail(dims, f"needs one index per {'column' if d == 0 else 'row'} ({other}), got {len(v)}")
        _check_indices(op, dims, v, x.d[d], "index")
    return Dim((other,), x.bd)


def s_pairwise_rank(op, dims, attrs):
    x, y = dims
    if x.d != y.d or x.d[0] != 1 or len(x.d) > 2:
        raise op.fail(dims, "needs two row vectors ({1} or {1,n}) of the same dims")
    return Dim(x.d, _batch(op, dims))


def s_poisson(op, dims, attrs):
    _nobatch(op, dims)
    if dims[0].size() != 1:
        raise op.fail(dims, "needs a scalar log-lambda")
    if attrs[0] < 0:
        raise op.fail(dims, f"the observed count must be >= 0, got {attrs[0]}")
    return dims[0]


def _square_nobatch(op, dims):
    _nobatch(op, dims)
    x = dims[0]
    if len(x.d) > 2 or x.rows() != x.cols():
        raise op.fail(dims, "needs a square matrix")
    return x


def s_inverse(op, dims, attrs):
    return _square_nobatch(op, dims)


def s_logdet(op, dims, attrs):
    _square_nobatch(op, dims)
    return Dim((1,))


def s_trace_of_product(op, dims, attrs):
    _nobatch(op, dims)
    if dims[0].d != dims[1].d or len(dims[0].d) > 2:
        raise op.fail(dims, "needs two matrices of the same dims")
    return Dim((1,))


def s_contract3d_1d(op, dims, attrs):
    a, b = dims
    if len(a.d) != 3 or not _looks_like_vector(b) or b.d[0] != a.d[2]:
        raise op.fail(dims, "needs a 3-tensor {i,j,k} and a vector {k}")
    return Dim(a.d[:2], _batch(op, dims))


def s_contract3d_1d_1d(op, dims, attrs):
    _nobatch(op, dims)
    a, b, c = dims
    if len(a.d) != 3 or not (_looks_like_vector(b) and _looks_like_vector(c)) or b.d[0] != a.d[2] or c.d[0] != a.d[1]:
        raise op.fail(dims, "needs a 3-tensor {i,j,k}, a vector {k} and a vector {j}")
    return Dim((a.d[0],))


def s_circ(op, dims, attrs):
    _nobatch(op, dims)
    if len(dims[0].d) != 1 or dims[0] != dims[1]:
        raise op.fail(dims, "needs two vectors of the same size")
    return dims[0]


def _window_out(n: int, k: int, s: int, is_valid: bool) -> int:
    return -(-(n - k + 1) // s) if is_valid else -(-n // s)


def s_conv2d(op, dims, attrs):
    x, f = dims
    stride, is_valid = attrs
    _pair_ints(op, dims, stride, "stride")
    if len(x.d) != 3 or len(f.d) != 4 or f.d[2] != x.d[2]:
        raise op.fail(dims, "needs an input {H,W,C_in} and filters {kh,kw,C_in,C_out}")
    if f.bd != 1:
        raise op.fail(dims, "the filters must not be batched")
    if is_valid and (x.d[0] < f.d[0] or x.d[1] < f.d[1]):
        raise op.fail(dims, "in VALID convolution the filter must not be larger than the feature map")
    h = _window_out(x.d[0], f.d[0], stride[0], is_valid)
    w = _window_out(x.d[1], f.d[1], stride[1], is_valid)
    return Dim((h, w, f.d[3]), x.bd)


def s_maxpooling2d(op, dims, attrs):
    x = dims[0]
    ksize, stride, is_valid = attrs
    _pair_ints(op, dims, ksize, "ksize")
    _pair_ints(op, dims, stride, "stride")
    if len(x.d) not in (2, 3):
        raise op.fail(dims, "needs an input {H,W} or {H,W,C}")
    if is_valid and (x.d[0] < ksize[0] or x.d[1] < ksize[1]):
        raise op.fail(dims, f"in VALID mode the kernel {list(ksize)} must not be larger than the feature map")
    h = _window_out(x.d[0], ksize[0], stride[0], is_valid)
    w = _window_out(x.d[1], ksize[1], stride[1], is_valid)
    return Dim((h, w) + x.d[2:], x.bd)


def s_filter1d_narrow(op, dims, attrs):
    _nobatch(op, dims)
    x, f = dims
    if len(x.d) != 2 or len(f.d) not in (2, 3) or f.d[0] != x.d[0] or x.d[1] < f.d[1]:
        raise op.fail(dims, "needs a matrix {d,s} and filters {d,m} or {d,m,n} with m <= s")
    return Dim((f.d[2] if len(f.d) == 3 else 1, x.d[1] - f.d[1] + 1))


def s_fold_rows(op, dims, attrs):
    _nobatch(op, dims)
    x = dims[0]
    n = attrs[0]
    if n < 1 or len(x.d) > 2 or x.d[0] % n:
        raise op.fail(dims, f"the rows must be a multiple of nrows={n}")
    return Dim((x.d[0] // n, x.cols()))


def s_kmh_ngram(op, dims, attrs):
    _nobatch(op, dims)
    x = dims[0]
    n = attrs[0]
    if len(x.d) != 2 or not 1 <= n <= x.d[1]:
        raise op.fail(dims, f"needs a matrix with at least n={n} columns")
    return Dim((x.d[0], x.d[1] - n + 1))


def s_weight_norm(op, dims, attrs):
    _nobatch(op, dims)
    if dims[1].size() != 1:
        raise op.fail(dims, "the gain must be a scalar")
    return dims[0]


def _lstm_gates_dims(op, dims, dropout: bool):
    x, h, wx, wh, b = dims[:5]
    if len(x.d) != 1 or len(h.d) != 1:
        raise op.fail(dims, "x_t and h_tm1 must be vectors")
    hid = h.d[0]
    if wx.d != (4 * hid, x.d[0]) or wh.d != (4 * hid, hid) or not _looks_like_vector(b) or b.d[0] != 4 * hid:
        raise op.fail(dims, f"expects Wx {{{4 * hid},{x.d[0]}}}, Wh {{{4 * hid},{hid}}} and b {{{4 * hid}}}")
    if wx.bd != 1 or wh.bd != 1 or b.bd != 1:
        raise op.fail(dims, "Wx, Wh and b must not be batched")
    if dropout:
        mx, mh = dims[5:]
        if not (_looks_like_vector(mx) and _looks_like_vector(mh)) or mx.d[0] != x.d[0] or mh.d[0] != hid:
            raise op.fail(dims, f"the dropout masks must be vectors of sizes {x.d[0]} and {hid}")
    return Dim((4 * hid,), _batch(op, dims))


def s_lstm_gates(op, dims, attrs):
    return _lstm_gates_dims(op, dims, False)


def s_lstm_gates_dropout(op, dims, attrs):
    return _lstm_gates_dims(op, dims, True)


def s_lstm_cell(op, dims, attrs):
    c, g = dims
    if len(c.d) != 1 or len(g.d) != 1 or 4 * c.d[0] != g.d[0]:
        raise op.fail(dims, "needs a state vector {n} and gates {4n}")
    return Dim(c.d, _batch(op, dims))


_TRIG_DOCS = {
    "sin": "Sine of each element (radians).",
    "cos": "Cosine of each element (radians).",
    "atan": "Arc tangent of each element.",
    "sinh": "Hyperbolic sine of each element.",
    "cosh": "Hyperbolic cosine of each element.",
    "asinh": "Inverse hyperbolic sine of each element.",
}
for _name in ("sin", "cos", "atan", "sinh", "cosh", "asinh"):
    _op(_name, 1, s_same, doc=_TRIG_DOCS[_name], batch="map")
_op("tan", 1, s_same, domain=(D_UNIT,), doc="Tangent of each element (radians).", batch="map")
_op("asin", 1, s_same, domain=(D_UNIT,), doc="Arc sine of each element (-1 < x < 1).", batch="map")
_op("acos", 1, s_same, domain=(D_UNIT,), doc="Arc cosine of each element (-1 < x < 1).", batch="map")
_op("atanh", 1, s_same, domain=(D_UNIT,), doc="Inverse hyperbolic tangent of each element (-1 < x < 1).", batch="map")
_op("acosh", 1, s_same, domain=(D_GT1,), doc="Inverse hyperbolic cosine of each element (x >= 1).", batch="map")
_op("silu", 1, s_same, attrs=("beta",), doc="x * sigmoid(beta * x).", batch="map", sample_attrs=_consts(1.0, 0.5))
for _name in ("round", "ceil", "floor"):
    _op(_name, 1, s_same, attrs=("straight_through",), smooth=False, batch="map",
        doc="Zero gradient, or the incoming gradient unchanged when straight_through.",
        sample_attrs=_consts(False, True))
_op("to_device", 1, s_same, attrs=("device",), doc="Identity that records the device the value moves to.", batch="map",
    sample_attrs=_consts("CPU"))

_op("sparsemax", 1, s_vector_nobatch, smooth=False, doc="Euclidean projection of a vector onto the simplex.")
_op("sparsemax_loss", 1, s_sparsemax_loss, attrs=("target",), smooth=False,
    doc="Sparsemax loss of a vector against a uniform target over the given indices.",
    sample_attrs=lambda ds: [((0,),), ((ds[0].d[0] - 1, 0),)])
_op("constrained_softmax", 2, s_constrained_softmax, domain=(D_ANY, D_PROB), smooth=False,
    doc="Softmax of x capped elementwise by the upper bounds y.")

_op("strided_select", 1, s_strided_select, attrs=("strides", "range_from", "range_to"),
    doc="x[range_from:range_to:strides] per dimension; the entry after the last data dim is the batch.",
    sample_attrs=_a_strided)
_op("max_dim", 1, s_max_dim, attrs=("d",), smooth=False, doc="Max along dimension d.", batch="map", sample_attrs=_axes)
_op("min_dim", 1, s_max_dim, attrs=("d",), smooth=False, doc="Min along dimension d.", batch="map", sample_attrs=_axes)
_op("cumsum", 1, s_same_axis, attrs=("d",), doc="Cumulative sum along dimension d.", batch="map", sample_attrs=_axes)
_op("kmax_pooling", 1, s_kmax, attrs=("k", "d"), smooth=False,
    doc="The k largest values along dimension d, in their original order.", batch="map",
    sample_attrs=_attr_list((1, 0), (2, 1), (2, 0)))
_op("std_dim", 1, s_std_dim, attrs=("dims", "b", "n"),
    doc="Population std over dims (and the batch if b); n > 0 overrides the divisor.", batch="map",
    sample_attrs=_attr_list(((0,), False, 0), ((0, 1), True, 0), ((1,), False, 5), ((), True, 0)))

_op("hinge_dim", 1, s_hinge_dim, attrs=("indices", "d", "m"), smooth=False, attr_domains=(("m", "nonneg"),),
    doc="Hinge loss of every column (d=0) or row (d=1); indices: one list, or one per batch element.",
    batch="map", batch_attrs=('indices',), sample_attrs=_a_hinge_dim)
_op("pairwise_rank_loss", 2, s_pairwise_rank, attrs=("m",), smooth=False, doc="max(0, m - x + y) elementwise.",
    batch="map",
    sample_attrs=_consts(1.0, 0.5),
    sample_dims=lambda: [("row", [_Db((1, 3)), _Db((1, 3))]), ("row-batched", [_Db((1, 3), 2), _Db((1, 3))]),
                         ("scalar", [_Db((1,)), _Db((1,), 3)])])
_op("poisson_loss", 1, s_poisson, attrs=("y",), attr_domains=(("y", "nonneg"),),
    doc="-log Poisson(y; lambda = exp(x)).", sample_attrs=_consts(0, 3))

_op("inverse", 1, s_inverse, domain=("spd",), doc="Matrix inverse.")
_op("logdet", 1, s_logdet, domain=("spd",), doc="log det of a matrix (NaN for a negative determinant).")
_op("trace_of_product", 2, s_trace_of_product, doc="Tr(x y^T).")
_op("contract3d_1d", 2, s_contract3d_1d, doc="Y_ij = sum_k A_ijk b_k.",
    sample_dims=lambda: [("3d-vector", [_Db((2, 3, 4)), _Db((4,))]), ("batched-vector", [_Db((2, 3, 4)), _Db((4,), 3)]),
                         ("batched-3d", [_Db((2, 3, 4), 2), _Db((4,))]),
                         ("both-batched", [_Db((2, 1, 3), 2), _Db((3,), 2)])])
_op("contract3d_1d_1d", 3, s_contract3d_1d_1d, doc="y_i = sum_jk A_ijk b_k c_j.",
    sample_dims=lambda: [("3d", [_Db((2, 3, 4)), _Db((4,)), _Db((3,))]),
                         ("column-vectors", [_Db((3, 2, 2)), _Db((2, 1)), _Db((2,))])])
_op("circ_conv", 2, s_circ, doc="Circular convolution of two vectors.")
_op("circ_corr", 2, s_circ, doc="Circular correlation of two vectors.")

_op("conv2d", 2, s_conv2d, attrs=("stride", "is_valid"),
    doc="2-D cross-correlation, input {H,W,C_in}, filters {kh,kw,C_in,C_out}, VALID or SAME (TensorFlow) padding.",
    sample_attrs=_attr_list(((1, 1), True), ((2, 2), False), ((2, 3), True), ((1, 2), False)),
    sample_dims=lambda: [("batched", [_Db((5, 6, 2), 2), _Db((3, 3, 2, 3))]),
                         ("1x1", [_Db((4, 4, 3)), _Db((1, 1, 3, 2))]),
                         ("big-filter", [_Db((3, 4, 1)), _Db((4, 4, 1, 2))])])
_op("maxpooling2d", 1, s_maxpooling2d, attrs=("ksize", "stride", "is_valid"), smooth=False,
    doc="2-D max pooling, VALID or SAME (TensorFlow) padding.",
    sample_attrs=_attr_list(((2, 2), (2, 2), True), ((3, 2), (2, 1), False), ((2, 3), (3, 2), False)),
    sample_dims=lambda: [("hwc-batched", [_Db((5, 6, 2), 2)]), ("hw", [_Db((4, 5))]), ("hwc", [_Db((3, 3, 1))])])
_op("filter1d_narrow", 2, s_filter1d_narrow, doc="Narrow 1-D filtering, one output row per filter.",
    sample_dims=lambda: [("one-filter", [_Db((3, 5)), _Db((3, 2))]), ("three-filters", [_Db((3, 5)), _Db((3, 2, 3))]),
                         ("full-width", [_Db((2, 4)), _Db((2, 4))])])
_op("fold_rows", 1, s_fold_rows, attrs=("nrows",), doc="Sums each group of nrows consecutive rows.",
    sample_attrs=_consts(1, 2, 3))
_op("kmh_ngram", 1, s_kmh_ngram, attrs=("n",), doc="Sums of n consecutive columns.", sample_attrs=_consts(1, 2))
_op("weight_norm", 2, s_weight_norm, doc="g * w / ||w|| for a scalar gain g.")

_op("vanilla_lstm_gates", 5, s_lstm_gates,
    doc="[i;f;o;g] = sigmoid/tanh(Wx x + Wh h + b), +1 on the forget gate; args x, h, Wx, Wh, b.", batch="map",
    batch_shared=(2, 3, 4), sample_dims=lambda: [("unbatched", [_Db((_I,)), _Db((_H,))] + _LSTM_W),
                                                 ("batched-x", [_Db((_I,), 3), _Db((_H,))] + _LSTM_W),
                                                 ("batched", [_Db((_I,), 2), _Db((_H,), 2)] + _LSTM_W)])
_op("vanilla_lstm_gates_dropout", 7, s_lstm_gates_dropout,
    doc="vanilla_lstm_gates with x and h multiplied by the masks (args 6 and 7).", batch="map",
    batch_shared=(2, 3, 4),
    sample_dims=lambda: [("unbatched", [_Db((_I,)), _Db((_H,))] + _LSTM_W + [_Db((_I,)), _Db((_H,))]),
                         ("batched-masks", [_Db((_I,), 2), _Db((_H,))] + _LSTM_W + [_Db((_I,)), _Db((_H,), 2)])])
_op("vanilla_lstm_c", 2, s_lstm_cell, doc="c_t = i * g + f * c_tm1 from gates [i;f;o;g].", batch="map",
    sample_dims=lambda: [("vector", [_Db((_H,)), _Db((4 * _H,))]),
                         ("batched", [_Db((_H,), 3), _Db((4 * _H,), 3)]),
                         ("batched-gates", [_Db((_H,)), _Db((4 * _H,), 2)])])
_op("vanilla_lstm_h", 2, s_lstm_cell, doc="h_t = o * tanh(c_t) from gates [i;f;o;g].", batch="map",
    sample_dims=lambda: [("vector", [_Db((_H,)), _Db((4 * _H,))]),
                         ("batched", [_Db((_H,), 3), _Db((4 * _H,), 3)]),
                         ("batched-gates", [_Db((_H,)), _Db((4 * _H,), 2)])])


def op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} in the op table") from None
