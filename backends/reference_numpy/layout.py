"""Layout helpers of the kernels: views between an op's tensors and the shapes its math wants.

A tensor is an array shaped ``Dim.shape`` (data dims, then the batch).  These helpers
call array methods only (reshape, sum, transpose, astype), so they work unchanged on
NumPy and CuPy arrays; every kernel set imports them from here (the reference's and
the cuda backend's).
"""

from __future__ import annotations

from math import prod
from typing import Any

Array = Any  # an ndarray of the kernel set's array module


def pad(x: Array, nd: int) -> Array:
    """View x (data dims + batch) with ``nd`` data dims, padding size-1 dims before the batch."""
    have = x.ndim - 1
    if have == nd:
        return x
    if have > nd:
        return x.reshape(x.shape[:nd] + (-1,)) if all(s == 1 for s in x.shape[nd:-1]) else x
    return x.reshape(x.shape[:-1] + (1,) * (nd - have) + x.shape[-1:])


def padded_pair(xs, d) -> tuple[Array, Array, int]:
    """The two operands of a broadcasting binary op, padded to the output's data dims."""
    nd = len(d.d)
    return pad(xs[0], nd), pad(xs[1], nd), nd


def vec(x: Array) -> Array:
    """A vector-like tensor (n, 1, ..., 1, B) viewed as (n, B)."""
    return x.reshape(x.shape[0], -1)


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` over the axes that were broadcast from ``shape`` and give it that shape."""
    if g.shape == shape:
        return g
    nd = g.ndim - 1
    have = len(shape) - 1
    if nd < have:  # the target keeps trailing size-1 dims the output dropped ({3,1} against {3})
        g, nd = pad(g, have), have
    padded = shape[:-1] + (1,) * (nd - have) + shape[-1:]
    axes = tuple(k for k in range(g.ndim) if padded[k] == 1 and g.shape[k] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def batch_bc(v: Array, nd: int) -> Array:
    """A per-batch scalar (shape (1, B)) viewed to broadcast over ``nd`` data dims."""
    return v.reshape((1,) * nd + v.shape[-1:])


def as3(x: Array) -> Array:
    """A matrix operand as (rows, cols, batch): a vector is one column."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, x.shape[1])
    return x


def as_out(x: Array, d) -> Array:
    """An operand of esum / logsumexp in the output's data dims (they may differ from x's by
    trailing 1s), keeping its own batch."""
    return x.reshape(d.shape[:-1] + x.shape[-1:])


def data_sum(v: Array) -> Array:
    """Sum over the data dims: (..., B) -> (1, B)."""
    return v.reshape(-1, v.shape[-1]).sum(axis=0, keepdims=True)


def keep_shape(x_shape: tuple[int, ...], axes) -> tuple[int, ...]:
    """x's shape with the reduced ``axes`` kept as size 1."""
    s = list(x_shape)
    for ax in axes:
        s[ax] = 1
    return tuple(s)


def red_axes(x: Array, a) -> tuple[int, ...]:
    """The axes a reduction reduces: its attributes ``a.dims``, and the batch if ``a.b``."""
    return tuple(a.dims) + ((x.ndim - 1,) if a.b else ())


def count(shape: tuple[int, ...], axes) -> float:
    """How many elements the reduction over ``axes`` of ``shape`` sums."""
    return float(prod(shape[k] for k in axes))


def grad_like(g: Array, x: Array) -> Array:
    """A gradient in x's shape and dtype (the kernels keep their inputs' dtype)."""
    return g.reshape(x.shape).astype(x.dtype, copy=False)


def square(x: Array) -> Array:
    """An unbatched n x n matrix operand as a 2-d array."""
    n = x.shape[0]
    return x.reshape(n, n)


def split4(g: Array) -> tuple[Array, Array, Array, Array]:
    """The four gate blocks [i; f; o; g] of an LSTM gate tensor."""
    n = g.shape[0] // 4
    return g[:n], g[n: 2 * n], g[2 * n: 3 * n], g[3 * n:]


def slices(x_shape: tuple[int, ...], a) -> tuple[slice, ...]:
    """The index of strided_select's attributes (``a.strides``, ``a.range_from``, ``a.range_to``);
    the entry after the data dims, if any, is the batch's."""
    strides, lo, hi = a.strides, a.range_from, a.range_to
    sl = [slice(None)] * len(x_shape)
    nd = len(x_shape) - 1
    for k in range(max(len(strides), len(lo), len(hi))):
        ax = k if k < nd else nd
        start = lo[k] if k < len(lo) else 0
        stop = hi[k] if k < len(hi) else x_shape[ax]
        step = strides[k] if k < len(strides) else 1
        sl[ax] = slice(start, stop, step)
    return tuple(sl)


def same_pad(n: int, k: int, s: int, out: int) -> tuple[int, int]:
    """(before, after) padding of a SAME (TensorFlow) window along one axis."""
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv_geometry(x_shape, k, stride, is_valid: bool, out_hw) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding (top, bottom), (left, right) of a VALID or SAME (TensorFlow) window."""
    if is_valid:
        return (0, 0), (0, 0)
    return same_pad(x_shape[0], k[0], stride[0], out_hw[0]), same_pad(x_shape[1], k[1], stride[1], out_hw[1])


def filters(f: Array) -> Array:
    """Filters of filter1d_narrow as (rows, width, n_filters)."""
    return f[..., 0] if f.ndim == 4 else f[..., 0][..., None]
