"""Data-parallel training over MPI: 2 ranks on the loopback (``mpiexec -launcher fork``), bounded by timeouts.

Each test starts ``mpiexec -n 2 python tests/mpi_worker.py MODE OUT`` in its own process group, with a
timeout, and kills the group afterwards whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest


def test_without_mpi4py_the_library_works_and_init_says_what_to_install(monkeypatch):
    import dynet_api as dy
    from dynet_api import distributed

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if the extra were not installed
    monkeypatch.setattr(distributed, "_world", None)
    assert dy.ParameterCollection().add_parameters(2, init=1.0).as_array().tolist() == [1.0, 1.0]
    with pytest.raises(ImportError, match=r'pip install "dynet_api\[mpi\]" \(mpi4py, mpich\)'):
        distributed.init()


pytest.importorskip("mpi4py", reason='mpi4py missing: pip install ".[mpi]" (mpi4py, mpich)')

WORKER = os.path.join(os.path.dirname(__file__), "mpi_worker.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
if MPIEXEC is None:
    pytest.skip('no mpiexec: pip install ".[mpi]" brings mpich\'s', allow_module_level=True)
TIMEOUT = 90


def run_job(mode: str, tmp_path, n: int = 2) -> tuple[subprocess.CompletedProcess, dict | None, float]:
    out = str(tmp_path / f"{mode}.json")
    env = dict(os.environ, DYNET_BACKEND=os.environ.get("DYNET_BACKEND", ""))
    cmd = [MPIEXEC, "-launcher", "fork", "-n", str(n), sys.executable, WORKER, mode, out]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        so, se = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        so, se = p.communicate()
        pytest.fail(f"mpiexec {mode} hung past {TIMEOUT} s:\n{se[-3000:]}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # any rank left behind
        except ProcessLookupError:
            pass
    res = subprocess.CompletedProcess(cmd, p.returncode, so, se)
    data = json.load(open(out)) if os.path.exists(out) else None
    return res, data, time.monotonic() - t0


@pytest.mark.parametrize("kind", ["sgd", "adam", "sgd-avg"])
def test_two_ranks_equal_one_process_on_the_union(kind, tmp_path):
    res, d, _ = run_job(f"equiv-{kind}", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1, single, start = d["ranks"][0], d["ranks"][1], d["single"], d["start"]
    assert set(r0) == {"/E", "/W", "/b", "/U"}
    for name in r0:
        np.testing.assert_array_equal(np.array(r0[name]), np.array(r1[name]), err_msg=name)  # ranks identical
        np.testing.assert_allclose(np.array(r0[name]), np.array(single[name]), rtol=1e-5, atol=1e-6, err_msg=name)
        assert not np.allclose(np.array(r0[name]), np.array(start[name])), f"{name} never trained"
    E0, Es = np.array(r0["/E"]), np.array(start["/E"])
    # rows 5..9 are looked up on rank 1 only, yet rank 0's copy moved with them
    assert not np.allclose(E0[5:], Es[5:])
    # the combined gradient was clipped, as the single process's was (the averaged run clips nothing)
    assert d["clips"] > 0 if kind != "sgd-avg" else d["clips"] == 0


def test_a_rank_that_raises_stops_the_job(tmp_path):
    res, _, secs = run_job("fail", tmp_path)
    assert res.returncode != 0
    assert "rank 1 of 2 failed" in res.stderr and "rank 1 fails on purpose" in res.stderr
    # the reason is in the line that says so, which mpiexec forwards before the abort cuts output off
    line = next(ln for ln in res.stderr.splitlines() if "rank 1 of 2 failed" in ln)
    assert "rank 1 fails on purpose" in line and line.endswith("aborting the job")
    assert secs < TIMEOUT


def test_a_rank_that_dies_stops_the_job(tmp_path):
    res, _, secs = run_job("kill", tmp_path)
    assert res.returncode != 0
    assert secs < TIMEOUT


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    res, full, _ = run_job("full", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert os.path.exists(tmp_path / "ckpt") and os.path.exists(tmp_path / "ckpt.state")
    res, resumed, _ = run_job("resume", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert resumed["updates"] == full["updates"] == 6
    for name, v in full["ranks"][0].items():
        np.testing.assert_array_equal(np.array(resumed["ranks"][0][name]), np.array(v), err_msg=name)
        np.testing.assert_array_equal(np.array(resumed["ranks"][1][name]), np.array(v), err_msg=name)


def test_shard_is_disjoint_and_covers():
    from dynet_api import distributed

    data = list(range(11))
    parts = [distributed.shard(data, r, 3, equal=False) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    # equal shards (the default): every rank the same number of items, so the same number of steps
    assert [distributed.shard(data, r, 3) for r in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match="rank 3"):
        distributed.shard(data, 3, 3)


def test_trainer_state_round_trip():
    import dynet_api as dy
    from dynet_api import distributed

    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), init=1.0)
    tr = dy.AdamTrainer(pc, 0.1)
    dy.renew_cg()
    dy.sum_elems(W * dy.inputVector([1.0, 2.0, 3.0])).backward()
    tr.update()
    tr.learning_rate = 0.025  # decayed by the program: the checkpoint keeps it
    state = json.loads(json.dumps(distributed.trainer_state(tr)))
    tr2 = dy.AdamTrainer(pc, 0.1)
    distributed.set_trainer_state(tr2, state)
    assert tr2.updates == 1
    assert tr2.learning_rate == 0.025
    m1 = [pc.all_storages()[0].backend.to_numpy(t) for t in pc.all_storages()[0].states[tr._state_key]]
    m2 = [pc.all_storages()[0].backend.to_numpy(t) for t in pc.all_storages()[0].states[tr2._state_key]]
    for a, b in zip(m1, m2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.abs(m1[0]).sum() > 0
    cyc = dy.CyclicalSGDTrainer(pc, 0.01, 0.1, step_size=3)
    for _ in range(2):
        dy.renew_cg()
        dy.sum_elems(W * dy.inputVector([1.0, 2.0, 3.0])).backward()
        cyc.update()
    cyc2 = dy.CyclicalSGDTrainer(pc, 0.5, 0.9, step_size=7)
    distributed.set_trainer_state(cyc2, json.loads(json.dumps(distributed.trainer_state(cyc))))
    assert (cyc2.e_min, cyc2.e_max, cyc2.step_size, cyc2.it, cyc2.learning_rate) == \
        (cyc.e_min, cyc.e_max, cyc.step_size, cyc.it, cyc.learning_rate)
    with pytest.raises(ValueError, match="AdamTrainer, not SimpleSGDTrainer"):
        distributed.set_trainer_state(dy.SimpleSGDTrainer(pc), state)
