"""Trainer rules on the device: the reference's, with one fused ElementwiseKernel per rule.

:class:`DeviceUpdates` is the reference's :class:`Updates` over the device's array module
(so sparse lookup updates gather and scatter the touched rows on the device, and the
exponentiated gradient is the reference's code); sgd, momentum, adagrad, adadelta,
rmsprop, adam and amsgrad run as one kernel each, in place (``kernels/elementwise.cuh``).
"""

from __future__ import annotations

from dynet_backends.reference_numpy.updates import Updates


class DeviceUpdates(Updates):
    def __init__(self, dev) -> None:
        super().__init__(dev.xp, "cuda backend", dev.index)
        self.E = dev.ew

    def gather(self, t, r):
        """The rows as a C-ordered copy, the layout the fused kernels write."""
        return self.xp.take(t, r, axis=-1)

    def sgd(self, w, g, s, h):
        self.E["upd_sgd"](g, h["lr"] * h["gscale"], w)

    def momentum(self, w, g, s, h):
        if "wscale" not in h:
            self.E["upd_momentum"](g, h["mom"], h["lr"] * h["gscale"], w, s[0])
            return
        step = self.xp.zeros_like(w)  # the lazy weight decay's factor on the step: the kernel stays as it is
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
