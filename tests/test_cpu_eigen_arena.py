"""cpu_eigen's arenas across graphs: graphs of varying sizes reuse the memory of earlier ones
(a graph that outgrows the blocks adds one as large as all of them, so the capacity doubles)
instead of adding blocks on every update."""
from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry

pytest.importorskip("dynet_backends.cpu_eigen._cpu_eigen")
if "cpu_eigen" not in registry.names():
    pytest.skip("cpu_eigen is not registered", allow_module_level=True)


def _graph(n: int, big: int) -> np.ndarray:
    dy.renew_cg()
    xs = [dy.inputTensor(np.full(big, 0.1 * k, dtype=np.float32)) for k in range(n)]
    return dy.esum([dy.tanh(x) for x in xs]).npvalue()


def test_arena_stops_growing_over_varying_graphs():
    dy.set_backend("cpu_eigen")
    sizes = [(3, 300_000), (9, 200_000), (2, 900_000), (12, 100_000), (5, 500_000)]
    caps = []
    for _ in range(4):
        for n, big in sizes:
            got = _graph(n, big)
            want = sum(np.tanh(np.float32(0.1 * k)) for k in range(n))
            np.testing.assert_allclose(got[[0, big // 2, -1]], want, rtol=1e-5)
        caps.append(dy.cg().executor.arena_floats())
    assert caps[-1] == caps[1], caps  # no growth once every size has been seen
    largest = max(2 * n * big for n, big in sizes)  # inputs + tanh values of the largest graph
    assert caps[-1] <= 4 * largest, caps
