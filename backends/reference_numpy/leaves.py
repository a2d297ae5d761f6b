"""Leaf kernels: host data, constants, random tensors, parameters and lookups (no inputs)."""

from __future__ import annotations

import numpy as np

F32 = np.float32


class Leaves:
    """The op table's leaves section (a mixin of :class:`.kernels.Kernels`)."""

    def f_input(self, xs, a, d):
        return self.xp.asarray(a[0], dtype=F32)

    def f_constant(self, xs, a, d):
        return self.xp.full(d.shape, a[0], F32)

    def f_random_normal(self, xs, a, d):
        return self.rng.normal(a[0], a[1], d.shape)

    def f_random_bernoulli(self, xs, a, d):
        return self.xp.asarray((self.rng.uniform64(d.shape) < a[0]) * a[1], dtype=F32)

    def f_random_uniform(self, xs, a, d):
        return self.rng.uniform(a[0], a[1], d.shape)

    def f_random_gumbel(self, xs, a, d):
        xp = self.xp
        u = xp.clip(self.rng.uniform64(d.shape), 1e-12, 1 - 1e-12)
        return xp.asarray(a[0] - a[1] * xp.log(-xp.log(u)), dtype=F32)

    def f_parameter(self, xs, a, d):  # the weights: the stored values times the weight-decay factor
        f = a[0].wscale.factor
        return a[0].value if f == 1.0 else a[0].value * f

    def f_lookup(self, xs, a, d):
        rows, f = a[0].value[..., self.index(a[1])], a[0].wscale.factor
        return rows if f == 1.0 else rows * f
