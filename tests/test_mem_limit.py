"""``--dynet-mem`` is a cap on every first-party backend: going over it raises MemoryError
naming the cap and the request; a graph's values are given back when it is renewed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api.plugins import registry

BACKENDS = [n for n in ("reference_numpy", "cpu_eigen") if n in registry.names()]


@pytest.fixture
def capped(request):
    """Backend ``request.param`` with a 2 MB cap, restored afterwards."""
    name = request.param
    old_mem, old_backend = config.settings["mem"], dy.backend_name()
    be = registry.get(name)
    config.settings["mem"] = "2"
    be.configure()
    dy.set_backend(name)
    try:
        yield name
    finally:
        config.settings["mem"] = old_mem
        be.configure()
        dy.set_backend(old_backend)


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_graph_values_over_the_cap_raise_memory_error(capped):
    dy.renew_cg()
    big = dy.inputTensor(np.ones((512, 512), np.float32))  # 1 MB per node value
    y = big
    for _ in range(4):
        y = y + big
    with pytest.raises(MemoryError, match=r"memory limit \(--dynet-mem / mem\) of 2 MB is exhausted"):
        y.npvalue()


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_parameters_over_the_cap_raise_memory_error(capped):
    pc = dy.ParameterCollection()
    with pytest.raises(MemoryError, match=f"{capped}: out of memory.*2 MB.*bytes more requested"):
        pc.add_parameters((1024, 1024))  # 4 MB of values alone


@pytest.mark.parametrize("capped", BACKENDS, indirect=True)
def test_memory_is_given_back_between_graphs(capped):
    # 1.5 MB per graph, twenty graphs: passes only if renew_cg releases the previous graph's values
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
