"""DyNet's SimpleRNNBuilder and GRUBuilder (dynet/rnn.cc, dynet/gru.cc), over ops."""

from __future__ import annotations

from .. import functions as F
from ..params import ConstInitializer
from ._base import _RNNBuilder, _Savable, bernoulli_mask, check_rate


class SimpleRNNBuilder(_Savable, _RNNBuilder):
    """h_t = tanh(W_x x_t + W_h h_{t-1} + b), layer by layer.

    Parameters per layer, in DyNet's order and subcollection ``simple-rnn-builder``:
    W_x {hidden, in}, W_h {hidden, hidden}, b {hidden} (zeros).
    Dropout (``set_dropouts(d, d_h)``) is variational: one mask for the input of each
    layer and one for its recurrent input, drawn once per graph.
    """

    _kind = "SimpleRNNBuilder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model) -> None:
        """Creates the builder's parameters in a subcollection of ``model``.

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden state of every layer.
            model (ParameterCollection): the collection that holds the parameters.
        """
        self._setup(layers, input_dim, hidden_dim, model, "simple-rnn-builder")
        self._spec = (self.layers, self.input_dim, self.hidden_dim)
        pc, hid = self._pc, self.hidden_dim
        ind = self.input_dim
        for _ in range(self.layers):
            self._params.append([
                pc.add_parameters((hid, ind)),
                pc.add_parameters((hid, hid)),
                pc.add_parameters((hid,), init=ConstInitializer(0.0)),
            ])
            ind = hid
        self.dropout_rate_h = 0.0

    def set_dropout(self, p: float) -> None:
        """Sets the same variational dropout rate on the layer inputs and the recurrent inputs.

        Args:
            p (float): the rate, in [0, 1].
        """
        self.dropout_rate = self.dropout_rate_h = check_rate(p)

    def set_dropouts(self, d: float, d_h: float) -> None:
        """Sets the dropout rates separately.

        Args:
            d (float): the rate of each layer's input.
            d_h (float): the rate of the recurrent input.
        """
        self.dropout_rate = check_rate(d)
        self.dropout_rate_h = check_rate(d_h)

    def disable_dropout(self) -> None:
        """Turns dropout off."""
        self.dropout_rate = self.dropout_rate_h = 0.0

    def set_dropout_masks(self, batch_size: int = 1) -> None:
        """Draws the dropout masks now (call after ``initial_state``).

        Args:
            batch_size (int): one mask per batch element.
        """
        self._check_graph()
        self._masks = []
        if self.dropout_rate > 0 or self.dropout_rate_h > 0:
            for i in range(self.layers):
                idim = self.input_dim if i == 0 else self.hidden_dim
                self._masks.append((bernoulli_mask(idim, self.dropout_rate, batch_size),
                                    bernoulli_mask(self.hidden_dim, self.dropout_rate_h, batch_size)))

    def _step(self, x, h, c):
        bd = self._check_input(x)
        if (self.dropout_rate > 0 or self.dropout_rate_h > 0) and self._masks is None:
            self.set_dropout_masks(bd)
        out = []
        for i, (wx, wh, b) in enumerate(self._vars):
            if self.dropout_rate > 0:
                x = F.cmult(x, self._masks[i][0])
            if h is not None:
                hp = h[i]
                if self.dropout_rate_h > 0:
                    hp = F.cmult(hp, self._masks[i][1])
                x = F.tanh(F.affine_transform([b, wx, x, wh, hp]))
            else:
                x = F.tanh(F.affine_transform([b, wx, x]))
            out.append(x)
        return tuple(out), None, x


class GRUBuilder(_Savable, _RNNBuilder):
    """Gated recurrent unit, as DyNet computes it::

        z = sigmoid(W_zx x + W_zh h + b_z)      r = sigmoid(W_rx x + W_rh h + b_r)
        h~ = tanh(W_hx x + W_hh (r * h) + b_h)  h' = (1 - z) * h + z * h~

    Parameters per layer (subcollection ``gru-builder``): W_zx, W_zh, b_z, W_rx, W_rh, b_r,
    W_hx, W_hh, b_h.  DyNet's GRU dropout is *not* variational: ``set_dropout(p)`` drops
    each layer's input and the final output with a fresh mask at every step.
    """

    _kind = "GRUBuilder"

    def __init__(self, layers: int, input_dim: int, hidden_dim: int, model) -> None:
        """Creates the builder's parameters in a subcollection of ``model``.

        Args:
            layers (int): the number of stacked layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the size of the hidden state of every layer.
            model (ParameterCollection): the collection that holds the parameters.
        """
        self._setup(layers, input_dim, hidden_dim, model, "gru-builder")
        self._spec = (self.layers, self.input_dim, self.hidden_dim)
        pc, hid = self._pc, self.hidden_dim
        ind = self.input_dim
        for _ in range(self.layers):
            layer = []
            for _gate in "zrh":
                layer += [pc.add_parameters((hid, ind)), pc.add_parameters((hid, hid)),
                          pc.add_parameters((hid,), init=ConstInitializer(0.0))]
            self._params.append(layer)
            ind = hid

    def _step(self, x, h, c):
        self._check_input(x)
        p = self.dropout_rate
        out = []
        for i, (xz, hz, bz, xr, hr, br, xh, hh, bh) in enumerate(self._vars):
            if p > 0:
                x = F.dropout(x, p)
            if h is None:
                z = F.logistic(F.affine_transform([bz, xz, x]))
                cand = F.tanh(F.affine_transform([bh, xh, x]))
                x = F.cmult(z, cand)
            else:
                hp = h[i]
                z = F.logistic(F.affine_transform([bz, xz, x, hz, hp]))
                r = F.logistic(F.affine_transform([br, xr, x, hr, hp]))
                cand = F.tanh(F.affine_transform([bh, xh, x, hh, F.cmult(r, hp)]))
                x = F.cmult(1.0 - z, hp) + F.cmult(z, cand)
            out.append(x)
        # DyNet drops the returned output but keeps the undropped h in the state.
        return tuple(out), None, (F.dropout(x, p) if p > 0 else x)
