"""Shared fixtures: every test starts on a fresh graph with a fixed seed."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import dynet_api as dy

# The installed package is imported first (with its compiled parts); the checkout is appended
# after it so that the repository's `benchmarks` package can be imported by its tests.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

SEED = 1234


@pytest.fixture(autouse=True)
def fresh_graph():
    """A new computation graph and reseeded generators, so tests are independent and repeatable."""
    dy.reset_random_seed(SEED)
    dy.renew_cg()
    yield
    dy.renew_cg()


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator for test data (independent of the library's own)."""
    return np.random.default_rng(SEED)


@pytest.fixture
def restore_autobatch():
    """For tests that switch cpu_eigen's autobatching: the setting (and whether it was given
    explicitly) comes back afterwards, with cpu_eigen as the backend."""
    from dynet_api import config
    from dynet_api.plugins import registry

    saved, explicit = config.settings.get("autobatch"), "autobatch" in config._explicit
    yield
    config.settings["autobatch"] = saved
    if not explicit:
        config._explicit.discard("autobatch")
    dy.set_backend("cpu_eigen")
    registry.get("cpu_eigen").configure()
    dy.renew_cg()


# The first-party backends that run on this machine, and the cuda backend's code over NumPy with its
# CUDA C compiled for the host (the emulation that tests/test_cuda.py builds).
FIRST_PARTY = ("reference_numpy", "cpu_eigen", "cuda_hostemu")


def _backend_object(name: str):
    from dynet_api.plugins import registry

    if name != "cuda_hostemu":
        return registry.get(name)
    from dynet_backends.cuda import hostemu
    from dynet_backends.cuda.backend import CudaBackend

    if hostemu.find_cxx() is None:
        pytest.skip("no host C++ compiler for the emulated cuda device")
    return CudaBackend(hostemu.HostDevice(), ("HOSTEMU:0",), "cuda_hostemu")


_objects: dict = {}


@pytest.fixture(params=FIRST_PARTY)
def each_backend(request):
    """Run the test on every first-party backend in turn (the graph, parameters and trainers on it)."""
    from dynet_api.conformance.switch import using

    if request.param not in _objects:
        _objects[request.param] = _backend_object(request.param)
    with using(_objects[request.param]) as b:
        dy.reset_random_seed(SEED)
        dy.renew_cg()
        yield b
