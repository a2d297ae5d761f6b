"""What every RNN builder shares: per-graph parameter loading, states, dropout masks.

DyNet keeps a builder's steps in arrays inside the builder and hands out
``RNNState`` objects holding an index; here a state holds its own per-layer
vectors (``h`` and, for LSTMs, ``c``), which gives the same behaviour without
the bookkeeping.  A builder loads its parameters into the current graph once,
at the first ``initial_state`` of that graph, and caches that initial state,
as DyNet's Python binding does; dropout masks are drawn lazily at the first
``add_input`` after that (or by ``set_dropout_masks``) and reused for every
step of every sequence in the graph (variational dropout).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .. import functions as F
from ..graph import Expression, _cg
from ..ops import OPS
from ..params import ParameterCollection

_MATMUL = OPS["matmul"]


def as_size(v, what: str) -> int:
    """A positive int; integral floats are accepted (BiRNNBuilder passes ``hidden_dim / 2``)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {v!r}") from None
    if f != int(f) or f < 1:
        raise ValueError(f"{what} must be a positive integer, got {v!r}")
    return int(f)


def check_rate(p, what: str = "dropout rate") -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{what} must be a probability (>=0 and <=1), got {p}")
    return p


def bernoulli_mask(dim: int, p: float, batch_size: int) -> Expression:
    """Inverted-dropout mask: 1/(1-p) with probability 1-p, else 0 (all zeros for p = 1)."""
    if p >= 1.0:
        return F.random_bernoulli((dim,), 0.0, 0.0, batch_size)
    return F.random_bernoulli((dim,), 1.0 - p, 1.0 / (1.0 - p), batch_size)


def matmul(a: Expression, b: Expression) -> Expression:
    """A matrix product even when an operand is 1x1 (``*`` turns those into cmult)."""
    return _cg.add(_MATMUL, (a, b))


def layer_norm(x: Expression, g: Expression, b: Expression) -> Expression:
    """DyNet's layer_norm composite: g * (x - mean) / (std + 1e-8) + b (population std)."""
    xc = x - F.mean_elems(x)
    sigma = F.sqrt(F.mean_elems(F.square(xc)))
    return F.cmult(g, F.cdiv(xc, sigma + 1e-8)) + b


def _batch_of(x: Expression) -> int:
    return _cg.dims[x._check()].bd


class RNNState:
    """One step of a sequence: ``add_input`` returns the next state, ``prev`` the one before.
    States come from ``builder.initial_state()``; the constructor is internal.

    Args:
        builder: the builder this state belongs to.
        prev (RNNState or None): the previous state.
        out (Expression or None): the output at this step.
        h (tuple or None): every layer's hidden state.
        c (tuple or None): every layer's cell state (LSTMs).
    """

    __slots__ = ("_b", "_prev", "_out", "_h", "_c")

    def __init__(self, builder: _RNNBuilder, prev: RNNState | None, out: Expression | None,
                 h: tuple | None, c: tuple | None) -> None:
        self._b = builder
        self._prev = prev
        self._out = out
        self._h = h
        self._c = c

    def add_input(self, x: Expression) -> RNNState:
        """The next state after reading ``x``.

        Args:
            x (Expression): the input ``{input_dim}``, batched or not.
        """
        b = self._b
        b._check_graph()
        h, c, out = b._step(x, self._h, self._c)
        return RNNState(b, self, out, h, c)

    def add_inputs(self, xs: Iterable[Expression]) -> list[RNNState]:
        """The states after reading each input of ``xs`` in turn.

        Args:
            xs (list[Expression]): the inputs.
        """
        states = []
        cur = self
        for x in xs:
            cur = cur.add_input(x)
            states.append(cur)
        return states

    def transduce(self, xs: Iterable[Expression]) -> list[Expression]:
        """The outputs after reading each input of ``xs`` in turn (no state objects: the cheap way).

        Args:
            xs (list[Expression]): the inputs.
        """
        b = self._b
        b._check_graph()
        return b._transduce(xs, self._h, self._c)

    def output(self) -> Expression | None:
        """The top layer's output at this step (None for the initial state)."""
        return self._out

    def h(self) -> tuple:
        """The output of every layer at this step (empty for the initial state)."""
        return tuple(self._h) if self._h is not None else ()

    def s(self) -> tuple:
        """The full state: LSTMs ``(c_1..c_L, h_1..h_L)``; other builders the same as ``h()``."""
        if self._h is None:
            return ()
        if self._c is None:
            return tuple(self._h)
        return tuple(self._c) + tuple(self._h)

    def set_h(self, es: Sequence[Expression] | None = None) -> RNNState:
        """A new state whose hidden vectors are ``es`` (the cells of an LSTM are kept).

        Args:
            es (list[Expression] or None): one vector per layer.
        """
        b = self._b
        b._check_graph()
        h, c = b._set_h(self._h, self._c, _exprs(es, "set_h"))
        return RNNState(b, self, h[-1], h, c)

    def set_s(self, es: Sequence[Expression] | None = None) -> RNNState:
        """A new state whose full state is ``es`` (as :meth:`s` lists it).

        Args:
            es (list[Expression] or None): for LSTMs ``c_1..c_L, h_1..h_L``, else one vector per layer.
        """
        b = self._b
        b._check_graph()
        h, c = b._set_s(self._h, self._c, _exprs(es, "set_s"))
        return RNNState(b, self, h[-1], h, c)

    def prev(self) -> RNNState | None:
        """The state before this one (None for the initial state)."""
        return self._prev

    def b(self) -> _RNNBuilder:
        """The builder this state belongs to."""
        return self._b

    def __repr__(self) -> str:
        return f"<RNNState of {self._b.whoami()}>"


def _exprs(es, what: str) -> list:
    if es is None:
        raise ValueError(f"{what}: needs a list of expressions")
    es = list(es)
    for e in es:
        if not isinstance(e, Expression):
            raise TypeError(f"{what}: expected Expressions, got {type(e).__name__}")
    return es


class StackedRNNState:
    """States of several single-layer builders stacked by hand (DyNet's Python helper): each
    layer's output is the next layer's input.

    Args:
        states (list[RNNState]): one state per layer, bottom first.
        prev (StackedRNNState or None): the previous stacked state.
    """

    def __init__(self, states: list, prev: StackedRNNState | None = None) -> None:
        self.states = list(states)
        self._prev = prev

    def add_input(self, x: Expression) -> StackedRNNState:
        """The next stacked state after reading ``x`` through every layer.

        Args:
            x (Expression): the input of the bottom layer.
        """
        nxt = []
        for s in self.states:
            nxt.append(s.add_input(x))
            x = nxt[-1].output()
        return StackedRNNState(nxt, self)

    def add_inputs(self, xs: Iterable[Expression]) -> list[StackedRNNState]:
        """The stacked states after reading each input of ``xs`` in turn.

        Args:
            xs (list[Expression]): the inputs.
        """
        out = []
        cur = self
        for x in xs:
            cur = cur.add_input(x)
            out.append(cur)
        return out

    def output(self) -> Expression | None:
        """The top layer's output."""
        return self.states[-1].output()

    def prev(self) -> StackedRNNState | None:
        """The previous stacked state."""
        return self._prev

    def h(self) -> list:
        """Every layer's ``h()``."""
        return [s.h() for s in self.states]

    def s(self) -> list:
        """Every layer's ``s()``."""
        return [s.s() for s in self.states]


class _RNNBuilder:
    """Base of the RNN builders; subclasses set ``_params`` (per layer) and define ``_step``."""

    _kind = "RNNBuilder"

    def _setup(self, layers, input_dim, hidden_dim, model, sub: str) -> None:
        if not isinstance(model, ParameterCollection):
            raise TypeError(f"{self._kind}: model must be a ParameterCollection, got {type(model).__name__}")
        self.layers = as_size(layers, f"{self._kind}: layers")
        self.input_dim = as_size(input_dim, f"{self._kind}: input_dim")
        self.hidden_dim = as_size(hidden_dim, f"{self._kind}: hidden_dim")
        self._model = model
        self._pc = model.add_subcollection(sub)
        self._params: list[list] = []
        self._vars: list[list] | None = None
        self._cg_version = -1
        self._init = None
        self._masks: list | None = None
        self.dropout_rate = 0.0

    # ------------------------------------------------------------ graph
    def _check_graph(self) -> None:
        if self._cg_version != _cg.ver:
            raise ValueError(f"Using stale builder ({self._kind}): call initial_state() after the computation "
                             "graph is renewed")

    def _load(self, p, update: bool) -> Expression:
        """A parameter in this graph: trainable, or a constant when ``update`` is False."""
        return p.expr(update=bool(update))

    def _new_graph(self, update: bool) -> None:
        self._vars = [[self._load(p, update) for p in layer] for layer in self._params]

    def initial_state(self, vecs: Sequence[Expression] | None = None, update: bool = True) -> RNNState:
        """The state before the first input, for the current graph (cached per graph).

        Args:
            vecs (list[Expression] or None): an initial full state, as for :meth:`RNNState.set_s`.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        if self._cg_version != _cg.ver:
            self._new_graph(bool(update))
            self._cg_version = _cg.ver
            self._masks = None
            self._init = RNNState(self, None, None, None, None)
        if vecs is not None:
            return self._init.set_s(vecs)
        return self._init

    def initial_state_from_raw_vectors(self, vecs, update: bool = True) -> RNNState:
        """:meth:`initial_state` from NumPy vectors or lists.

        Args:
            vecs (list): the initial full state, as arrays.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return self.initial_state([F.inputTensor(v) for v in vecs], update)

    # ------------------------------------------------------------ parameters
    def param_collection(self):
        """The subcollection holding the builder's parameters."""
        return self._pc

    def get_parameters(self) -> list[list]:
        """The builder's Parameters, one list per layer."""
        return [list(layer) for layer in self._params]

    def get_parameter_expressions(self) -> list[list[Expression]]:
        """The parameters as expressions of the current graph, one list per layer (after ``initial_state``)."""
        if self._vars is None or self._cg_version != _cg.ver:
            raise ValueError("Attempt to use a stale expression, renew CG and/or call initial_state before accessing "
                             f"{self._kind} internal parameters expression")
        return [list(layer) for layer in self._vars]

    def whoami(self) -> str:
        """The builder's class name."""
        return self._kind

    # ------------------------------------------------------------ dropout
    def set_dropout(self, p: float) -> None:
        """Sets the dropout rate of the builder's inputs.

        Args:
            p (float): the rate, in [0, 1].
        """
        self.dropout_rate = check_rate(p)

    def disable_dropout(self) -> None:
        """Turns dropout off."""
        self.dropout_rate = 0.0

    # ------------------------------------------------------------ steps
    def _check_input(self, x: Expression) -> int:
        if not isinstance(x, Expression):
            raise TypeError(f"{self._kind}.add_input: expected an Expression, got {type(x).__name__}")
        d = _cg.dims[x._check()]
        if d.d not in ((self.input_dim,), (self.input_dim, 1)):
            raise ValueError(f"{self._kind}.add_input: input of dim {d}, the builder expects {{{self.input_dim}}} "
                             "(optionally batched)")
        return d.bd

    def _check_count(self, es: list, what: str, allowed: tuple[int, ...]) -> None:
        if len(es) not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{self._kind}.{what} expects {want} expressions for {self.layers} layers, got {len(es)}")

    def _transduce(self, xs: Iterable[Expression], h, c) -> list[Expression]:
        """The outputs of ``_step`` over xs from state (h, c); builders may run it faster."""
        out = []
        for x in xs:
            h, c, y = self._step(x, h, c)
            out.append(y)
        return out

    def _step(self, x, h, c):  # pragma: no cover - every builder overrides it
        """One input through every layer: returns (h per layer, c per layer or None, output)."""
        raise NotImplementedError

    # Builders without a cell (SimpleRNN, GRU): the state is h only.
    def _set_h(self, h, c, es):
        self._check_count(es, "set_h", (self.layers,))
        return tuple(es), None

    def _set_s(self, h, c, es):
        self._check_count(es, "set_s", (self.layers,))
        return tuple(es), None

    def __repr__(self) -> str:
        return f"<{self._kind} {self.layers}x({self.input_dim}->{self.hidden_dim}) in {self._pc.name()}>"


class _CellBuilder(_RNNBuilder):
    """LSTMs: the state is (c per layer, h per layer); ``set_s`` takes c's, or c's then h's."""

    def _zeros(self) -> Expression:
        return F.zeros((self.hidden_dim,))

    def _set_h(self, h, c, es):
        self._check_count(es, "set_h", (self.layers,))
        cs = tuple(c) if c is not None else tuple(self._zeros() for _ in range(self.layers))
        return tuple(es), cs

    def _set_s(self, h, c, es):
        n = self.layers
        self._check_count(es, "set_s", (n, 2 * n))
        if len(es) == n:
            hs = tuple(h) if h is not None else tuple(self._zeros() for _ in range(n))
        else:
            hs = tuple(es[n:])
        return hs, tuple(es[:n])


class _Savable:
    """``spec``/``from_spec`` so ``dy.save``/``dy.load`` can rebuild the builder."""

    _spec: tuple

    @property
    def spec(self) -> tuple:
        """The constructor arguments that ``dy.save`` stores to rebuild the builder."""
        return self._spec

    @classmethod
    def from_spec(cls, spec, model):
        """Rebuilds the builder from a stored ``spec``, in ``model`` (used by ``dy.load``).

        Args:
            spec (tuple): the constructor arguments, without the collection.
            model (ParameterCollection): the collection to create the parameters in.
        """
        return cls(*spec[:3], model, *spec[3:])
