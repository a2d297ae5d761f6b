"""The C++/Eigen CPU backend, registered through the ``dynet_api.backends`` entry point.

Registering is cheap: the compiled module is imported only when the backend is
first built, and a failed import makes it unavailable (with the reason) instead
of breaking the other backends.
"""

from __future__ import annotations

from dynet_api.backend import BackendUnavailable
from dynet_api.hookspecs import BackendSpec, hookimpl

PRIORITY = 10  # above reference_numpy (0): the default backend when installed


def make_backend():
    """Factory for the registry: import the extension and build the backend."""
    try:
        from . import _cpu_eigen  # noqa: F401
    except ImportError as e:
        raise BackendUnavailable(f"the compiled module dynet_backends.cpu_eigen._cpu_eigen does not import: {e}") from e
    from .backend import CpuEigenBackend

    return CpuEigenBackend()


@hookimpl
def dynet_api_backends():
    return [BackendSpec("cpu_eigen", make_backend, priority=PRIORITY,
                        description="C++17/Eigen kernels, whole graphs run in C++ (float32, CPU)")]
