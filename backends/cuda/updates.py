"""Trainer rules on the device: the reference's kernels, and one fused ElementwiseKernel per rule.

:class:`DeviceUpdates` is the reference's :class:`Updates` over the device's array module, with
:data:`DEVICE_KERNELS`: the fused kernels registered below (``@DEVICE_KERNELS.rule(...)``, each
one call of a ``kernels/elementwise.cuh`` function), else the reference's kernel run over CuPy
(so a rule with no fused kernel still runs here, as eg does).  Sparse lookup updates gather
and scatter the touched rows on the device.
"""

from __future__ import annotations

from dynet_backends.reference_numpy.updates import KERNELS, RuleKernels, Updates

DEVICE_KERNELS = RuleKernels(fallback=KERNELS)


class DeviceUpdates(Updates):
    def __init__(self, dev) -> None:
        super().__init__(dev.xp, "cuda backend", dev.index, DEVICE_KERNELS)
        self.E = dev.ew

    def gather(self, t, r):
        """The rows as a C-ordered copy, the layout the fused kernels write."""
        return self.xp.take(t, r, axis=-1)


@DEVICE_KERNELS.rule("sgd")
def sgd(u: DeviceUpdates, w, g, s, h) -> None:
    u.E["upd_sgd"](g, h["lr"] * h["gscale"], w)


@DEVICE_KERNELS.rule("momentum")
def momentum(u: DeviceUpdates, w, g, s, h) -> None:
    if "wscale" not in h:
        u.E["upd_momentum"](g, h["mom"], h["lr"] * h["gscale"], w, s[0])
        return
    step = u.xp.zeros_like(w)  # the lazy weight decay's factor on the step: the kernel stays as it is
    u.E["upd_momentum"](g, h["mom"], h["lr"] * h["gscale"], step, s[0])
    w += step * h["wscale"]


@DEVICE_KERNELS.rule("adagrad")
def adagrad(u: DeviceUpdates, w, g, s, h) -> None:
    u.E["upd_adagrad"](g, h["gscale"], h["lr"], h["eps"], w, s[0])


@DEVICE_KERNELS.rule("adadelta")
def adadelta(u: DeviceUpdates, w, g, s, h) -> None:
    rho = h["rho"]
    if "wscale" not in h:
        u.E["upd_adadelta"](g, h["gscale"], rho, 1 - rho, h["eps"], w, s[0], s[1])
        return
    step = u.xp.zeros_like(w)
    u.E["upd_adadelta"](g, h["gscale"], rho, 1 - rho, h["eps"], step, s[0], s[1])
    w += step * h["wscale"]


@DEVICE_KERNELS.rule("rmsprop")
def rmsprop(u: DeviceUpdates, w, g, s, h) -> None:
    rho = h["rho"]
    u.E["upd_rmsprop"](g, h["gscale"], rho, 1 - rho, h["lr"], h["eps"], w, s[0])


@DEVICE_KERNELS.rule("adam", "amsgrad")
def adam(u: DeviceUpdates, w, g, s, h) -> None:
    b1, b2 = h["beta_1"], h["beta_2"]
    args = (g, h["gscale"], b1, 1 - b1, b2, 1 - b2, h["lr"], h["eps"], w, s[0], s[1])
    if len(s) > 2:  # amsgrad keeps the running maximum of v in s[2]
        u.E["upd_amsgrad"](*args, s[2])
    else:
        u.E["upd_adam"](*args)
