"""The cuda backend: CuPy on NVIDIA GPUs, registered through the ``dynet_api.backends`` entry point.

Registering is cheap (nothing imports CuPy); the factory opens the GPU and
raises :class:`dynet_api.backend.BackendUnavailable` saying why when CuPy is
missing or no CUDA device works, so ``python -m dynet_api backends`` lists the
backend as unavailable with the reason and the default choice falls through
to the next backend.
"""

from __future__ import annotations

from dynet_api.hookspecs import BackendSpec, hookimpl

# Above cpu_eigen (10) and reference_numpy (0): the default whenever a GPU is usable;
# an unavailable backend is skipped by the default choice.
PRIORITY = 20


def make_backend():
    """The factory: a CudaBackend on the first visible GPU, or BackendUnavailable."""
    from .device import open_cupy

    dev, devices = open_cupy()
    from .backend import CudaBackend

    return CudaBackend(dev, devices)


@hookimpl
def dynet_api_backends():
    return [BackendSpec("cuda", make_backend, priority=PRIORITY, devices=("GPU",),
                        description="CuPy on NVIDIA GPUs: the reference's kernels over CuPy, CUDA C for unary ops, "
                                    "scatter-adds, pick and class losses; --dynet-mem is not enforced")]
