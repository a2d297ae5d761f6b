"""Trainer rules on the device: a fused ElementwiseKernel per rule where one is written, else the reference's.

:class:`DeviceUpdates` is the reference's :class:`Updates` over the device's array module, with
:data:`DEVICE_KERNELS`: every ``dn_upd_<rule>`` function of ``kernels/elementwise.cuh`` is the
fused kernel of ``<rule>``, registered by its name (:func:`fused`: its scalar parameters are read
from ``hyper`` by name); a rule without one runs the reference's kernel over CuPy (as eg does).
Sparse lookup updates gather and scatter the touched rows on the device.
"""

from __future__ import annotations

from collections.abc import Callable

from dynet_backends.reference_numpy.updates import KERNELS, Kernel, RuleKernels, Updates

from .ewspec import ELEMENTWISE, params

DEVICE_KERNELS = RuleKernels(fallback=KERNELS)


class DeviceUpdates(Updates):
    def __init__(self, dev) -> None:
        super().__init__(dev.xp, "cuda backend", dev.index, DEVICE_KERNELS)
        self.E = dev.ew

    def gather(self, t, r):
        """The rows as a C-ordered copy, the layout the fused kernels write."""
        return self.xp.take(t, r, axis=-1)


def _scalar(name: str) -> Callable[[dict], float]:
    """How a fused kernel's scalar parameter ``name`` is read from ``hyper``: ``lr_gs`` is
    lr * gscale, ``one_minus_<key>`` is 1 - hyper[key] (in double, as the reference computes it),
    any other name is a key of ``hyper``."""
    if name == "lr_gs":
        return lambda h: h["lr"] * h["gscale"]
    if name.startswith("one_minus_"):
        key = name[len("one_minus_"):]
        return lambda h: 1 - h[key]
    return lambda h: h[name]


def fused(rule: str) -> Kernel:
    """The kernel of ``rule`` that calls its fused ElementwiseKernel ``upd_<rule>``: the gradient,
    the scalars from ``hyper``, then w and the states, in place.  Under the lazy weight decay
    (``wscale`` in ``hyper``) the kernel steps a zero tensor and w gets that step times wscale."""
    name = f"upd_{rule}"
    spec = ELEMENTWISE[name]
    scalars = [_scalar(n) for _, n in params(spec.ins)[1:]]
    n_states = len(params(spec.outs)) - 1

    def run(u: DeviceUpdates, w, g, s, h) -> None:
        if len(s) != n_states:
            raise ValueError(f"cuda backend: update rule {rule!r} takes {n_states} state tensors, got {len(s)}")
        try:
            args = [f(h) for f in scalars]
        except KeyError as e:
            raise ValueError(f"cuda backend: update rule {rule!r}: hyper has no {e.args[0]!r} "
                             f"(the parameters of dn_upd_{rule}: {spec.ins})") from None
        if "wscale" not in h:
            u.E[name](g, *args, w, *s)
            return
        step = u.xp.zeros_like(w)  # the lazy weight decay's factor on the step: the kernel stays as it is
        u.E[name](g, *args, step, *s)
        w += step * h["wscale"]

    return run


for _name in ELEMENTWISE:
    if _name.startswith("upd_"):
        DEVICE_KERNELS.rule(_name[len("upd_"):])(fused(_name[len("upd_"):]))
