"""The rest of DyNet's expression functions (the [B] ops of API_REFERENCE.md).

Thin wrappers as in :mod:`dynet_api.functions`: Python arguments become op
attributes, and a few functions (``layer_norm``, the ``*_bias`` and ``_concat``
variants, moments, ``vanilla_lstm_gates`` with weight noise) are composites of
op-table primitives, as DyNet writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

from . import runtime
from .functions import _all_dims, _dim, _int, _ints, _unary, concatenate, moment_dim, noise, reshape
from .graph import Expression, _cg
from .ops import OPS

_add = _cg.add
_add1 = _cg.add1
_O = OPS

__all__ = [
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
    "silu", "round", "ceil", "floor", "sparsemax", "sparsemax_loss", "constrained_softmax",
    "strided_select", "max_dim", "min_dim", "cumsum", "kmax_pooling",
    "moment_elems", "moment_batches", "std_dim", "std_elems", "std_batches",
    "hinge_dim", "pairwise_rank_loss", "poisson_loss",
    "inverse", "logdet", "trace_of_product", "contract3d_1d", "contract3d_1d_bias",
    "contract3d_1d_1d", "contract3d_1d_1d_bias", "circ_conv", "circ_corr",
    "conv2d", "conv2d_bias", "maxpooling2d", "filter1d_narrow", "fold_rows", "kmh_ngram",
    "layer_norm", "weight_norm",
    "vanilla_lstm_gates", "vanilla_lstm_gates_concat", "vanilla_lstm_gates_dropout",
    "vanilla_lstm_gates_dropout_concat", "vanilla_lstm_c", "vanilla_lstm_h",
    "to_device",
]


# ============================================================ elementwise unary

sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
asin = _unary("asin")
acos = _unary("acos")
atan = _unary("atan")
sinh = _unary("sinh")
cosh = _unary("cosh")
asinh = _unary("asinh")
acosh = _unary("acosh")
atanh = _unary("atanh")


def silu(x, beta: float = 1.0) -> Expression:
    """x * sigmoid(beta * x) (swish)."""
    return _add1(_O["silu"], x, (float(beta),))


_GRADIENT_MODES = ("zero_gradient", "straight_through_gradient")


def _gradient_mode(name: str, mode: str) -> tuple[bool]:
    if mode not in _GRADIENT_MODES:
        raise ValueError(f"{name}: gradient_mode must be 'zero_gradient' or 'straight_through_gradient', got {mode!r}")
    return (mode == "straight_through_gradient",)


def round(x, gradient_mode: str = "zero_gradient") -> Expression:  # noqa: A001 - DyNet's name
    """Round half away from zero; zero gradient, or straight-through."""
    return _add1(_O["round"], x, _gradient_mode("round", gradient_mode))


def ceil(x, gradient_mode: str = "zero_gradient") -> Expression:
    return _add1(_O["ceil"], x, _gradient_mode("ceil", gradient_mode))


def floor(x, gradient_mode: str = "zero_gradient") -> Expression:
    return _add1(_O["floor"], x, _gradient_mode("floor", gradient_mode))


# ============================================================ sparsemax family


def sparsemax(x) -> Expression:
    """Projection of a vector onto the probability simplex (unbatched, as DyNet)."""
    return _add1(_O["sparsemax"], x)


def sparsemax_loss(x, target_support: Sequence[int]) -> Expression:
    """Sparsemax loss against the uniform distribution over ``target_support``."""
    return _add1(_O["sparsemax_loss"], x, (_ints(target_support, "sparsemax_loss"),))


def constrained_softmax(x, y) -> Expression:
    """Softmax of ``x`` with the elementwise upper bounds ``y``."""
    return _add(_O["constrained_softmax"], (x, y))


# ============================================================ selection along dimensions


def strided_select(x, strides: Sequence[int], range_from: Sequence[int] = (),
                   range_to: Sequence[int] = ()) -> Expression:
    """``x[from:to:stride]`` per dimension; the entry after the last data dim is the batch."""
    return _add1(_O["strided_select"], x, (_ints(strides, "strided_select"), _ints(range_from, "strided_select"),
                                           _ints(range_to, "strided_select")))


def strided_getitem(x, index) -> Expression:
    """``Expression[slice]`` with a step and ``Expression[tuple of slices]``, as DyNet's ``__getitem__``.

    Negative and out-of-range bounds follow Python slicing (DyNet rejects them);
    the tuple position after the last data dim slices the batch.
    """
    d = _dim(x, "Expression[]")
    sizes = d.d + (d.bd,)
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > len(sizes):
        raise IndexError(f"too many indices ({len(parts)}) for an expression of dim {d} ({len(sizes)} with the batch)")
    steps, starts, stops = [], [], []
    for k, s in enumerate(parts):
        if not isinstance(s, slice):
            raise TypeError(f"Expression indices in a tuple must be slices, got {type(s).__name__} at position {k}")
        if s.step is not None and s.step <= 0:
            raise IndexError(f"steps must be positive, got: {s.step}")
        start, stop, step = s.indices(sizes[k])
        if stop <= start:
            raise IndexError(f"empty slice {s} of dimension {k} (size {sizes[k]}) of an expression of dim {d}")
        steps.append(step)
        starts.append(start)
        stops.append(stop)
    return strided_select(x, steps, starts, stops)


def max_dim(x, d: int = 0) -> Expression:
    return _add1(_O["max_dim"], x, (_int(d, "max_dim"),))


def min_dim(x, d: int = 0) -> Expression:
    return _add1(_O["min_dim"], x, (_int(d, "min_dim"),))


def cumsum(x, d: int = 0) -> Expression:
    return _add1(_O["cumsum"], x, (_int(d, "cumsum"),))


def kmax_pooling(x, k: int, d: int = 1) -> Expression:
    return _add1(_O["kmax_pooling"], x, (_int(k, "kmax_pooling"), _int(d, "kmax_pooling")))


# ============================================================ moments


def moment_elems(x, r: int) -> Expression:
    return moment_dim(x, _all_dims(x, "moment_elems"), r)


def moment_batches(x, r: int) -> Expression:
    return moment_dim(x, (), r, True)


def std_dim(x, d: Sequence[int], b: bool = False, n: int = 0) -> Expression:
    """Population standard deviation over dims ``d`` (and the batch if ``b``); ``n > 0`` overrides the divisor."""
    return _add1(_O["std_dim"], x, (_ints(d, "std_dim"), bool(b), _int(n, "std_dim")))


def std_elems(x) -> Expression:
    return std_dim(x, _all_dims(x, "std_elems"))


def std_batches(x) -> Expression:
    return std_dim(x, (), True)


# ============================================================ losses


def hinge_dim(x, v, d: int = 0, m: float = 1.0) -> Expression:
    """Hinge loss of every column (``d=0``) or row (``d=1``) of a matrix.

    ``v`` holds one gold index per column (row); a list of such lists gives one per
    batch element (DyNet's commented-out ``hinge_dim_batch``).
    """
    v = list(v)
    if v and not isinstance(v[0], Number):
        idx = tuple(_ints(u, "hinge_dim") for u in v)
    else:
        idx = (_ints(v, "hinge_dim"),)
    return _add1(_O["hinge_dim"], x, (idx, _int(d, "hinge_dim"), float(m)))


def pairwise_rank_loss(x, y, m: float = 1.0) -> Expression:
    """max(0, m - x + y), elementwise."""
    return _add(_O["pairwise_rank_loss"], (x, y), (float(m),))


def poisson_loss(log_lambda, x: int) -> Expression:
    """-log Poisson(x; lambda = exp(log_lambda)) for an observed count ``x``."""
    try:
        k = x.__index__()
    except AttributeError:
        raise TypeError(f"poisson_loss: the observed count must be an int, got {x!r}") from None
    return _add1(_O["poisson_loss"], log_lambda, (k,))


# ============================================================ linear algebra


def inverse(x) -> Expression:
    return _add1(_O["inverse"], x)


def logdet(x) -> Expression:
    return _add1(_O["logdet"], x)


def trace_of_product(x, y) -> Expression:
    return _add(_O["trace_of_product"], (x, y))


def contract3d_1d(x, y) -> Expression:
    """Y_ij = sum_k x_ijk y_k."""
    return _add(_O["contract3d_1d"], (x, y))


def contract3d_1d_bias(x, y, b) -> Expression:
    return contract3d_1d(x, y) + b


def contract3d_1d_1d(x, y, z) -> Expression:
    """y_i = sum_jk x_ijk y_k z_j."""
    return _add(_O["contract3d_1d_1d"], (x, y, z))


def contract3d_1d_1d_bias(x, y, z, b) -> Expression:
    return contract3d_1d_1d(x, y, z) + b


def circ_conv(u, v) -> Expression:
    return _add(_O["circ_conv"], (u, v))


def circ_corr(u, v) -> Expression:
    return _add(_O["circ_corr"], (u, v))


# ============================================================ convolution and pooling


def _pair(v, what: str) -> tuple[int, int]:
    t = _ints(v, what)
    if len(t) != 2:
        raise ValueError(f"{what}: expected two ints, got {list(t)}")
    return t


def conv2d(x, f, stride: Sequence[int], is_valid: bool = True) -> Expression:
    """2-D cross-correlation of x {H,W,C_in} (batched) with filters f {kh,kw,C_in,C_out}.

    A 2-d input {H,W} is one input channel, as in DyNet (its Dim reads 1 past the last dim)."""
    xd = _dim(x, "conv2d")
    if len(xd.d) == 2:
        x = reshape(x, xd.d + (1,), xd.bd)
    return _add(_O["conv2d"], (x, f), (_pair(stride, "conv2d stride"), bool(is_valid)))


def conv2d_bias(x, f, b, stride: Sequence[int], is_valid: bool = True) -> Expression:
    """conv2d plus a bias {C_out} added to every position of each output channel."""
    y = conv2d(x, f, stride, is_valid)
    bd = _dim(b, "conv2d_bias")
    return y + reshape(b, (1, 1, bd.size()), bd.bd)


def maxpooling2d(x, ksize: Sequence[int], stride: Sequence[int], is_valid: bool = True) -> Expression:
    return _add1(_O["maxpooling2d"], x, (_pair(ksize, "maxpooling2d ksize"), _pair(stride, "maxpooling2d stride"),
                                         bool(is_valid)))


def filter1d_narrow(x, f) -> Expression:
    return _add(_O["filter1d_narrow"], (x, f))


def fold_rows(x, nrows: int = 2) -> Expression:
    return _add1(_O["fold_rows"], x, (_int(nrows, "fold_rows"),))


def kmh_ngram(x, v: int) -> Expression:
    return _add1(_O["kmh_ngram"], x, (_int(v, "kmh_ngram"),))


# ============================================================ normalisation


def layer_norm(x, g, b) -> Expression:
    """g * (x - mean(x)) / (std(x) + 1e-8) + b over the elements of each batch element (DyNet's composite)."""
    mu = moment_dim(x, _all_dims(x, "layer_norm"), 1)
    sigma = std_elems(x)
    return _add(_O["cmult"], (g, _add(_O["cdiv"], (x - mu, sigma + 1e-8)))) + b


def weight_norm(w, g) -> Expression:
    """g * w / ||w|| for a scalar gain g (unbatched, as DyNet)."""
    return _add(_O["weight_norm"], (w, g))


# ============================================================ fused LSTM pieces


def _noisy(ws, std: float):
    if std > 0:
        return [noise(w, std) for w in ws]
    if std < 0:
        raise ValueError(f"vanilla_lstm_gates: weightnoise_std must be >= 0, got {std}")
    return list(ws)


def vanilla_lstm_gates(x_t, h_tm1, Wx, Wh, b, weightnoise_std: float = 0.0) -> Expression:
    """Stacked gates [i;f;o;g] of a vanilla LSTM step (forget gate biased by +1, as DyNet).

    With ``weightnoise_std > 0`` Gaussian noise is added to Wx, Wh and b for this
    step (DyNet draws the noisy weights but then multiplies by the clean ones).
    """
    Wx, Wh, b = _noisy((Wx, Wh, b), float(weightnoise_std))
    return _add(_O["vanilla_lstm_gates"], (x_t, h_tm1, Wx, Wh, b))


def vanilla_lstm_gates_concat(x_ts: Sequence, h_tm1, Wx, Wh, b, weightnoise_std: float = 0.0) -> Expression:
    return vanilla_lstm_gates(concatenate(list(x_ts)), h_tm1, Wx, Wh, b, weightnoise_std)


def vanilla_lstm_gates_dropout(x_t, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                               weightnoise_std: float = 0.0) -> Expression:
    Wx, Wh, b = _noisy((Wx, Wh, b), float(weightnoise_std))
    return _add(_O["vanilla_lstm_gates_dropout"], (x_t, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h))


def vanilla_lstm_gates_dropout_concat(x_ts: Sequence, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                                      weightnoise_std: float = 0.0) -> Expression:
    return vanilla_lstm_gates_dropout(concatenate(list(x_ts)), h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                                      weightnoise_std)


def vanilla_lstm_c(c_tm1, gates_t) -> Expression:
    return _add(_O["vanilla_lstm_c"], (c_tm1, gates_t))


def vanilla_lstm_h(c_t, gates_t) -> Expression:
    return _add(_O["vanilla_lstm_h"], (c_t, gates_t))


# ============================================================ devices


def to_device(e, device_str: str) -> Expression:
    """Move a value to another device of the current backend (an identity that records the device).

    Devices are those of ``available_devices()``; moving to another backend's device is not supported.
    """
    dev = device_str.decode() if isinstance(device_str, bytes) else str(device_str)
    be = runtime.backend()
    known = {d.lower(): d for d in be.devices}
    if dev.lower() not in known:
        raise ValueError(f"to_device: {dev!r} is not a device of backend {be.name!r} (devices: "
                         f"{', '.join(be.devices)}); moving values between backends is not supported")
    return _add1(_O["to_device"], e, (known[dev.lower()],))
