"""Trainer update rules over an array module, applied in place.

``hyper`` carries ``lr`` (already bias-corrected for Adam/Amsgrad), ``gscale``
(the clipping scale) and the rule's own constants; momentum, adadelta and eg
multiply their step by ``wscale`` when it is given (the lazy weight decay).  ``states`` are the rule's
shadow tensors, zero on the first step.  A sparse (lookup) update gathers the
touched rows (batch columns) of the tensor and its states, applies the rule,
and writes them back.  The cuda backend replaces the rules with fused kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class Updates:
    """The trainer rules over ``xp`` (NumPy's API); ``index`` makes an index of the touched rows."""

    def __init__(self, xp: Any, who: str, index: Callable[[Sequence[int]], Any] = list) -> None:
        self.xp, self.who, self.index = xp, who, index
        self.rules: dict[str, Callable] = {"sgd": self.sgd, "momentum": self.momentum, "adagrad": self.adagrad,
                                           "adadelta": self.adadelta, "rmsprop": self.rmsprop, "adam": self.adam,
                                           "amsgrad": self.adam, "eg": self.eg}

    def apply(self, rule: str, w: Any, g: Any, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        """``w`` and ``states`` updated in place by ``rule``; only the columns ``rows`` if given."""
        f = self.rules.get(rule)
        if f is None:
            raise ValueError(f"{self.who}: unknown update rule {rule!r}; known: {', '.join(sorted(self.rules))}")
        if rows is None:
            f(w, g, states, hyper)
            return
        r = self.index(rows)
        ws, gs, ss = self.gather(w, r), self.gather(g, r), [self.gather(s, r) for s in states]
        f(ws, gs, ss, hyper)
        w[..., r] = ws
        for s, part in zip(states, ss, strict=True):
            s[..., r] = part

    def gather(self, t: Any, r: Any) -> Any:
        """A copy of the columns ``r`` of ``t``."""
        return t[..., r]

    def sgd(self, w, g, s, h):
        w -= (h["lr"] * h["gscale"]) * g

    def momentum(self, w, g, s, h):
        v = s[0]
        v *= h["mom"]
        v -= (h["lr"] * h["gscale"]) * g
        w += v * h["wscale"] if "wscale" in h else v  # the lazy weight decay's factor

    def adagrad(self, w, g, s, h):
        g = g * h["gscale"]
        s[0] += g * g
        w -= h["lr"] * g / self.xp.sqrt(s[0] + h["eps"])

    def adadelta(self, w, g, s, h):
        sqrt = self.xp.sqrt
        g = g * h["gscale"]
        hg, hd = s
        rho, eps = h["rho"], h["eps"]
        hg *= rho
        hg += (1 - rho) * g * g
        step = -g * sqrt(hd + eps) / sqrt(hg + eps)
        hd *= rho
        hd += (1 - rho) * step * step
        w += step * h["wscale"] if "wscale" in h else step

    def rmsprop(self, w, g, s, h):
        g = g * h["gscale"]
        rho = h["rho"]
        s[0] *= rho
        s[0] += (1 - rho) * g * g
        w -= h["lr"] * g / self.xp.sqrt(s[0] + h["eps"])

    def adam(self, w, g, s, h):
        g = g * h["gscale"]
        m, v = s[0], s[1]
        b1, b2 = h["beta_1"], h["beta_2"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        if len(s) > 2:  # amsgrad keeps the running maximum of v
            self.xp.maximum(s[2], v, out=s[2])
            v = s[2]
        w -= h["lr"] * m / (self.xp.sqrt(v) + h["eps"])

    def eg(self, w, g, s, h):
        """Exponentiated gradient with momentum: the tensor stays on the simplex."""
        xp = self.xp
        hp = s[0]
        hp *= h["mom"]
        hp -= (h["lr"] * h["gscale"]) * g
        logw = xp.log(xp.maximum(w, 1e-30)) + (hp * h["wscale"] if "wscale" in h else hp)
        logw -= logw.max()
        e = xp.exp(logw)
        w[...] = e / e.sum()
