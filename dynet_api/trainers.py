"""DyNet's trainers, written once over the backend's ``update`` kernel.

``update()`` follows DyNet's order: global-norm gradient clipping (threshold 5
by default; a NaN/Inf norm raises), one rule step for every parameter marked
updated (only the looked-up rows of a lookup table while sparse updates are on),
then the gradients are cleared and weight decay is applied.  The step and the clear
go to the backend as one ``update_all`` call per update (one pass over each gradient).

Rules (g is the gradient times the clipping scale; each backend implements them):

* ``sgd``: w -= lr * g
* ``momentum``: v = mom * v - lr * g; w += v
* ``adagrad``: G += g^2; w -= lr * g / sqrt(G + eps)
* ``adadelta``: hg = rho hg + (1 - rho) g^2; d = -g sqrt(hd + eps) / sqrt(hg + eps);
  hd = rho hd + (1 - rho) d^2; w += d
* ``rmsprop``: E = rho E + (1 - rho) g^2; w -= lr * g / sqrt(E + eps)
* ``adam``: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  w -= lr_t m / (sqrt(v) + eps) with lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), t the
  global update count (starting at 1)
* ``amsgrad``: as adam with vhat = max(vhat, v) in place of v
* ``eg``: h = mom h - lr g; w = softmax(log w + h) over the whole tensor

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

import math
import sys
from typing import Any

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


class Trainer:
    """The base of the trainers: gradient clipping, sparse updates and the update loop.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the initial learning rate.
    """

    rule = "sgd"
    n_states = 0
    # whether the rule's step on w is proportional to hyper["lr"] (so the weight-decay factor
    # folds into lr); otherwise the backend gets hyper["wscale"]
    step_in_lr = True

    def __init__(self, m: ParameterCollection, learning_rate: float) -> None:
        if not isinstance(m, ParameterCollection):
            raise TypeError(f"{type(self).__name__}: expected a ParameterCollection, got {type(m).__name__}")
        self.model = m
        self.learning_rate = self._lr(learning_rate)
        self.clipping_enabled = True
        self.clip_threshold = 5.0
        self.sparse_updates = True
        self.updates = 0
        self.updates_since_status = 0
        self.clips = 0
        self.clips_since_status = 0

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
            for t in st.states.get(id(self), ()):
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
    def _clip_scale(self, parts: dict) -> float:
        """DyNet's global-norm clipping scale from ``parts`` (id(backend) -> (backend, items,
        norm parts)): one ``sq_norm_all`` call per backend over every gradient, updated or not
        (as DyNet's gradient_l2_norm), only the touched rows of a lookup table.
        """
        if len(parts) == 1:
            (be, _, ps), = parts.values()
            norm = math.sqrt(be.sq_norm_all(ps))
        else:
            norm = math.sqrt(sum(be.sq_norm_all(ps) for be, _, ps in parts.values()))
        if norm <= self.clip_threshold:  # False for NaN
            return 1.0
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
        return self.clip_threshold / norm

    def _hyper(self) -> dict:
        return {"lr": self.learning_rate}

    def _states(self, st: ParamStorage) -> list:
        s = st.states.get(id(self))
        if s is None:
            s = [st.backend.zeros(st.dim.shape) for _ in range(self.n_states)]
            st.states[id(self)] = s
        return s

    def update(self) -> None:
        """One training step from the gradients of the last ``backward()``: clips them by their global
        norm, applies the rule to every updated parameter (only touched rows of lookup tables when
        updates are sparse), clears the gradients and applies weight decay.
        """
        model = self.model
        storages = model._storages
        key, sparse, clip = id(self), self.sparse_updates, self.clipping_enabled
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
                    if clip:
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
                if clip:
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
        hyper["gscale"] = self._clip_scale(batches) if clip else 1.0
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


class SimpleSGDTrainer(Trainer):
    """Stochastic gradient descent: ``w -= learning_rate * g``.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the learning rate.
    """
    def __init__(self, m: ParameterCollection, learning_rate: float = 0.1) -> None:
        super().__init__(m, learning_rate)


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


class MomentumSGDTrainer(Trainer):
    """SGD with momentum: ``v = mom * v - learning_rate * g; w += v``.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the learning rate.
        mom (float): the momentum.
    """
    rule, n_states, step_in_lr = "momentum", 1, False

    def __init__(self, m: ParameterCollection, learning_rate: float = 0.01, mom: float = 0.9) -> None:
        super().__init__(m, learning_rate)
        self.mom = _finite(type(self).__name__, "mom", mom, 0.0, 1.0)

    def _hyper(self) -> dict:
        return {"lr": self.learning_rate, "mom": self.mom}


class AdagradTrainer(Trainer):
    """AdaGrad: each weight's step is scaled by the root of its accumulated squared gradients.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the learning rate.
        eps (float): added under the square root for stability.
    """
    rule, n_states = "adagrad", 1

    def __init__(self, m: ParameterCollection, learning_rate: float = 0.1, eps: float = 1e-20) -> None:
        super().__init__(m, learning_rate)
        self.eps = _finite(type(self).__name__, "eps", eps, 0.0)

    def _hyper(self) -> dict:
        return {"lr": self.learning_rate, "eps": self.eps}


class AdadeltaTrainer(Trainer):
    """AdaDelta (Zeiler 2012): steps from running averages of squared gradients and squared
    steps; it needs no learning rate.

    Args:
        m (ParameterCollection): the parameters to train.
        eps (float): added under the square roots.
        rho (float): the decay of the running averages.
    """

    rule, n_states, step_in_lr = "adadelta", 2, False

    def __init__(self, m: ParameterCollection, eps: float = 1e-6, rho: float = 0.95) -> None:
        super().__init__(m, 1.0)
        self.eps = _finite(type(self).__name__, "eps", eps, 0.0)
        self.rho = _finite(type(self).__name__, "rho", rho, 0.0, 1.0)

    def _hyper(self) -> dict:
        return {"lr": self.learning_rate, "eps": self.eps, "rho": self.rho}


class RMSPropTrainer(Trainer):
    """RMSProp: the step is divided by the root of a running average of squared gradients.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the learning rate.
        eps (float): added under the square root.
        rho (float): the decay of the running average.
    """
    rule, n_states = "rmsprop", 1

    def __init__(self, m: ParameterCollection, learning_rate: float = 0.001, eps: float = 1e-8,
                 rho: float = 0.9) -> None:
        super().__init__(m, learning_rate)
        self.eps = _finite(type(self).__name__, "eps", eps, 0.0)
        self.rho = _finite(type(self).__name__, "rho", rho, 0.0, 1.0)

    def _hyper(self) -> dict:
        return {"lr": self.learning_rate, "eps": self.eps, "rho": self.rho}


class AdamTrainer(Trainer):
    """Adam (Kingma and Ba 2014), with bias-corrected first and second moment estimates.

    Args:
        m (ParameterCollection): the parameters to train.
        alpha (float): the learning rate.
        beta_1 (float): the decay of the first moment.
        beta_2 (float): the decay of the second moment.
        eps (float): added to the root of the second moment.
    """
    rule, n_states = "adam", 2

    def __init__(self, m: ParameterCollection, alpha: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__(m, alpha)
        name = type(self).__name__
        self.beta_1 = _finite(name, "beta_1", beta_1, 0.0, 1.0, hi_open=True)
        self.beta_2 = _finite(name, "beta_2", beta_2, 0.0, 1.0, hi_open=True)
        self.eps = _finite(name, "eps", eps, 0.0)

    def _hyper(self) -> dict:
        t = self.updates + 1
        lr_t = self.learning_rate * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        return {"lr": lr_t, "beta_1": self.beta_1, "beta_2": self.beta_2, "eps": self.eps}


class AmsgradTrainer(AdamTrainer):
    """AMSGrad (Reddi et al. 2018): Adam with the running maximum of the second moment.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the learning rate.
        beta_1 (float): the decay of the first moment.
        beta_2 (float): the decay of the second moment.
        eps (float): added to the root of the second moment.
    """
    rule, n_states = "amsgrad", 3

    def __init__(self, m: ParameterCollection, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, eps: float = 1e-8) -> None:
        super().__init__(m, learning_rate, beta_1, beta_2, eps)


class EGTrainer(Trainer):
    """Exponentiated gradient with momentum: each tensor stays a softmax of log-weights (C++-only in
    DyNet; an extension here). Dense updates only.

    Args:
        m (ParameterCollection): the parameters to train.
        learning_rate (float): the learning rate.
        mom (float): the momentum.
        ne (float): accepted for DyNet compatibility.
    """

    rule, n_states, step_in_lr = "eg", 1, False

    def __init__(self, m: ParameterCollection, learning_rate: float = 0.1, mom: float = 0.9, ne: float = 0.0) -> None:
        super().__init__(m, learning_rate)
        self.mom = _finite(type(self).__name__, "mom", mom, 0.0, 1.0)
        self.ne = float(ne)
        self.sparse_updates = False

    def _hyper(self) -> dict:
        return {"lr": self.learning_rate, "mom": self.mom}
