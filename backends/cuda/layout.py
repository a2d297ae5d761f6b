"""Layout helpers of the cuda backend's kernels, for any array module (CuPy or NumPy).

Tensors are (data dims..., batch); these reshape/sum helpers are those of the
reference kernels, written with array methods only so they run on CuPy arrays.
"""

from __future__ import annotations


def pad(x, nd: int):
    """View x (data dims + batch) with ``nd`` data dims, padding size-1 dims before the batch."""
    have = x.ndim - 1
    if have == nd:
        return x
    if have > nd:
        return x.reshape(x.shape[:nd] + (-1,)) if all(s == 1 for s in x.shape[nd:-1]) else x
    return x.reshape(x.shape[:-1] + (1,) * (nd - have) + x.shape[-1:])


def unbroadcast(g, shape: tuple[int, ...]):
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


def batch_bc(v, nd: int):
    """A per-batch scalar (shape (1, B)) viewed to broadcast over ``nd`` data dims."""
    return v.reshape((1,) * nd + v.shape[-1:])


def as3(x):
    """A matrix operand as (rows, cols, batch)."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, x.shape[1])
    return x


def keep_shape(shape, axes) -> tuple[int, ...]:
    s = list(shape)
    for ax in axes:
        s[ax] = 1
    return tuple(s)


def red_axes(x, a) -> tuple[int, ...]:
    return tuple(a[0]) + ((x.ndim - 1,) if a[1] else ())
