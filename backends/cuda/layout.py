"""Layout helpers of the cuda backend's kernels: the reference kernels' own.

Tensors are (data dims..., batch) on both backends, and the reference helpers use
array methods only (reshape, sum), so they run on CuPy arrays unchanged.
"""

from __future__ import annotations

from dynet_backends.reference_numpy.layout import (
                                                   as3,
                                                   as_out,
                                                   batch_bc,
                                                   conv_geometry,
                                                   keep_shape,
                                                   pad,
                                                   red_axes,
                                                   slices,
                                                   unbroadcast,
                                                   vec,
)

__all__ = ["as3", "as_out", "batch_bc", "conv_geometry", "keep_shape", "pad", "red_axes", "slices", "unbroadcast",
           "vec"]
