"""The threading model: one graph per process, owned by the thread that last called renew_cg.

Several threads that build, evaluate, backpropagate and update at once must each end with
either the right numbers or GraphThreadError; never a crash or a silently wrong value.  The
threads run in a subprocess so that a segfault fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dynet_api.plugins import registry

BACKENDS = [n for n in ("reference_numpy", "cpu_eigen") if n in registry.names()]

# Each thread trains its own two-layer model for STEPS steps; the main thread then replays
# every thread's run alone (all workers have exited, so it may take the graph over) and
# compares its losses with what the thread reported.
SCRIPT = r"""
import json, sys, threading
import numpy as np
import dynet_api as dy

N, STEPS = int(sys.argv[1]), 200
if sys.argv[2] == "primed":
    dy.backend_name()  # the backend chosen before the threads start: they race on the graph only

def train(k):
    rng = np.random.default_rng(k)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((8, 5), init=dy.NumpyInitializer(rng.standard_normal((8, 5))))
    E = pc.lookup_parameters_from_numpy(rng.standard_normal((10, 5)))
    t = dy.SimpleSGDTrainer(pc, 0.1)
    losses = []
    for s in range(STEPS):
        dy.renew_cg()
        x = dy.lookup(E, (s + k) % 10)
        h = dy.tanh(W * x)
        loss = dy.squared_norm(h - dy.inputVector([0.1 * k] * 8))
        losses.append(loss.value())
        loss.backward()
        t.update()
    return losses

start, done = threading.Barrier(N), threading.Barrier(N)
out = [None] * N

def worker(k):
    start.wait()
    try:
        out[k] = ["ok", train(k)]
    except Exception as e:  # GraphThreadError is expected; any other error is a failure the test reports
        out[k] = ["error" if type(e).__name__ == "GraphThreadError" else "other", repr(e)]
    done.wait(60)  # no worker exits (giving up the graph) before all have tried

ts = [threading.Thread(target=worker, args=(k,), name="worker-%d" % k) for k in range(N)]
for t in ts:
    t.start()
for t in ts:
    t.join()
replay = [train(k) for k in range(N)]
print(json.dumps({"out": out, "replay": replay}))
"""


@pytest.mark.parametrize("start", ["cold", "primed"])
@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_get_right_values_or_clear_error(backend, n, start):
    env = dict(os.environ, DYNET_BACKEND=backend)
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(n), start], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    res = json.loads(r.stdout.splitlines()[-1])
    kinds = [o[0] for o in res["out"]]
    assert "other" not in kinds, res["out"]
    assert kinds.count("ok") >= 1  # the first thread to renew owns the graph and trains normally
    for k, (kind, val) in enumerate(res["out"]):
        if kind == "ok":
            assert val == pytest.approx(res["replay"][k], rel=1e-5, abs=1e-6)
        else:
            assert "belongs to thread" in val and "worker-" in val


def test_a_second_thread_is_refused_while_the_owner_lives():
    import threading

    import dynet_api as dy

    got = []

    def other():
        dy.renew_cg()
        got.append(dy.sum_elems(dy.inputVector([1.0, 2.0])).value())

    # The main thread (pytest's) owns the graph and is alive: another thread is refused...
    dy.renew_cg()
    t = threading.Thread(target=lambda: got.append(_raises(dy.renew_cg)))
    t.start()
    t.join()
    assert isinstance(got.pop(), dy.GraphThreadError)
    # ...and may not evaluate an expression of the main thread's graph either.
    e = dy.inputVector([3.0])
    t = threading.Thread(target=lambda: got.append(_raises(e.value)))
    t.start()
    t.join()
    err = got.pop()
    assert isinstance(err, dy.GraphThreadError) and "forward" in str(err)
    assert e.value() == 3.0  # the owner is unaffected


def _raises(f):
    try:
        f()
    except Exception as e:  # returned for the test to inspect
        return e
    return None
