"""DyNet's trainers, written once over the backend's ``update`` kernel.

``update()`` follows DyNet's order: global-norm gradient clipping (threshold 5
by default; a NaN/Inf norm raises), one rule step for every parameter marked
updated (only the looked-up rows of a lookup table while sparse updates are on),
then the gradients are cleared and weight decay is applied.  The step and the clear
go to the backend as one ``update_all`` call per update (one pass over each gradient).

A trainer rule is declared once, by its class here: the docstring (with the rule's
formula) and a :class:`TrainerRule` record -- the rule's name, its number of state
tensors, whether its step scales with ``lr``, and its constructor arguments with
DyNet's names, defaults and ranges (which are also its ``hyper`` keys).  The
constructor, its signature and the ``Args:`` of the docstring are made from the
record; :data:`RULES` lists the records, and ``scripts/gen_update_rules.py`` writes the
C++ backend's rule table from them.  Each backend then has one kernel per rule
(``docs/adding_a_trainer.md``).  In the formulas, g is the gradient times the
clipping scale.

Weight decay (``--dynet-weight-decay`` or ``pc.set_weight_decay``) is DyNet's lazy
scale: the weights are the stored values times one factor per root collection
(:class:`~dynet_api.params.WeightScale`), which each update multiplies by (1 - lambda),
so no table is scanned for it.  The rules step the weights themselves: ``lr`` reaches
the backend divided by the factor, and the rules whose step is not proportional to
``lr`` (momentum, adadelta, eg) get ``wscale`` = 1 / factor in ``hyper`` and multiply
their step by it, as DyNet divides by ``current_weight_decay()``.  The values read back
(``as_array()``, model files, the graph's leaves) are the decayed weights.
"""

from __future__ import annotations

import array
import inspect
import itertools
import keyword
import math
import operator
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .accelerator import fastgraph as _fastgraph
from .params import ParameterCollection, ParamStorage


def _finite(owner: str, name: str, v, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
            hi_open: bool = False) -> float:
    """A hyperparameter as a float, refused (ValueError naming the trainer and the argument) when it is
    NaN, infinite, or outside [lo, hi] (open ends where asked): a bad value would make training diverge
    silently."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be a number, got {type(v).__name__} {v!r}") from None
    ok = math.isfinite(f)
    if ok and lo is not None:
        ok = f > lo if lo_open else f >= lo
    if ok and hi is not None:
        ok = f < hi if hi_open else f <= hi
    if not ok:
        lo_s = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}, "
        hi_s = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        raise ValueError(f"{owner}: {name} must be a finite number in {lo_s}{hi_s}, got {v!r}")
    return f


@dataclass(frozen=True)
class Arg:
    """One constructor argument of a trainer, after the collection: DyNet's name and default, the range
    it is checked against (``[lo, hi]``, ``hi`` excluded with ``hi_open``), and whether it reaches the
    backend as ``hyper[name]`` (``sent``; ``checked=False``: only converted to float, DyNet's ignored
    arguments)."""

    name: str
    default: float | None  # None: required
    doc: str
    lo: float | None = 0.0
    hi: float | None = None
    hi_open: bool = False
    sent: bool = True
    checked: bool = True
    is_lr: bool = False  # the learning rate: kept as ``trainer.learning_rate``, sent as ``hyper["lr"]``

    def value(self, owner: str, v: Any) -> float:
        """``v`` checked (ValueError/TypeError naming ``owner`` and this argument) and as a float."""
        if not self.checked:
            return float(v)
        return _finite(owner, self.name, v, self.lo, self.hi, hi_open=self.hi_open)


def learning_rate(default: float | None, name: str = "learning_rate") -> Arg:
    """The learning-rate argument (Adam's is called ``alpha``): at least 0, sent as ``hyper["lr"]``."""
    return Arg(name, default, "the learning rate.", is_lr=True)


@dataclass(frozen=True)
class TrainerRule:
    """A trainer rule, everything the front end knows of it.

    ``name`` is what the backends' kernels are registered under; ``n_states`` the number of
    shadow tensors per parameter (zeros at first); ``args`` the trainer's constructor arguments
    in DyNet's order; ``step_in_lr`` whether the step on the weights is proportional to ``lr``
    (then the lazy weight decay folds into ``lr``, else the kernel gets ``hyper["wscale"]``);
    ``lr_t(lr, hyper, t)`` the learning rate sent at update ``t`` (from 1; Adam's bias
    correction); ``sparse_updates`` the trainer's default for ``set_sparse_updates``;
    ``wants_gbound``: the rule takes square roots or quotients, which a backend may compute
    faster under a known bound on the gradients, so the trainer measures the gradient norm
    (``hyper["gbound"]``) even with clipping off.
    """

    name: str
    n_states: int
    args: tuple[Arg, ...]
    step_in_lr: bool = True
    lr_t: Callable[[float, dict, int], float] | None = None
    sparse_updates: bool = True
    wants_gbound: bool = False

    @property
    def hyper_keys(self) -> tuple[str, ...]:
        """The rule's keys of ``hyper``, besides ``gscale`` (every update) and ``wscale`` (under weight
        decay, for a rule whose step is not in ``lr``)."""
        return ("lr",) + tuple(a.name for a in self.args if a.sent and not a.is_lr)

    def signature(self) -> inspect.Signature:
        """The trainer's constructor signature: ``(self, m, <args with DyNet's defaults>)``."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter("self", kind), inspect.Parameter("m", kind, annotation="ParameterCollection")]
        params += [inspect.Parameter(a.name, kind, annotation="float",
                                     default=inspect.Parameter.empty if a.default is None else a.default)
                   for a in self.args]
        return inspect.Signature(params, return_annotation="None")

    def args_doc(self) -> str:
        """The ``Args:`` section of the trainer's docstring."""
        lines = ["Args:", "    m (ParameterCollection): the parameters to train."]
        lines += [f"    {a.name} (float): {a.doc}" for a in self.args]
        return "\n".join(lines)


def _adam_lr(lr: float, h: dict, t: int) -> float:
    """Adam's bias-corrected learning rate at update ``t``."""
    return lr * math.sqrt(1 - h["beta_2"] ** t) / (1 - h["beta_1"] ** t)


def _hyper_of(rule: TrainerRule) -> Callable[[Trainer], dict]:
    """The ``_hyper`` method of ``rule``'s trainers: one dict display of ``lr`` (``lr_t`` of it if the
    record has one, at update ``updates + 1``) and the record's other keys, read from the trainer's
    attributes.  Written out and compiled once per class, as dataclasses do, because it runs on every
    update: a loop over the keys cost about 0.3 us more per update (a lookup update takes 3-5 us)."""
    items = ", ".join(f"{k!r}: self.{k}" for k in rule.hyper_keys[1:])
    body = f"h = {{'lr': self.learning_rate, {items}}}" if items else "h = {'lr': self.learning_rate}"
    if rule.lr_t is not None:
        body += "\n    h['lr'] = lr_t(h['lr'], h, self.updates + 1)"
    namespace: dict[str, Any] = {"lr_t": rule.lr_t}
    exec(f"def _hyper(self):\n    {body}\n    return h\n", namespace)
    f = namespace["_hyper"]
    f.__doc__ = f"The ``hyper`` of this update for rule {rule.name!r}: {', '.join(rule.hyper_keys)}."
    return f


# Every rule of this module's trainers, by name, in the order they are declared (filled as the
# classes are made; scripts/gen_update_rules.py reads it).
RULES: dict[str, TrainerRule] = {}


# Each trainer's key into the storages' ``states`` dicts.  Not id(trainer): a new trainer can get a
# collected one's id and would have found (and stepped with) its moments.
_STATE_KEYS = itertools.count(1)


def _drop_states(model: ParameterCollection, key: int) -> None:
    """A collected trainer's per-parameter states go with it."""
    for st in model.all_storages():
        st.states.pop(key, None)


# The trainer's int64 counters, in the order of its ``_counts`` array (a backend's step reads them there).
COUNTERS = ("updates", "updates_since_status", "clips", "clips_since_status", "it")


def _counter(k: int, doc: str) -> property:
    """The property of counter ``k`` of ``_counts`` (an int; assigning checks it is one that fits
    int64).  ``_record_index`` tells a backend's step where the property keeps it."""
    name = COUNTERS[k]

    def get(self: Trainer) -> int:
        return self._counts[k]

    def set_(self: Trainer, v: int) -> None:
        try:
            self._counts[k] = operator.index(v)
        except (TypeError, OverflowError) as e:
            raise type(e)(f"{type(self).__name__}.{name} must be an int in [-2**63, 2**63), got {v!r}") from None

    p = _RecordField(get, set_)
    p.__doc__ = doc  # (a property subclass takes no doc= before Python 3.12)
    p._record_index = k
    return p


class _RecordField(property):
    """A property whose value lies in the trainer's ``_counts`` at ``_record_index``."""

    _record_index: int


def _setup(tr: Trainer, rule: TrainerRule, sig: inspect.Signature, m: Any, args: tuple, kwargs: dict) -> None:
    """A trainer's construction from its rule's record: the arguments bound to ``sig`` and checked."""
    owner = type(tr).__name__
    try:
        bound = sig.bind(tr, m, *args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{owner}: {e}") from None
    bound.apply_defaults()
    values = bound.arguments
    if not isinstance(m, ParameterCollection):
        raise TypeError(f"{owner}: expected a ParameterCollection, got {type(m).__name__}")
    tr.model = m
    tr._state_key = next(_STATE_KEYS)
    weakref.finalize(tr, _drop_states, m, tr._state_key).atexit = False
    # the backend's C twin of update() (Backend.trainer_step), tried first on every update
    tr._backend_step = getattr(m._backend, "trainer_step", None)
    lr = next((values[a.name] for a in rule.args if a.is_lr), 1.0)
    tr.learning_rate = tr._lr(lr)
    tr.clipping_enabled = True
    tr.clip_threshold = 5.0
    tr.sparse_updates = True
    tr._counts = array.array("q", bytes(8 * len(COUNTERS)))
    for a in rule.args:
        if not a.is_lr:
            setattr(tr, a.name, a.value(owner, values[a.name]))
    if not rule.sparse_updates:
        tr.sparse_updates = False


class Trainer:
    """The base of the trainers: gradient clipping, sparse updates and the update loop.

    A subclass with a ``record`` (:class:`TrainerRule`) in its body is a trainer of that rule:
    its constructor, signature and the ``Args:`` of its docstring are made from the record.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the initial learning rate.
    """

    record = TrainerRule("sgd", 0, (learning_rate(None),))
    # The state every update reads and writes lies in object slots, where a backend's trainer_step
    # reads it at offsets learned once per class: a dozen instance-dict lookups were half a small
    # update's cost.  Each trainer class names its record's arguments (beta_1, mom, ...) in its
    # own __slots__; a class that does not keeps them in the instance dict (slower, not wrong).
    # The counters (updates, clips, ... and a schedule's step) live in one array of int64s, ``_counts``,
    # behind properties: a backend's step adds to them in place, where replacing two or three int
    # objects per update was a quarter of a small update's instructions.
    __slots__ = ("model", "_state_key", "_backend_step", "_learning_rate", "clipping_enabled", "clip_threshold",
                 "sparse_updates", "_counts", "__dict__", "__weakref__")
    rule = "sgd"
    n_states = 0
    # whether the rule's step on w is proportional to hyper["lr"] (so the weight-decay factor
    # folds into lr); otherwise the backend gets hyper["wscale"]
    step_in_lr = True
    # (name, method): a class's _after_update that a backend's trainer_step may compute itself under
    # that name, while the class's _after_update is that method; None: it calls _after_update
    _after_update_twin: tuple[str, Callable] | None = None
    _backend_step: Callable[[Trainer], bool] | None
    _state_key: int  # this trainer's key of every storage's ``states``

    model: ParameterCollection
    clipping_enabled: bool
    clip_threshold: float
    sparse_updates: bool
    _counts: array.array  # COUNTERS, in that order

    updates = _counter(0, "updates so far (Adam's bias correction counts from it).")
    updates_since_status = _counter(1, "updates since the last ``status()``.")
    clips = _counter(2, "updates whose gradients were clipped so far.")
    clips_since_status = _counter(3, "clipped updates since the last ``status()``.")

    def __init__(self, m: ParameterCollection, *args: float, **kwargs: float) -> None:
        _setup(self, Trainer.record, _TRAINER_SIGNATURE, m, args, kwargs)

    def __init_subclass__(cls, **kw: Any) -> None:
        """A subclass declaring a ``record``: the rule's class attributes, constructor and ``Args:``."""
        super().__init_subclass__(**kw)
        rule = cls.__dict__.get("record")
        if rule is None:
            return
        if not isinstance(rule, TrainerRule):
            raise TypeError(f"{cls.__name__}.record must be a TrainerRule, got {type(rule).__name__}")
        names = [a.name for a in rule.args]
        # an argument other than the learning rate is kept as an attribute of the trainer: it must not
        # replace the base's state or methods
        bad = [a.name for a in rule.args if not a.name.isidentifier() or keyword.iskeyword(a.name)
               or names.count(a.name) > 1
               or a.name in ("m", "self") or (not a.is_lr and (a.name in Trainer.__annotations__
                                                             or hasattr(Trainer, a.name)))]
        if bad:
            raise ValueError(f"{cls.__name__}: record argument {bad[0]!r} is not a new attribute name "
                             "(a trainer keeps each argument as an attribute)")
        if rule.n_states < 0 or sum(a.is_lr for a in rule.args) > 1:
            raise ValueError(f"{cls.__name__}: a record has n_states >= 0 and at most one learning rate")
        cls.rule, cls.n_states, cls.step_in_lr = rule.name, rule.n_states, rule.step_in_lr
        cls._hyper = _hyper_of(rule)  # type: ignore[method-assign,assignment]
        sig = rule.signature()

        def __init__(self, m: ParameterCollection, *args: float, **kwargs: float) -> None:
            _setup(self, rule, sig, m, args, kwargs)

        __init__.__signature__ = sig  # type: ignore[attr-defined]
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__module__ = cls.__module__
        if "__init__" not in cls.__dict__:  # a constructor written in the class stays
            cls.__init__ = __init__  # type: ignore[method-assign]
        own = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
        cls.__doc__ = f"{own}\n\n{rule.args_doc()}\n" if own else rule.args_doc()
        if cls.__module__ == __name__:
            if rule.name in RULES:
                raise ValueError(f"{cls.__name__}: trainer rule {rule.name!r} is declared twice")
            RULES[rule.name] = rule


    # ---- DyNet's knobs
    def set_sparse_updates(self, su: bool) -> None:
        """Whether lookup tables update only the rows looked up since the last update.

        Args:
            su (bool): True (the default) for sparse updates.
        """
        self.sparse_updates = bool(su)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (DyNet's ``trainer.learning_rate``); assigning checks it."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, lr: float) -> None:
        self._learning_rate = self._lr(lr)

    def _lr(self, lr, name: str = "learning_rate") -> float:
        return _finite(type(self).__name__, name, lr, lo=0.0)

    def set_clip_threshold(self, thr: float) -> None:
        """Sets the global gradient-norm clipping threshold.

        Args:
            thr (float): the threshold; 0 or less turns clipping off, ``inf`` never clips (a NaN or
                infinite gradient norm is still refused), NaN is refused.
        """
        if thr != thr:
            raise ValueError(f"{type(self).__name__}: clip threshold must not be NaN (use 0 to turn clipping off)")
        if thr <= 0:
            self.clipping_enabled = False
            self.clip_threshold = 0.0
        else:
            self.clipping_enabled = True
            self.clip_threshold = float(thr)

    def get_clip_threshold(self) -> float:
        """The gradient clipping threshold (0 when clipping is off)."""
        return self.clip_threshold

    def set_learning_rate(self, lr: float) -> None:
        """Sets the learning rate for the next updates.

        Args:
            lr (float): the learning rate.
        """
        self.learning_rate = self._lr(lr)

    def whoami(self) -> str:
        """The trainer's class name."""
        return type(self).__name__

    def status(self) -> None:
        """Prints the learning rate and the clips and updates since the last call (to stderr), then
        resets those counts.
        """
        print(f"[lr={self.learning_rate:g} clips={self.clips_since_status} updates={self.updates_since_status}] ",
              end="", file=sys.stderr)
        self.updates_since_status = self.clips_since_status = 0

    def restart(self, learning_rate: float | None = None) -> None:
        """Clears the trainer's per-parameter state (moments, accumulators).

        Args:
            learning_rate (float or None): if given, the new learning rate.
        """
        if learning_rate is not None:
            self.learning_rate = self._lr(learning_rate)
        for st in self.model.all_storages():
            for t in st.states.get(self._state_key, ()):
                st.backend.fill(t, 0.0)

    def update_epoch(self, r: float = 1.0) -> None:
        """Deprecated in DyNet and a no-op; prints how to change the learning rate instead.

        Args:
            r (float): ignored.
        """
        print("Trainer::update_epoch has been deprecated and doesn't do anything. Please remove it from your code, "
              "and control the learning rate of the trainer directly, for example by: "
              "'trainer.learning_rate /= (1 - rate_decay)'", file=sys.stderr)

    def update_subset(self, params, lookups) -> None:
        """A no-op, as in DyNet's Python module.

        Args:
            params: ignored.
            lookups: ignored.
        """

    # ---- the update
    @staticmethod
    def _norm(parts: dict) -> float:
        """The gradient norm over ``parts`` (see :meth:`_clip_scale`)."""
        if len(parts) == 1:
            (be, _, ps), = parts.values()
            return math.sqrt(be.sq_norm_all(ps))
        return math.sqrt(sum(be.sq_norm_all(ps) for be, _, ps in parts.values()))

    def _clip_scale(self, parts: dict) -> tuple[float, float]:
        """DyNet's global-norm clipping scale from ``parts`` (id(backend) -> (backend, items,
        norm parts)): one ``sq_norm_all`` call per backend over every gradient, updated or not
        (as DyNet's gradient_l2_norm), only the touched rows of a lookup table.  Also the clipped
        norm, a bound on every scaled gradient element (``hyper["gbound"]``).
        """
        norm = self._norm(parts)
        if norm <= self.clip_threshold:  # False for NaN
            return 1.0, norm
        if not math.isfinite(norm):
            # A skipped update: the bad gradients go, so the next graph starts clean (DyNet keeps them,
            # and every later update fails with the same error).
            for be, _, ps in parts.values():
                for g, rows in ps:
                    if rows is None:
                        be.fill(g, 0.0)
                    else:
                        be.clear_rows(g, rows)
            raise RuntimeError(f"Magnitude of gradient is bad: {norm}; this update was skipped and the "
                               "gradients were cleared")
        self.clips += 1
        self.clips_since_status += 1
        scale = self.clip_threshold / norm
        return scale, norm * scale

    def _hyper(self) -> dict:
        """The ``hyper`` of this update: ``lr`` (a record's classes get theirs from :func:`_hyper_of`)."""
        return {"lr": self.learning_rate}

    def _states(self, st: ParamStorage) -> list:
        """The rule's state tensors of ``st``, made at its first update; a rule without states
        stores nothing (a backend's trainer_step then has no entry to look up)."""
        s = st.states.get(self._state_key)
        if s is None:
            s = [st.backend.zeros(st.dim.shape) for _ in range(self.n_states)]
            if s:
                st.states[self._state_key] = s
        return s

    def update(self) -> None:
        """One training step from the gradients of the last ``backward()``: clips them by their global
        norm, applies the rule to every updated parameter (only touched rows of lookup tables when
        updates are sparse), clears the gradients and applies weight decay.

        The Python update (``_update_in_python``) is the specification; a backend may do all of
        it in one call (``Backend.trainer_step``), which declines, changing nothing, where it
        cannot.  (With the C accelerator, ``_fastgraph.StepFirst`` makes this same dispatch.)
        """
        step = self._backend_step
        if step is not None and step(self):
            return
        self._update_in_python()

    def _update_in_python(self) -> None:
        """``update()`` in Python: what a backend's trainer step does, and every case it declines."""
        model = self.model
        storages = model._storages
        key, sparse, clip = self._state_key, self.sparse_updates, self.clipping_enabled
        norm_parts = clip or self.record.wants_gbound  # the norm: for clipping, or as hyper["gbound"]
        # plain SGD leaves a weight with a zero gradient exactly as it is: no pass for it
        idle_moves = self.rule != "sgd"
        # One walk over the parameters collects, per backend, the update_all items and the
        # gradients of the clipping norm; the bookkeeping is reset as it goes (a refused norm
        # clears the collected gradients itself).
        batches: dict[int, tuple[Any, list, list]] = {}  # id(backend) -> (backend, items, norm parts)
        frozen: list[tuple[ParamStorage, list[int] | None]] = []  # not updated: in the norm, then cleared
        last: Any = None
        b: tuple[Any, list, list] = (None, [], [])
        for st in storages:
            be = st.backend
            if be is not last:  # a collection's parameters share one backend, as a rule
                found = batches.get(id(be))
                b = found if found is not None else batches.setdefault(id(be), (be, [], []))
                last = be
            if st.lookup:
                touched = st.touched
                if touched:
                    st.touched = set()
                    rows = sorted(touched)
                    if norm_parts:
                        b[2].append((st.grad, rows))
                    if not st.updated:
                        frozen.append((st, rows))
                        continue
                    # sparse: the touched rows, cleared as stepped; dense: the whole table, whose
                    # gradient is zero outside the touched rows
                    item_rows, clear = (rows if sparse else None), True
                elif sparse or not idle_moves or not st.updated:
                    continue
                else:
                    item_rows, clear = None, False
            elif st.has_grad:
                st.has_grad = False
                if norm_parts:
                    b[2].append((st.grad, None))
                if not st.updated:
                    frozen.append((st, None))
                    continue
                item_rows, clear = None, True
            elif idle_moves and st.updated:
                item_rows, clear = None, False
            else:
                continue
            states = st.states.get(key)
            if states is None:
                states = self._states(st)
            b[1].append((st.value, st.grad, states, item_rows, clear))
        hyper = self._hyper()
        if clip:
            hyper["gscale"], hyper["gbound"] = self._clip_scale(batches)
        else:
            hyper["gscale"] = 1.0
            if norm_parts:
                hyper["gbound"] = self._norm(batches)
        f = model._wscale.factor  # the values are the weights divided by f
        if f != 1.0:
            if self.step_in_lr:
                hyper["lr"] /= f
            else:
                hyper["wscale"] = 1.0 / f
        for st, frozen_rows in frozen:
            if frozen_rows is None:
                st.backend.fill(st.grad, 0.0)
            else:
                st.backend.clear_rows(st.grad, frozen_rows)
        for be, items, _ in batches.values():
            if items:
                be.update_all(self.rule, items, hyper)
        self.updates += 1
        self.updates_since_status += 1
        if model._weight_decay > 0:
            self._decay(storages)
        self._after_update()

    def _decay(self, storages: list[ParamStorage]) -> None:
        self.model._decay_weights(self.model.get_weight_decay(), storages)

    def _after_update(self) -> None:
        pass

    # The base's hooks: a backend's trainer_step does their (no) work itself where a class keeps them.
    _plain_decay = _decay
    _plain_after_update = _after_update


_TRAINER_SIGNATURE = Trainer.record.signature()
Trainer.__init__.__signature__ = _TRAINER_SIGNATURE  # type: ignore[attr-defined]
if _fastgraph is not None:  # update()'s dispatch without its Python frame (~0.04 us of a small update)
    Trainer.update = _fastgraph.StepFirst(Trainer._update_in_python, Trainer.update)  # type: ignore[method-assign]


class SimpleSGDTrainer(Trainer):
    """Stochastic gradient descent: ``w -= learning_rate * g``."""

    __slots__ = ()  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("sgd", 0, (learning_rate(0.1),))


class CyclicalSGDTrainer(Trainer):
    """SGD whose learning rate cycles between two bounds (triangular schedule, Smith 2015);
    the first update uses the minimum.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate_min (float): the lower bound.
        learning_rate_max (float): the upper bound.
        step_size (float): updates per half cycle.
        gamma (float): the amplitude decays as ``gamma ** iteration``.
        edecay (float): accepted for DyNet compatibility.
    """

    __slots__ = ("e_min", "e_max", "step_size", "gamma")  # read by a backend's trainer_step (see Trainer)
    it = _counter(4, "the schedule's iteration (the updates since construction).")

    def __init__(self, m: ParameterCollection, learning_rate_min: float = 0.01, learning_rate_max: float = 0.1,
                 step_size: float = 2000, gamma: float = 1.0, edecay: float = 0.0) -> None:
        super().__init__(m, learning_rate_min)
        name = type(self).__name__
        self.e_min = self._lr(learning_rate_min, "learning_rate_min")
        self.e_max = self._lr(learning_rate_max, "learning_rate_max")
        self.step_size = _finite(name, "step_size", step_size, 0.0, lo_open=True)
        self.gamma = _finite(name, "gamma", gamma, 0.0)
        self.it = 0

    def _after_update(self) -> None:
        it = self.it
        cycle = math.floor(1 + it / (2 * self.step_size))
        x = abs(it / self.step_size - 2 * cycle + 1)
        self.learning_rate = self.e_min + ((self.e_max - self.e_min) * (1 - x) * self.gamma ** it if 1 - x > 0 else 0.0)
        self.it += 1

    # a backend's trainer_step may compute this _after_update itself
    _after_update_twin = ("cyclical_lr", _after_update)


class MomentumSGDTrainer(Trainer):
    """SGD with momentum: ``v = mom * v - learning_rate * g; w += v``."""

    __slots__ = ("mom",)  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("momentum", 1, (learning_rate(0.01), Arg("mom", 0.9, "the momentum.", hi=1.0)),
                         step_in_lr=False)


class AdagradTrainer(Trainer):
    """AdaGrad: each weight's step is scaled by the root of its accumulated squared gradients:
    ``G += g^2; w -= learning_rate * g / sqrt(G + eps)``."""

    __slots__ = ("eps",)  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("adagrad", 1, (learning_rate(0.1),
                                        Arg("eps", 1e-20, "added under the square root for stability.")),
                         wants_gbound=True)


class AdadeltaTrainer(Trainer):
    """AdaDelta (Zeiler 2012): steps from running averages of squared gradients and squared
    steps; it needs no learning rate: ``hg = rho hg + (1 - rho) g^2;
    d = -g sqrt(hd + eps) / sqrt(hg + eps); hd = rho hd + (1 - rho) d^2; w += d``."""

    __slots__ = ("eps", "rho")  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("adadelta", 2, (Arg("eps", 1e-6, "added under the square roots."),
                                         Arg("rho", 0.95, "the decay of the running averages.", hi=1.0)),
                         step_in_lr=False, wants_gbound=True)


class RMSPropTrainer(Trainer):
    """RMSProp: the step is divided by the root of a running average of squared gradients:
    ``E = rho E + (1 - rho) g^2; w -= learning_rate * g / sqrt(E + eps)``."""

    __slots__ = ("eps", "rho")  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("rmsprop", 1, (learning_rate(0.001), Arg("eps", 1e-8, "added under the square root."),
                                        Arg("rho", 0.9, "the decay of the running average.", hi=1.0)),
                         wants_gbound=True)


class AdamTrainer(Trainer):
    """Adam (Kingma and Ba 2014), with bias-corrected first and second moment estimates:
    ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr_t m / (sqrt(v) + eps)`` with
    ``lr_t = alpha sqrt(1 - b2^t) / (1 - b1^t)``, t the trainer's update count (from 1)."""

    __slots__ = ("beta_1", "beta_2", "eps")  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("adam", 2, (learning_rate(0.001, "alpha"),
                                     Arg("beta_1", 0.9, "the decay of the first moment.", hi=1.0, hi_open=True),
                                     Arg("beta_2", 0.999, "the decay of the second moment.", hi=1.0, hi_open=True),
                                     Arg("eps", 1e-8, "added to the root of the second moment.")),
                         lr_t=_adam_lr, wants_gbound=True)


class AmsgradTrainer(AdamTrainer):
    """AMSGrad (Reddi et al. 2018): Adam with the running maximum of the second moment,
    ``vhat = max(vhat, v)`` in place of ``v``."""

    __slots__ = ()  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("amsgrad", 3, (learning_rate(0.001),) + AdamTrainer.record.args[1:], lr_t=_adam_lr,
                         wants_gbound=True)


class EGTrainer(Trainer):
    """Exponentiated gradient with momentum: each tensor stays a softmax of log-weights,
    ``h = mom h - learning_rate g; w = softmax(log w + h)`` over the whole tensor (C++-only in
    DyNet; an extension here). Dense updates only."""

    __slots__ = ("mom", "ne")  # the record's arguments (see Trainer.__slots__)

    record = TrainerRule("eg", 1, (learning_rate(0.1), Arg("mom", 0.9, "the momentum.", hi=1.0),
                                   Arg("ne", 0.0, "accepted for DyNet compatibility.", sent=False, checked=False)),
                         step_in_lr=False, sparse_updates=False)


# The public names: every trainer class of this module (dynet_api re-exports them).
__all__ = [n for n, v in list(globals().items()) if isinstance(v, type) and issubclass(v, Trainer)]
