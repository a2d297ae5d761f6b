"""Trainer rules on the device: one fused ElementwiseKernel per rule, in place.

The formulas are those of ``backends/reference_numpy/updates.py`` (the
device functions are in ``kernels/elementwise.cuh``); momentum, adadelta and eg
multiply their step by ``hyper["wscale"]`` when it is given (the lazy weight decay),
stepping a zero buffer first so the kernels stay as they are.  A sparse lookup update
gathers the touched rows (batch columns) of the table, its gradient and its
states, applies the same kernel, and scatters the rows back, all on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DeviceUpdates:
    def __init__(self, dev) -> None:
        self.dev, self.xp, self.E = dev, dev.xp, dev.ew
        self.rules = {"sgd": self.sgd, "momentum": self.momentum, "adagrad": self.adagrad,
                      "adadelta": self.adadelta, "rmsprop": self.rmsprop, "adam": self.adam,
                      "amsgrad": self.adam, "eg": self.eg}

    def apply(self, rule: str, w: Any, g: Any, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        try:
            f = self.rules[rule]
        except KeyError:
            known = ", ".join(sorted(self.rules))
            raise ValueError(f"cuda backend: unknown update rule {rule!r}; known: {known}") from None
        if rows is None:
            f(w, g, states, hyper)
            return
        xp = self.xp
        idx = self.dev.index(rows)
        ws, gs = xp.take(w, idx, axis=-1), xp.take(g, idx, axis=-1)
        ss = [xp.take(s, idx, axis=-1) for s in states]
        f(ws, gs, ss, hyper)
        w[..., idx] = ws
        for s, part in zip(states, ss, strict=True):
            s[..., idx] = part

    def sgd(self, w, g, s, h):
        self.E["upd_sgd"](g, h["lr"] * h["gscale"], w)

    def momentum(self, w, g, s, h):
        if "wscale" not in h:
            self.E["upd_momentum"](g, h["mom"], h["lr"] * h["gscale"], w, s[0])
            return
        step = self.xp.zeros_like(w)
        self.E["upd_momentum"](g, h["mom"], h["lr"] * h["gscale"], step, s[0])
        w += step * h["wscale"]

    def adagrad(self, w, g, s, h):
        self.E["upd_adagrad"](g, h["gscale"], h["lr"], h["eps"], w, s[0])

    def adadelta(self, w, g, s, h):
        rho = h["rho"]
        if "wscale" not in h:
            self.E["upd_adadelta"](g, h["gscale"], rho, 1 - rho, h["eps"], w, s[0], s[1])
            return
        step = self.xp.zeros_like(w)
        self.E["upd_adadelta"](g, h["gscale"], rho, 1 - rho, h["eps"], step, s[0], s[1])
        w += step * h["wscale"]

    def rmsprop(self, w, g, s, h):
        rho = h["rho"]
        self.E["upd_rmsprop"](g, h["gscale"], rho, 1 - rho, h["lr"], h["eps"], w, s[0])

    def adam(self, w, g, s, h):
        b1, b2 = h["beta_1"], h["beta_2"]
        args = (g, h["gscale"], b1, 1 - b1, b2, 1 - b2, h["lr"], h["eps"], w, s[0], s[1])
        if len(s) > 2:  # amsgrad keeps the running maximum of v in s[2]
            self.E["upd_amsgrad"](*args, s[2])
        else:
            self.E["upd_adam"](*args)

    def eg(self, w, g, s, h):
        """Exponentiated gradient: momentum step, then w = softmax(log w + h) over the whole tensor."""
        self.E["upd_eg_momentum"](g, h["mom"], h["lr"] * h["gscale"], s[0])
        logw = self.E["eg_logw"](w, s[0] * h["wscale"] if "wscale" in h else s[0])
        e = self.E["exp_sub"](logw, logw.max())
        self.xp.divide(e, e.sum(), out=w)
