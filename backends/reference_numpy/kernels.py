"""Reference kernels: the executable specification of every op, written once over an array module.

Every tensor is an array shaped ``Dim.shape`` (data dims, then the batch).
``FWD[op](xs, attrs, dim)`` returns the output; ``BWD[op](xs, y, dy, attrs, dim, i)``
returns the gradient of input ``i`` in that input's shape.  Written for clarity first:
the conformance suite compares every other backend to these.  The kernels keep their
inputs' dtype, so the tests can check gradients by central differences in float64.

:class:`Kernels` is the whole op set over any array module with NumPy's API: this
module builds it over NumPy for the reference backend; the cuda backend builds it over
CuPy and replaces only the kernels it writes in CUDA C.  The sections follow the op
table (``dynet_api/ops.py``), one module each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.special

from .arithmetic import Arithmetic
from .fused import Fused
from .kernelset import KernelSet
from .leaves import Leaves
from .linalg_conv import LinalgConv
from .losses import Losses
from .portable import NumpyRandom
from .reductions import Reductions
from .shape import Shape
from .unary import Unary


class Kernels(Leaves, Arithmetic, Unary, Reductions, Shape, Losses, LinalgConv, Fused, KernelSet):
    """Every op's forward and backward kernel over the array module ``xp`` (see :class:`.kernelset.KernelSet`)."""

    def __init__(self, xp: Any, special: Any, rng: Any) -> None:
        super().__init__(xp, special, rng)
        self.add_unary_kernels()


RANDOM = NumpyRandom()  # the reference backend's generator (Backend.seed reseeds it)
REFERENCE = Kernels(np, scipy.special, RANDOM)
FWD = REFERENCE.FWD
BWD = REFERENCE.BWD
