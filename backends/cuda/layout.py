"""Layout helpers of the cuda backend's kernels: the reference kernels' own.

Tensors are (data dims..., batch) on both backends, and the reference helpers use
array methods only (reshape, sum), so they run on CuPy arrays unchanged.
"""

from __future__ import annotations

from dynet_backends.reference_numpy.kernels import _as3 as as3
from dynet_backends.reference_numpy.kernels import _as_out as as_out
from dynet_backends.reference_numpy.kernels import _keep as keep_shape
from dynet_backends.reference_numpy.kernels import _red_axes as red_axes
from dynet_backends.reference_numpy.kernels import _vec as vec
from dynet_backends.reference_numpy.kernels import batch_bc, pad, unbroadcast
from dynet_backends.reference_numpy.kernels_more import _conv_geometry as conv_geometry
from dynet_backends.reference_numpy.kernels_more import _slices as slices

__all__ = ["as3", "as_out", "batch_bc", "conv_geometry", "keep_shape", "pad", "red_axes", "slices", "unbroadcast",
           "vec"]
