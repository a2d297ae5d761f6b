"""Trainer update rules over an array module, applied in place: one kernel per rule.

A kernel is ``f(u, w, g, s, h)``: ``u`` the :class:`Updates` running it (``u.xp`` its array
module), ``w`` the weights, ``g`` the gradient, ``s`` the rule's shadow tensors (zero on the first
step, as many as the rule's record says), ``h`` the ``hyper`` dict: ``lr`` (already
bias-corrected for Adam/Amsgrad), ``gscale`` (the clipping scale) and the rule's own constants
(its record in ``dynet_api/trainers.py``); momentum, adadelta and eg multiply their step by
``wscale`` when it is given (the lazy weight decay).  Each kernel is registered under its rule
names by the ``@KERNELS.rule(...)`` line above it.  A sparse (lookup) update gathers the
touched rows (batch columns) of the tensor and its states, applies the kernel, and writes them
back.  The cuda backend runs these kernels over CuPy and registers fused ones of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Kernel = Callable[[Any, Any, Any, list, dict], None]


class RuleKernels:
    """Trainer-rule kernels by rule name, each registered next to its body with :meth:`rule`; a
    backend's table may fall back to another's (the cuda backend's to the reference's)."""

    def __init__(self, fallback: RuleKernels | None = None) -> None:
        self.own: dict[str, Kernel] = {}
        self.fallback = fallback

    def rule(self, *names: str) -> Callable[[Kernel], Kernel]:
        """Decorator: the function is the kernel of the trainer rules ``names``."""
        def register(f: Kernel) -> Kernel:
            for n in names:
                self.own[n] = f
            return f
        return register

    def get(self, name: str) -> Kernel | None:
        """The kernel of rule ``name`` (this table's, else the fallback's), or None."""
        f = self.own.get(name)
        if f is None and self.fallback is not None:
            return self.fallback.get(name)
        return f

    def names(self) -> list[str]:
        """Every rule with a kernel here or in the fallback, sorted."""
        return sorted(set(self.own) | (set(self.fallback.names()) if self.fallback is not None else set()))


KERNELS = RuleKernels()


class Updates:
    """The trainer rules of ``kernels`` over ``xp`` (NumPy's API); ``index`` makes an index of the
    touched rows; ``who`` names the backend in errors."""

    def __init__(self, xp: Any, who: str, index: Callable[[Sequence[int]], Any] = list,
                 kernels: RuleKernels = KERNELS) -> None:
        self.xp, self.who, self.index, self.kernels = xp, who, index, kernels

    def apply(self, rule: str, w: Any, g: Any, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        """``w`` and ``states`` updated in place by ``rule``; only the columns ``rows`` if given."""
        f = self.kernels.get(rule)
        if f is None:
            raise ValueError(f"{self.who}: unknown update rule {rule!r}; known: {', '.join(self.kernels.names())} "
                             "(this backend has no kernel for any other trainer rule)")
        if rows is None:
            f(self, w, g, states, hyper)
            return
        r = self.index(rows)
        ws, gs, ss = self.gather(w, r), self.gather(g, r), [self.gather(s, r) for s in states]
        f(self, ws, gs, ss, hyper)
        w[..., r] = ws
        for s, part in zip(states, ss, strict=True):
            s[..., r] = part

    def gather(self, t: Any, r: Any) -> Any:
        """A copy of the columns ``r`` of ``t``."""
        return t[..., r]


@KERNELS.rule("sgd")
def sgd(u: Updates, w, g, s, h) -> None:
    w -= (h["lr"] * h["gscale"]) * g


@KERNELS.rule("momentum")
def momentum(u: Updates, w, g, s, h) -> None:
    v = s[0]
    v *= h["mom"]
    v -= (h["lr"] * h["gscale"]) * g
    w += v * h["wscale"] if "wscale" in h else v  # the lazy weight decay's factor


@KERNELS.rule("adagrad")
def adagrad(u: Updates, w, g, s, h) -> None:
    g = g * h["gscale"]
    s[0] += g * g
    w -= h["lr"] * g / u.xp.sqrt(s[0] + h["eps"])


@KERNELS.rule("adadelta")
def adadelta(u: Updates, w, g, s, h) -> None:
    sqrt = u.xp.sqrt
    g = g * h["gscale"]
    hg, hd = s
    rho, eps = h["rho"], h["eps"]
    hg *= rho
    hg += g * g * (1 - rho)  # squared first, as DyNet: g^2 overflows to inf there
    step = -g * sqrt(hd + eps) / sqrt(hg + eps)
    hd *= rho
    hd += step * step * (1 - rho)
    w += step * h["wscale"] if "wscale" in h else step


@KERNELS.rule("rmsprop")
def rmsprop(u: Updates, w, g, s, h) -> None:
    g = g * h["gscale"]
    rho = h["rho"]
    s[0] *= rho
    s[0] += g * g * (1 - rho)
    w -= h["lr"] * g / u.xp.sqrt(s[0] + h["eps"])


@KERNELS.rule("adam", "amsgrad")
def adam(u: Updates, w, g, s, h) -> None:
    g = g * h["gscale"]
    m, v = s[0], s[1]
    b1, b2 = h["beta_1"], h["beta_2"]
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += g * g * (1 - b2)
    if len(s) > 2:  # amsgrad keeps the running maximum of v
        u.xp.maximum(s[2], v, out=s[2])
        v = s[2]
    w -= h["lr"] * m / (u.xp.sqrt(v) + h["eps"])


@KERNELS.rule("eg")
def eg(u: Updates, w, g, s, h) -> None:
    """Exponentiated gradient with momentum: the tensor stays on the simplex."""
    xp = u.xp
    hp = s[0]
    hp *= h["mom"]
    hp -= (h["lr"] * h["gscale"]) * g
    logw = xp.log(xp.maximum(w, 1e-30)) + (hp * h["wscale"] if "wscale" in h else hp)
    logw -= logw.max()
    e = xp.exp(logw)
    w[...] = e / e.sum()
