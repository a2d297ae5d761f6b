"""Building blocks of networks and builders (composites of primitives, as DyNet writes them): dropout and noise,
layer and weight normalisation, and the fused LSTM pieces."""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Expression
from ..ops import check_attr
from ._common import _O, _add, _all_dims, _dim, public_names
from .arithmetic import cmult
from .inputs import random_bernoulli, random_normal
from .reductions import moment_dim, std_elems
from .shape import concatenate

_IMPORTED = frozenset(globals())  # everything defined below, unless _private, is public


def _mask(x, p: float, shape_of, what: str) -> Expression:
    check_attr(_O["random_bernoulli"], "p", p, what)
    d, bd = shape_of(_dim(x, what))
    return random_bernoulli(d, 1.0 - p, 1.0 / (1.0 - p) if p < 1.0 else 0.0, bd)  # p == 1 drops all, as DyNet


def dropout(x, p: float) -> Expression:
    """Zeroes each element with probability ``p`` and scales the rest by ``1 / (1 - p)``.

    Args:
        x (Expression): any dims.
        p (float): the drop probability in [0, 1].

    Each batch element draws its own mask.
    """
    if p == 0:
        return x
    return cmult(x, _mask(x, p, lambda d: (d.d, d.bd), "dropout"))


def dropout_dim(x, d: int, p: float) -> Expression:
    """Dropout of whole slices: one draw per position along every dimension except ``d``.

    Args:
        x (Expression): any dims.
        d (int): the dimension along which the mask is shared.
        p (float): the drop probability.
    """
    def shape(xd):
        if not 0 <= d < len(xd.d):
            raise ValueError(f"dropout_dim: dimension {d} out of range for {xd}")
        dd = list(xd.d)
        dd[d] = 1
        return tuple(dd), xd.bd

    if p == 0:
        return x
    return cmult(x, _mask(x, p, shape, "dropout_dim"))


def dropout_batch(x, p: float) -> Expression:
    """Drops whole batch elements: one draw per batch element.

    Args:
        x (Expression): a batched expression.
        p (float): the drop probability.
    """
    if p == 0:
        return x
    return cmult(x, _mask(x, p, lambda d: ((1,), d.bd), "dropout_batch"))


def block_dropout(x, p: float) -> Expression:
    """Drops all of ``x`` (every batch element) with probability ``p``, else scales it by ``1 / (1 - p)``.

    Args:
        x (Expression): any dims.
        p (float): the drop probability.
    """
    if p == 0:
        return x
    return cmult(x, _mask(x, p, lambda d: ((1,), 1), "block_dropout"))


def noise(x, stddev: float) -> Expression:
    """``x`` plus Gaussian noise of standard deviation ``stddev`` (drawn per element and batch element).

    Args:
        x (Expression): any dims.
        stddev (float): the noise's standard deviation.
    """
    check_attr(_O["random_normal"], "stddev", stddev, "noise")
    d = _dim(x, "noise")
    return x + random_normal(d.d, 0.0, stddev, d.bd)


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

__all__ = public_names(globals(), _IMPORTED)
