"""Worker processes get their own, reproducible random streams under fork and spawn (tests/mp_helpers.py)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

HELPER = os.path.join(os.path.dirname(__file__), "mp_helpers.py")


@functools.cache
def run(method: str, trial: int = 0) -> dict:
    out = subprocess.run([sys.executable, HELPER, method], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_draw_their_own_reproducible_streams(method):
    a, b = run(method), run(method, 1)
    assert a == b  # reproducible from the seed and the worker number
    w1, w2, parent = a["workers"]["1"], a["workers"]["2"], a["parent"]
    assert w1 != w2 and w1 != parent and w2 != parent  # nobody repeats another's draws


def test_fork_and_spawn_give_worker_n_the_same_stream():
    from dynet_api.workers import stream_seed

    assert run("fork")["workers"] == run("spawn")["workers"]
    assert stream_seed(7, 1) != stream_seed(7, 2) and stream_seed(7, 1) == stream_seed(7, 1)
