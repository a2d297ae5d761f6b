"""cpu_eigen's arenas across graphs: graphs of varying sizes reuse the memory of earlier ones
(a graph that outgrows the blocks adds one as large as all of them, so the capacity doubles)
instead of adding blocks on every update."""
from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config
from dynet_api.plugins import registry

pytest.importorskip("dynet_backends.cpu_eigen._cpu_eigen")
if "cpu_eigen" not in registry.names():
    pytest.skip("cpu_eigen is not registered", allow_module_level=True)

from dynet_backends.cpu_eigen import _cpu_eigen as M  # noqa: E402


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


def test_arena_growth_stays_within_the_memory_limit():
    """Doubling the arena would pass the limit; a block of just what the graph needs still fits."""
    ce = registry.get("cpu_eigen")
    dy.set_backend("reference_numpy")  # a fresh executor, without the arenas of earlier graphs
    dy.renew_cg()
    dy.set_backend("cpu_eigen")
    dy.renew_cg()
    old = config.settings["mem"]
    try:
        config.settings["mem"] = str((M.mem_used() >> 20) + 7)  # MB: 7 more than in use
        ce.configure()
        x = dy.inputTensor(np.ones((512, 512), np.float32))  # 1 MB of values per node
        ys = [x]
        for _ in range(4):  # five 1 MB values: blocks of 1, 1, 2 MB, then 1 MB more (not 4)
            ys.append(ys[-1] + x)
        np.testing.assert_allclose(ys[-1].npvalue()[:2, :2], 5.0)
    finally:
        config.settings["mem"] = old
        ce.configure()
