"""The rest of DyNet's expression functions (the [B] ops of API_REFERENCE.md).

Thin wrappers as in :mod:`dynet_api.functions`: Python arguments become op
attributes, and a few functions (``layer_norm``, the ``*_bias`` and ``_concat``
variants, moments, ``vanilla_lstm_gates`` with weight noise) are composites of
op-table primitives, as DyNet writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

from . import config
from .functions import _all_dims, _dim, _int, _ints, _unary, concatenate, moment_dim, noise, pick, pickrange, reshape
from .graph import Expression, _cg
from .graph import register_indexing as _register_indexing
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
    """SiLU (swish) of each element, ``x * sigmoid(beta * x)``.

    Args:
        x (Expression): any dims, batched or not.
        beta (float): the slope inside the sigmoid.
    """
    return _add1(_O["silu"], x, (float(beta),))


_GRADIENT_MODES = ("zero_gradient", "straight_through_gradient")


def _gradient_mode(name: str, mode: str) -> tuple[bool]:
    if mode not in _GRADIENT_MODES:
        raise ValueError(f"{name}: gradient_mode must be 'zero_gradient' or 'straight_through_gradient', got {mode!r}")
    return (mode == "straight_through_gradient",)


def round(x, gradient_mode: str = "zero_gradient") -> Expression:  # noqa: A001 - DyNet's name
    """Each element rounded to the nearest integer (halves away from zero).

    Args:
        x (Expression): any dims, batched or not.
        gradient_mode (str): ``"zero_gradient"`` or ``"straight_through_gradient"`` (the incoming
            gradient passes unchanged).
    """
    return _add1(_O["round"], x, _gradient_mode("round", gradient_mode))


def ceil(x, gradient_mode: str = "zero_gradient") -> Expression:
    """Each element rounded up.

    Args:
        x (Expression): any dims, batched or not.
        gradient_mode (str): ``"zero_gradient"`` or ``"straight_through_gradient"``.
    """
    return _add1(_O["ceil"], x, _gradient_mode("ceil", gradient_mode))


def floor(x, gradient_mode: str = "zero_gradient") -> Expression:
    """Each element rounded down.

    Args:
        x (Expression): any dims, batched or not.
        gradient_mode (str): ``"zero_gradient"`` or ``"straight_through_gradient"``.
    """
    return _add1(_O["floor"], x, _gradient_mode("floor", gradient_mode))


# ============================================================ sparsemax family


def sparsemax(x) -> Expression:
    """Sparsemax: the Euclidean projection of the vector ``x`` onto the probability simplex
    (a distribution in which many entries are exactly 0).

    Args:
        x (Expression): a vector; unbatched only, as in DyNet.
    """
    return _add1(_O["sparsemax"], x)


def sparsemax_loss(x, target_support: Sequence[int]) -> Expression:
    """The sparsemax loss of the scores ``x`` against the uniform distribution over
    ``target_support``; dims ``{1}``.

    Args:
        x (Expression): a vector of scores (unbatched).
        target_support (list[int]): the gold indices, at least one.
    """
    return _add1(_O["sparsemax_loss"], x, (_ints(target_support, "sparsemax_loss"),))


def constrained_softmax(x, y) -> Expression:
    """A softmax of ``x`` whose probabilities are capped elementwise by ``y``.

    Args:
        x (Expression): a vector of scores (unbatched).
        y (Expression): upper bounds in (0, 1], the size of x.
    """
    return _add(_O["constrained_softmax"], (x, y))


# ============================================================ selection along dimensions


def strided_select(x, strides: Sequence[int], range_from: Sequence[int] = (),
                   range_to: Sequence[int] = ()) -> Expression:
    """A strided slice: along each dimension k, the elements ``range_from[k]``,
    ``range_from[k] + strides[k]``, ... below ``range_to[k]``.

    Args:
        x (Expression): any dims.
        strides (list[int]): the step per dimension (missing entries: 1); the entry after the last
            data dimension applies to the batch.
        range_from (list[int]): the start per dimension (missing: 0).
        range_to (list[int]): the end (exclusive) per dimension (missing: the size).
    """
    return _add1(_O["strided_select"], x, (_ints(strides, "strided_select"), _ints(range_from, "strided_select"),
                                           _ints(range_to, "strided_select")))


def strided_getitem(x, index) -> Expression:
    """``x[index]`` for a slice with a step or a tuple of slices, as DyNet's ``__getitem__``.

    Args:
        x (Expression): any dims.
        index (slice or tuple[slice, ...]): one slice per dimension; the position after the
            last data dimension slices the batch.

    Negative and out-of-range bounds follow Python slicing (DyNet rejects them).
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


def _getitem(x, index):
    if isinstance(index, tuple) or (isinstance(index, slice) and index.step not in (None, 1)):
        return strided_getitem(x, index)
    d = _cg.dims[x._check()]
    if isinstance(index, slice):
        n = d.d[0]
        start, stop, step = index.indices(n)
        if step != 1:
            raise NotImplementedError("Expression slicing with a step is not supported yet")
        if stop <= start:
            raise IndexError(f"empty slice {index} of an expression of dim {d}")
        return pickrange(x, start, stop)
    try:
        i = index.__index__()
    except AttributeError:
        raise TypeError(f"Expression indices must be ints or slices, got {type(index).__name__}") from None
    n = d.d[0]
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {index} out of range for an expression of dim {d}")
    return pick(x, i)


_register_indexing(_getitem)


def max_dim(x, d: int = 0) -> Expression:
    """The maximum along dimension ``d`` (removed from the dims).

    Args:
        x (Expression): up to 3 dims.
        d (int): the dimension reduced.

    Batch elements are reduced separately.
    """
    return _add1(_O["max_dim"], x, (_int(d, "max_dim"),))


def min_dim(x, d: int = 0) -> Expression:
    """The minimum along dimension ``d`` (removed from the dims).

    Args:
        x (Expression): up to 3 dims.
        d (int): the dimension reduced.
    """
    return _add1(_O["min_dim"], x, (_int(d, "min_dim"),))


def cumsum(x, d: int = 0) -> Expression:
    """The cumulative sum along dimension ``d`` (dims unchanged).

    Args:
        x (Expression): any dims, batched or not.
        d (int): the dimension summed along.
    """
    return _add1(_O["cumsum"], x, (_int(d, "cumsum"),))


def kmax_pooling(x, k: int, d: int = 1) -> Expression:
    """The ``k`` largest values along dimension ``d``, kept in their original order.

    Args:
        x (Expression): up to 3 dims.
        k (int): how many values to keep, ``1 <= k <=`` the size of dimension d.
        d (int): the dimension pooled over.
    """
    return _add1(_O["kmax_pooling"], x, (_int(k, "kmax_pooling"), _int(d, "kmax_pooling")))


# ============================================================ moments


def moment_elems(x, r: int) -> Expression:
    """The raw moment of order ``r`` (mean of ``x**r``) of all elements, one per batch element.

    Args:
        x (Expression): any dims.
        r (int): the order.
    """
    return moment_dim(x, _all_dims(x, "moment_elems"), r)


def moment_batches(x, r: int) -> Expression:
    """The raw moment of order ``r`` over the batch elements.

    Args:
        x (Expression): a batched expression.
        r (int): the order.
    """
    return moment_dim(x, (), r, True)


def std_dim(x, d: Sequence[int], b: bool = False, n: int = 0) -> Expression:
    """The population standard deviation over the dimensions ``d``.

    Args:
        x (Expression): any dims.
        d (list[int]): the dimensions reduced.
        b (bool): also reduce over the batch.
        n (int): if > 0, the divisor used instead of the number of elements.
    """
    return _add1(_O["std_dim"], x, (_ints(d, "std_dim"), bool(b), _int(n, "std_dim")))


def std_elems(x) -> Expression:
    """The standard deviation of all elements of ``x``, one per batch element.

    Args:
        x (Expression): any dims.
    """
    return std_dim(x, _all_dims(x, "std_elems"))


def std_batches(x) -> Expression:
    """The standard deviation over the batch elements of ``x``.

    Args:
        x (Expression): a batched expression.
    """
    return std_dim(x, (), True)


# ============================================================ losses


def hinge_dim(x, v, d: int = 0, m: float = 1.0) -> Expression:
    """Hinge loss of every column (``d=0``) or row (``d=1``) of the matrix ``x``.

    Args:
        x (Expression): a matrix of scores.
        v (list[int] or list[list[int]]): one gold index per column (row); a list of such
            lists gives one per batch element.
        d (int): 0 for columns, 1 for rows.
        m (float): the margin (not negative).
    """
    v = list(v)
    if v and not isinstance(v[0], Number):
        idx = tuple(_ints(u, "hinge_dim") for u in v)
    else:
        idx = (_ints(v, "hinge_dim"),)
    return _add1(_O["hinge_dim"], x, (idx, _int(d, "hinge_dim"), float(m)))


def pairwise_rank_loss(x, y, m: float = 1.0) -> Expression:
    """The pairwise ranking loss ``max(0, m - x + y)``, elementwise.

    Args:
        x (Expression): scores that should be higher, a row vector ``{1}`` or ``{1, n}``.
        y (Expression): scores that should be lower, the same dims.
        m (float): the margin.
    """
    return _add(_O["pairwise_rank_loss"], (x, y), (float(m),))


def poisson_loss(log_lambda, x: int) -> Expression:
    """The negative log-likelihood of the count ``x`` under a Poisson with rate ``exp(log_lambda)``.

    Args:
        log_lambda (Expression): a scalar, the log of the rate (unbatched).
        x (int): the observed count, >= 0.
    """
    try:
        k = x.__index__()
    except AttributeError:
        raise TypeError(f"poisson_loss: the observed count must be an int, got {x!r}") from None
    return _add1(_O["poisson_loss"], log_lambda, (k,))


# ============================================================ linear algebra


def inverse(x) -> Expression:
    """The inverse of the square matrix ``x`` (unbatched).

    Args:
        x (Expression): an invertible square matrix.
    """
    return _add1(_O["inverse"], x)


def logdet(x) -> Expression:
    """The log of the determinant of the square matrix ``x``, dims ``{1}`` (unbatched).

    Args:
        x (Expression): a square matrix with a positive determinant.
    """
    return _add1(_O["logdet"], x)


def trace_of_product(x, y) -> Expression:
    """The trace of ``x`` times the transpose of ``y``, dims ``{1}`` (unbatched).

    Args:
        x (Expression): a matrix.
        y (Expression): a matrix of the same dims.
    """
    return _add(_O["trace_of_product"], (x, y))


def contract3d_1d(x, y) -> Expression:
    """Contracts the last dimension of the 3-tensor ``x`` with the vector ``y``:
    ``out[i, j] = sum_k x[i, j, k] * y[k]``.

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.

    Either operand may be batched (batch 1 broadcasts).
    """
    return _add(_O["contract3d_1d"], (x, y))


def contract3d_1d_bias(x, y, b) -> Expression:
    """:func:`contract3d_1d` plus the matrix ``b``.

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.
        b (Expression): a matrix ``{i, j}``.
    """
    return contract3d_1d(x, y) + b


def contract3d_1d_1d(x, y, z) -> Expression:
    """Contracts the 3-tensor ``x`` with two vectors:
    ``out[i] = sum_jk x[i, j, k] * y[k] * z[j]`` (unbatched).

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.
        z (Expression): a vector ``{j}``.
    """
    return _add(_O["contract3d_1d_1d"], (x, y, z))


def contract3d_1d_1d_bias(x, y, z, b) -> Expression:
    """:func:`contract3d_1d_1d` plus the vector ``b``.

    Args:
        x (Expression): a tensor ``{i, j, k}``.
        y (Expression): a vector ``{k}``.
        z (Expression): a vector ``{j}``.
        b (Expression): a vector ``{i}``.
    """
    return contract3d_1d_1d(x, y, z) + b


def circ_conv(u, v) -> Expression:
    """The circular convolution of two vectors of the same size (unbatched).

    Args:
        u (Expression): a vector.
        v (Expression): a vector of the same size.
    """
    return _add(_O["circ_conv"], (u, v))


def circ_corr(u, v) -> Expression:
    """The circular correlation of two vectors of the same size (unbatched).

    Args:
        u (Expression): a vector.
        v (Expression): a vector of the same size.
    """
    return _add(_O["circ_corr"], (u, v))


# ============================================================ convolution and pooling


def _pair(v, what: str) -> tuple[int, int]:
    t = _ints(v, what)
    if len(t) != 2:
        raise ValueError(f"{what}: expected two ints, got {list(t)}")
    return t


def conv2d(x, f, stride: Sequence[int], is_valid: bool = True) -> Expression:
    """2-D convolution (cross-correlation, as DyNet and TensorFlow compute it).

    Args:
        x (Expression): the input ``{H, W, C_in}``, batched or not; a 2-d input ``{H, W}`` is one
            input channel, as in DyNet.
        f (Expression): the filters ``{kh, kw, C_in, C_out}``, unbatched.
        stride (list[int]): the row and column strides.
        is_valid (bool): True for VALID padding (no padding), False for SAME (TensorFlow's rule).

    Returns ``{H', W', C_out}`` per batch element.
    """
    xd = _dim(x, "conv2d")
    if len(xd.d) == 2:
        x = reshape(x, xd.d + (1,), xd.bd)
    return _add(_O["conv2d"], (x, f), (_pair(stride, "conv2d stride"), bool(is_valid)))


def conv2d_bias(x, f, b, stride: Sequence[int], is_valid: bool = True) -> Expression:
    """:func:`conv2d` plus a bias per output channel.

    Args:
        x (Expression): the input ``{H, W, C_in}``.
        f (Expression): the filters ``{kh, kw, C_in, C_out}``.
        b (Expression): the bias ``{C_out}``.
        stride (list[int]): the row and column strides.
        is_valid (bool): VALID (True) or SAME (False) padding.
    """
    y = conv2d(x, f, stride, is_valid)
    bd = _dim(b, "conv2d_bias")
    return y + reshape(b, (1, 1, bd.size()), bd.bd)


def maxpooling2d(x, ksize: Sequence[int], stride: Sequence[int], is_valid: bool = True) -> Expression:
    """2-D max pooling over windows of ``ksize``.

    Args:
        x (Expression): ``{H, W}`` or ``{H, W, C}``, batched or not.
        ksize (list[int]): the window's rows and columns.
        stride (list[int]): the row and column strides.
        is_valid (bool): VALID (True) or SAME (False) padding.
    """
    return _add1(_O["maxpooling2d"], x, (_pair(ksize, "maxpooling2d ksize"), _pair(stride, "maxpooling2d stride"),
                                         bool(is_valid)))


def filter1d_narrow(x, f) -> Expression:
    """Narrow 1-D convolution of the matrix ``x`` with the filters ``f`` (unbatched).

    Args:
        x (Expression): a matrix ``{d, s}``.
        f (Expression): filters ``{d, m}`` or ``{d, m, n}`` with ``m <= s``.

    Returns ``{n, s - m + 1}``: one row per filter.
    """
    return _add(_O["filter1d_narrow"], (x, f))


def fold_rows(x, nrows: int = 2) -> Expression:
    """Sums each group of ``nrows`` consecutive rows (unbatched).

    Args:
        x (Expression): a matrix whose rows are a multiple of nrows.
        nrows (int): the group size.
    """
    return _add1(_O["fold_rows"], x, (_int(nrows, "fold_rows"),))


def kmh_ngram(x, v: int) -> Expression:
    """Sums of ``v`` consecutive columns of a matrix (unbatched).

    Args:
        x (Expression): a matrix ``{d, s}``.
        v (int): the n-gram width, ``1 <= v <= s``.
    """
    return _add1(_O["kmh_ngram"], x, (_int(v, "kmh_ngram"),))


# ============================================================ normalisation


def layer_norm(x, g, b) -> Expression:
    """Layer normalisation: ``g * (x - mean(x)) / (std(x) + 1e-8) + b`` over each batch element
    (DyNet's composite).

    Args:
        x (Expression): a vector.
        g (Expression): the gain, same dims.
        b (Expression): the bias, same dims.
    """
    mu = moment_dim(x, _all_dims(x, "layer_norm"), 1)
    sigma = std_elems(x)
    return _add(_O["cmult"], (g, _add(_O["cdiv"], (x - mu, sigma + 1e-8)))) + b


def weight_norm(w, g) -> Expression:
    """Weight normalisation ``g * w / ||w||`` (unbatched).

    Args:
        w (Expression): the weights, any dims.
        g (Expression): a scalar gain.
    """
    return _add(_O["weight_norm"], (w, g))


# ============================================================ fused LSTM pieces


def _noisy(ws, std: float):
    if std > 0:
        return [noise(w, std) for w in ws]
    if std < 0:
        raise ValueError(f"vanilla_lstm_gates: weightnoise_std must be >= 0, got {std}")
    return list(ws)


def vanilla_lstm_gates(x_t, h_tm1, Wx, Wh, b, weightnoise_std: float = 0.0) -> Expression:
    """The stacked gates ``[i; f; o; g]`` of one vanilla LSTM step (forget gate biased by +1):
    sigmoid for i, f, o and tanh for g of ``Wx x_t + Wh h_tm1 + b``.

    Args:
        x_t (Expression): the input ``{n_in}``, batched or not.
        h_tm1 (Expression): the previous hidden state ``{n}``.
        Wx (Expression): ``{4n, n_in}``.
        Wh (Expression): ``{4n, n}``.
        b (Expression): ``{4n}``.
        weightnoise_std (float): if > 0, Gaussian noise of this std on Wx, Wh and b for this step
            (DyNet draws the noisy weights but then multiplies by the clean ones).

    Returns ``{4n}``.
    """
    Wx, Wh, b = _noisy((Wx, Wh, b), float(weightnoise_std))
    return _add(_O["vanilla_lstm_gates"], (x_t, h_tm1, Wx, Wh, b))


def vanilla_lstm_gates_concat(x_ts: Sequence, h_tm1, Wx, Wh, b, weightnoise_std: float = 0.0) -> Expression:
    """:func:`vanilla_lstm_gates` of the inputs ``x_ts`` concatenated into one vector.

    Args:
        x_ts (list[Expression]): the input parts.
        h_tm1 (Expression): the previous hidden state ``{n}``.
        Wx (Expression): ``{4n, n_in}``.
        Wh (Expression): ``{4n, n}``.
        b (Expression): ``{4n}``.
        weightnoise_std (float): weight noise std (0: none).
    """
    return vanilla_lstm_gates(concatenate(list(x_ts)), h_tm1, Wx, Wh, b, weightnoise_std)


def vanilla_lstm_gates_dropout(x_t, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                               weightnoise_std: float = 0.0) -> Expression:
    """:func:`vanilla_lstm_gates` with ``x_t`` and ``h_tm1`` multiplied by dropout masks.

    Args:
        x_t (Expression): the input ``{n_in}``.
        h_tm1 (Expression): the previous hidden state ``{n}``.
        Wx (Expression): ``{4n, n_in}``.
        Wh (Expression): ``{4n, n}``.
        b (Expression): ``{4n}``.
        dropout_mask_x (Expression): the mask of x_t, ``{n_in}``.
        dropout_mask_h (Expression): the mask of h_tm1, ``{n}``.
        weightnoise_std (float): weight noise std (0: none).
    """
    Wx, Wh, b = _noisy((Wx, Wh, b), float(weightnoise_std))
    return _add(_O["vanilla_lstm_gates_dropout"], (x_t, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h))


def vanilla_lstm_gates_dropout_concat(x_ts: Sequence, h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                                      weightnoise_std: float = 0.0) -> Expression:
    """:func:`vanilla_lstm_gates_dropout` of the inputs ``x_ts`` concatenated.

    Args:
        x_ts (list[Expression]): the input parts.
        h_tm1 (Expression): the previous hidden state.
        Wx (Expression): ``{4n, n_in}``.
        Wh (Expression): ``{4n, n}``.
        b (Expression): ``{4n}``.
        dropout_mask_x (Expression): the input mask.
        dropout_mask_h (Expression): the hidden-state mask.
        weightnoise_std (float): weight noise std (0: none).
    """
    return vanilla_lstm_gates_dropout(concatenate(list(x_ts)), h_tm1, Wx, Wh, b, dropout_mask_x, dropout_mask_h,
                                      weightnoise_std)


def vanilla_lstm_c(c_tm1, gates_t) -> Expression:
    """The new cell state ``c_t = i * g + f * c_tm1`` from the gates ``[i; f; o; g]``.

    Args:
        c_tm1 (Expression): the previous cell state ``{n}``.
        gates_t (Expression): the gates ``{4n}`` of :func:`vanilla_lstm_gates`.
    """
    return _add(_O["vanilla_lstm_c"], (c_tm1, gates_t))


def vanilla_lstm_h(c_t, gates_t) -> Expression:
    """The new hidden state ``h_t = o * tanh(c_t)`` from the gates ``[i; f; o; g]``.

    Args:
        c_t (Expression): the cell state ``{n}``.
        gates_t (Expression): the gates ``{4n}``.
    """
    return _add(_O["vanilla_lstm_h"], (c_t, gates_t))


# ============================================================ devices


def to_device(e, device_str: str) -> Expression:
    """The value of ``e`` moved to another device of the current backend (an identity in the graph).

    Args:
        e (Expression): any dims.
        device_str (str): a device of ``available_devices()``, e.g. ``"CPU"`` or ``"GPU:0"``.
    """
    dev = device_str.decode() if isinstance(device_str, bytes) else str(device_str)
    be = config.backend()
    known = {d.lower(): d for d in be.devices}
    if dev.lower() not in known:
        raise ValueError(f"to_device: {dev!r} is not a device of backend {be.name!r} (devices: "
                         f"{', '.join(be.devices)}); moving values between backends is not supported")
    return _add1(_O["to_device"], e, (known[dev.lower()],))
