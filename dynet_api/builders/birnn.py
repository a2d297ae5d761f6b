"""DyNet's BiRNNBuilder: forward and backward builders per layer, outputs concatenated."""

from __future__ import annotations

from collections.abc import Sequence

from .. import functions as F
from ..graph import Expression
from ._base import as_size


class BiRNNBuilder:
    """A stack of bidirectional layers, each a (forward, backward) pair of one-layer builders.

    ``hidden_dim`` is split evenly: every constituent builder gets ``hidden_dim / 2``
    (a float, as in DyNet; the builders accept integral floats).  The builders live in
    the subcollection ``birnn`` of ``model``.
    """

    def __init__(self, num_layers: int, input_dim: int, hidden_dim: int, model, rnn_builder_factory,
                 builder_layers: Sequence | None = None) -> None:
        """Builds the layers from a builder class, or takes them ready-made.

        Args:
            num_layers (int): the number of bidirectional layers.
            input_dim (int): the size of each input vector.
            hidden_dim (int): the output size of each layer (even; each direction gets half).
            model (ParameterCollection): the collection that holds the parameters.
            rnn_builder_factory: a builder class such as ``dy.LSTMBuilder``.
            builder_layers (list or None): ready (forward, backward) builder pairs, used instead.
        """
        self.spec = (num_layers, input_dim, hidden_dim, rnn_builder_factory, builder_layers)
        self.model = model.add_subcollection("birnn")
        if builder_layers is None:
            n = as_size(num_layers, "BiRNNBuilder: num_layers")
            hid = as_size(hidden_dim, "BiRNNBuilder: hidden_dim")
            if hid % 2:
                raise ValueError(f"BiRNNBuilder: hidden dimension must be even, got {hid}")
            if not callable(rnn_builder_factory):
                raise TypeError("BiRNNBuilder: rnn_builder_factory must be a builder class, e.g. dy.LSTMBuilder")
            self.builder_layers = []
            ind = input_dim
            for _ in range(n):
                f = rnn_builder_factory(1, ind, hid / 2, self.model)
                b = rnn_builder_factory(1, ind, hid / 2, self.model)
                self.builder_layers.append((f, b))
                ind = hid
        else:
            self.builder_layers = [tuple(pair) for pair in builder_layers]

    @classmethod
    def from_spec(cls, spec, model) -> BiRNNBuilder:
        """Rebuilds the builder from a stored ``spec``, in ``model`` (used by ``dy.load``).

        Args:
            spec (tuple): the constructor arguments, without the collection.
            model (ParameterCollection): the collection.
        """
        num_layers, input_dim, hidden_dim, factory, builder_layers = spec
        return cls(num_layers, input_dim, hidden_dim, model, factory, builder_layers)

    def param_collection(self):
        """The subcollection holding the builders' parameters."""
        return self.model

    def whoami(self) -> str:
        """The builder's class name."""
        return "BiRNNBuilder"

    def set_dropout(self, p: float) -> None:
        """Sets the dropout rate of every constituent builder.

        Args:
            p (float): the rate.
        """
        for fb, bb in self.builder_layers:
            fb.set_dropout(p)
            bb.set_dropout(p)

    def disable_dropout(self) -> None:
        """Turns dropout off in every constituent builder."""
        for fb, bb in self.builder_layers:
            fb.disable_dropout()
            bb.disable_dropout()

    @staticmethod
    def _inputs(es) -> list:
        es = list(es)
        for e in es:
            if not isinstance(e, Expression):
                raise TypeError(f"BiRNNBuilder: expected a list of Expressions, got {type(e).__name__}")
            e._check()
        return es

    def add_inputs(self, es: Sequence[Expression]) -> list[tuple]:
        """(forward state, backward state) of the top layer per position, aligned with the input order.

        Args:
            es (list[Expression]): the input sequence.
        """
        es = self._inputs(es)
        for fb, bb in self.builder_layers[:-1]:
            fs = fb.initial_state().transduce(es)
            bs = bb.initial_state().transduce(reversed(es))
            es = [F.concatenate([f, b]) for f, b in zip(fs, reversed(bs), strict=True)]
        fb, bb = self.builder_layers[-1]
        fs = fb.initial_state().add_inputs(es)
        bs = bb.initial_state().add_inputs(reversed(es))
        return list(zip(fs, reversed(bs), strict=True))

    def transduce(self, es: Sequence[Expression]) -> list[Expression]:
        """The concatenated [forward; backward] top-layer output per position.

        Args:
            es (list[Expression]): the input sequence.
        """
        es = self._inputs(es)
        for fb, bb in self.builder_layers:
            fs = fb.initial_state().transduce(es)
            bs = bb.initial_state().transduce(reversed(es))
            es = [F.concatenate([f, b]) for f, b in zip(fs, reversed(bs), strict=True)]
        return es
