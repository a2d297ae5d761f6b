"""Leaf kernels: host data, constants, random tensors, parameters and lookups (no inputs)."""

from __future__ import annotations

import numpy as np

F32 = np.float32


class Leaves:
    """The op table's leaves section (a mixin of :class:`.kernels.Kernels`)."""

    def f_input(self, xs, a, d):
        return self.xp.asarray(a.data, dtype=F32)

    def f_constant(self, xs, a, d):
        return self.xp.full(d.shape, a.value, F32)

    def f_random_normal(self, xs, a, d):
        return self.rng.normal(a.mean, a.stddev, d.shape)

    def f_random_bernoulli(self, xs, a, d):
        return self.xp.asarray((self.rng.uniform64(d.shape) < a.p) * a.scale, dtype=F32)

    def f_random_uniform(self, xs, a, d):
        return self.rng.uniform(a.left, a.right, d.shape)

    def f_random_gumbel(self, xs, a, d):
        xp = self.xp
        u = xp.clip(self.rng.uniform64(d.shape), 1e-12, 1 - 1e-12)
        return xp.asarray(a.mu - a.beta * xp.log(-xp.log(u)), dtype=F32)

    def f_parameter(self, xs, a, d):  # the weights: the stored values times the weight-decay factor
        st = a.storage
        f = st.wscale.factor
        return st.value if f == 1.0 else st.value * f

    def f_lookup(self, xs, a, d):
        rows, f = a.storage.value[..., self.index(a.indices)], a.storage.wscale.factor
        return rows if f == 1.0 else rows * f
