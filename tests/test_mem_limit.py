"""``--dynet-mem`` is a cap on every first-party backend: going over it raises MemoryError
naming the cap and the request; a graph's values are given back when it is renewed."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api.plugins import registry

BACKENDS = [n for n in ("reference_numpy", "cpu_eigen") if n in registry.names()]


def _in_use_mb(be) -> int:
    """What the backend already holds (other tests' live parameters), in whole MB."""
    budget = getattr(be, "budget", None)
    if budget is not None:
        return budget.used >> 20
    from dynet_backends.cpu_eigen import _cpu_eigen

    return _cpu_eigen.mem_used() >> 20


@pytest.fixture
def capped(request):
    """Backend ``request.param`` with a cap 2 to 3 MB above what it holds now, restored afterwards;
    yields (backend name, cap in MB)."""
    name = request.param
    old_mem, old_backend = config.settings["mem"], dy.backend_name()
    be = registry.get(name)
    dy.set_backend(name)
    dy.renew_cg()
    gc.collect()
    cap = _in_use_mb(be) + 2
    config.settings["mem"] = str(cap)
    be.configure()
    try:
        yield name, cap
    finally:
        config.settings["mem"] = old_mem
        be.configure()
        dy.set_backend(old_backend)


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_graph_values_over_the_cap_raise_memory_error(capped):
    dy.renew_cg()
    big = dy.inputTensor(np.ones((512, 512), np.float32))  # 1 MB per node value
    y = big
    for _ in range(5):
        y = y + big
    name, cap = capped
    with pytest.raises(MemoryError, match=rf"{name}: out of memory: the memory limit \(--dynet-mem / mem\) of {cap} MB "
                                          r"is exhausted \(\d+ MB in use, \d+ bytes more requested\)"):
        y.npvalue()


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_training_goes_on_after_a_graph_hit_the_cap(capped):
    """A graph over the cap fails; the next graphs under it, forward and backward, must still run."""
    pc = dy.ParameterCollection()
    w = pc.add_parameters((8, 8), init=dy.ConstInitializer(0.5))
    dy.renew_cg()
    big = dy.inputTensor(np.ones((512, 512), np.float32))
    y = big
    for _ in range(5):
        y = y + big
    with pytest.raises(MemoryError):
        y.npvalue()
    for _ in range(3):
        dy.renew_cg()
        loss = dy.sum_elems(dy.tanh(w * dy.inputTensor(np.ones(8))))
        loss.backward()
        assert loss.value() == pytest.approx(8 * np.tanh(4.0), rel=1e-5)


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_parameters_over_the_cap_raise_memory_error(capped):
    pc = dy.ParameterCollection()
    name, cap = capped
    with pytest.raises(MemoryError, match=f"{name}: out of memory.* of {cap} MB.*bytes more requested"):
        pc.add_parameters((1024, 1024))  # 4 MB of values alone


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_memory_is_given_back_between_graphs(capped):
    # 1.5 MB per graph, twenty graphs: passes only if renew_cg gives back the previous graph's values
    for k in range(20):
        dy.renew_cg()
        x = dy.inputTensor(np.full((256, 256), float(k), np.float32))
        s = dy.sum_elems(x * 2.0 + x)
        assert s.value() == pytest.approx(3.0 * k * 256 * 256)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynet_mem_flag_is_enforced(backend):
    code = ("import numpy as np, dynet_api as dy\n"
            "dy.renew_cg(); x = dy.inputTensor(np.ones((1024, 1024), np.float32))\n"
            "try:\n    (x + x).npvalue()\nexcept MemoryError as e:\n    print('capped:', e)\n")
    env = dict(os.environ, DYNET_BACKEND=backend)
    r = subprocess.run([sys.executable, "-c", code, "--dynet-mem", "3"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("capped:") and "of 3 MB" in r.stdout, r.stdout
