"""Autobatching's benchmarks (benchmarks/minibatch.py): N instances per graph compute the sum of
the single-instance losses, the hand-batched PyTorch twins compute the same loss as the
per-instance ones, and the runner prints its rows with kernel calls and ratios."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import dynet_api as dy
from benchmarks import data as D
from benchmarks import minibatch, run, tasks_dynet
from dynet_api import config
from dynet_api.plugins import registry

try:
    import torch

    from benchmarks import tasks_torch, tasks_torch_batched

    torch.set_flush_denormal(False)  # importing the twins turns flush-to-zero on for the whole process
except ImportError:  # PyTorch is the optional 'bench' extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (pip install '.[bench]')")
pytestmark = pytest.mark.usefixtures("restore_autobatch")


@pytest.fixture(autouse=True, scope="module")
def _restore_denormals():
    yield
    if torch is not None:
        torch.set_flush_denormal(False)


@pytest.fixture(autouse=True)
def no_dynet_venv(tmp_path, monkeypatch):
    """Tests never start a real DyNet worker, even where its venv is built."""
    monkeypatch.setenv("DYNET_VENV", str(tmp_path / "no-venv"))


@pytest.fixture(params=["reference_numpy", "cpu_eigen"])
def cpu_backend(request):
    try:
        registry.get(request.param)
    except (ValueError, RuntimeError) as e:
        pytest.skip(f"backend {request.param} unavailable: {e}")
    prev = config.backend()
    dy.set_backend(request.param)
    dy.reset_random_seed(7)
    with run.one_blas_thread():
        yield request.param
    dy.set_backend(prev.name)


SIZES = {"tagger": dict(wdim=16, hidden=6, mlp=5, cdim=4, chidden=8), "tree": dict(wdim=8, hidden=10)}


def _tag_data():
    return D.tag_data(seed=12, vocab=1500, n_sents=200, keep=12)


def _small_dynet(name: str, size: int):
    if name == "treelstm":
        return tasks_dynet.Minibatched(tasks_dynet.TreeLSTM(D.tree_data(seed=13, vocab=200, n_trees=12),
                                                            trainer="adam", **SIZES["tree"]), size)
    wc = name.endswith("withchar")
    return tasks_dynet.Minibatched(tasks_dynet.BiLSTMTagger(_tag_data(), wc, trainer="adam", **SIZES["tagger"]), size)


def _small_torch(name: str, size: int, data):
    """(per-instance twin summed over the minibatch, hand-batched twin)."""
    if name == "treelstm":
        return (tasks_torch_batched.PerInstance(tasks_torch.TreeLSTM(data, trainer="adam", **SIZES["tree"]), size),
                tasks_torch_batched.TreeLSTMBatch(size, data, **SIZES["tree"]))
    wc = name.endswith("withchar")
    return (tasks_torch_batched.PerInstance(tasks_torch.BiLSTMTagger(data, wc, trainer="adam", **SIZES["tagger"]),
                                            size),
            tasks_torch_batched.BiLSTMTaggerBatch(size, data, wc, **SIZES["tagger"]))


def _hold_lstm_bias_hh(net) -> None:
    """nn.LSTM's second bias vector would take a second Adam step; DyNet has one bias."""
    for m in net.modules():
        if isinstance(m, torch.nn.LSTM):
            for pname, p in m.named_parameters():
                if pname.startswith("bias_hh"):
                    p.requires_grad_(False)


# ------------------------------------------------------------------ the minibatched tasks


@pytest.mark.parametrize("autobatch", [0, 1])
@pytest.mark.parametrize("name", minibatch.TASKS)
def test_minibatched_loss_is_the_sum_of_its_instances(cpu_backend, name, autobatch):
    """(At 03b868d this caught the front end batching LSTM gates whose input product differs per
    instance as if it were one shared weight.)"""
    minibatch.set_autobatch(autobatch)
    task = _small_dynet(name, 3)
    assert task.items(2) == [6, 7, 8] and task.units(2) == 3 and task.unit == tasks_dynet.MINIBATCH_UNITS[name]
    singles = [task.task.loss(j) for j in task.items(2)]
    assert task.loss(2) == pytest.approx(sum(singles), rel=1e-5)
    loss, units = task.step(2)
    assert loss == pytest.approx(sum(singles), rel=1e-5) and units == 3
    assert task.loss(2) < loss  # one Adam update on those items lowers their summed loss


def test_minibatched_rejects_what_it_cannot_run():
    with pytest.raises(ValueError, match="rnnlm-batch: no minibatched variant"):
        tasks_dynet.make_minibatched("rnnlm-batch", 16)
    with pytest.raises(ValueError, match="treelstm: minibatch size must be at least 1, got 0"):
        tasks_dynet.Minibatched(tasks_dynet.TreeLSTM(D.tree_data(seed=13, vocab=200, n_trees=2), 4, 4), 0)


@needs_torch
@pytest.mark.parametrize("name", minibatch.TASKS)
def test_hand_batched_twin_computes_the_per_instance_loss(name):
    """From the same (dynet_api's) weights: the hand-batched twin, the per-instance PyTorch twin summed
    over the minibatch and dynet_api's minibatched task give one loss, before and after an Adam update
    of each (the gradients agree too)."""
    dy.reset_random_seed(7)
    d = _small_dynet(name, 4)
    per, batched = _small_torch(name, 4, d.data)
    k = 1
    if name == "bilstm-tagger-withchar":  # both spelled-out and embedded words in the minibatch
        k = next(i for i in range(3) if any(w in d.data.rare for j in d.items(i) for w in d.data.item(j)[0]))
    for t in (per, batched):
        t.load_dynet(d.weights())
        _hold_lstm_bias_hh(t.net)
    before = per.loss(k)
    assert batched.loss(k) == pytest.approx(before, rel=1e-4)
    assert d.loss(k) == pytest.approx(before, rel=1e-4)
    assert batched.units(k) == per.units(k) == 4
    per.step(k)
    batched.step(k)
    assert per.loss(k) < before
    assert batched.loss(k) == pytest.approx(per.loss(k), rel=1e-4)
    assert batched.loss(k + 1) == pytest.approx(per.loss(k + 1), rel=1e-4)


@needs_torch
def test_hand_batched_tree_runs_every_height_as_one_level():
    trees = D.tree_data(seed=13, vocab=200, n_trees=12)
    t = tasks_torch_batched.TreeLSTMBatch(3, trees, **SIZES["tree"])
    words, levels, labels = t._minibatch(0)

    def height(x):
        return 0 if D.is_leaf(x) else 1 + max(height(x[1]), height(x[2]))

    items = [trees.item(j) for j in range(3)]
    assert len(levels) == max(height(x) for x in items)
    assert len(words) + sum(len(left) for left, _ in levels) == len(labels) == sum(map(D.tree_size, items))
    done = len(words)
    for left, right in levels:  # children come from the rows of the lower levels
        assert int(left.max()) < done and int(right.max()) < done
        done += len(left)


# ------------------------------------------------------------------ the switch and the counts


def test_set_autobatch_goes_through_the_process_setting():
    minibatch.set_autobatch(0)
    assert config.settings["autobatch"] == 0 and config.given("autobatch")
    minibatch.set_autobatch(1)
    assert config.settings["autobatch"] == 1


def test_set_autobatch_reaches_cpu_eigen_executor():
    try:
        registry.get("cpu_eigen")
    except (ValueError, RuntimeError) as e:
        pytest.skip(f"cpu_eigen unavailable: {e}")
    from dynet_backends.cpu_eigen import _cpu_eigen as M

    dy.set_backend("cpu_eigen")
    for on in (False, True, False):
        minibatch.set_autobatch(int(on))
        dy.renew_cg()  # the graph reads the setting here and tells the backend
        assert M.autobatch() is on


def test_kernel_calls_come_from_profiling(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(reset=lambda: calls.clear(), kernel_calls=lambda: len(calls))
    monkeypatch.setitem(sys.modules, "dynet_api.profiling", fake)
    assert minibatch.kernel_calls_of(lambda: calls.extend([1, 2, 3])) == 3
    assert minibatch.kernel_calls_of(lambda: None) is None  # nothing counted: the backend does not count
    monkeypatch.setitem(sys.modules, "dynet_api.profiling", None)  # a tree without the module
    assert minibatch.kernel_calls_of(lambda: None) is None


def test_table_ratios_against_dynet_and_autobatch_off():
    R = minibatch.Row
    rows = [R("treelstm", 64, "dynet_api cpu_eigen", 0, "trees/sec", 5, 100.0, 9.0, 4000),
            R("treelstm", 64, "dynet_api cpu_eigen", 1, "trees/sec", 5, 250.0, 9.0, 160),
            R("treelstm", 64, minibatch.TORCH, None, "trees/sec", 5, 50.0, 9.0),
            R("treelstm", 64, minibatch.DYNET, 0, "trees/sec", 5, 150.0, 9.0),
            R("treelstm", 64, minibatch.DYNET, 1, "trees/sec", 5, 200.0, 9.0)]
    lines = minibatch.format_table(rows).splitlines()
    assert "kernel calls/update" in lines[0] and "vs DyNet ab=1" in lines[0] and "vs ab=0" in lines[0]
    cells = [line.split("  ") for line in lines[2:]]
    cells = [[c.strip() for c in row if c.strip()] for row in cells]
    assert cells[0][7:11] == ["4000", "-", "0.50x", "-"]
    assert cells[1][7:11] == ["160", "25.0x", "1.25x", "2.50x"]
    assert cells[2][6:11] == ["50.0", "n/a", "-", "0.25x", "-"]
    assert cells[3][9:11] == ["0.75x", "-"] and cells[4][9:11] == ["1.00x", "1.33x"]


# ------------------------------------------------------------------ the runner


def test_runner_prints_a_row_per_side_and_autobatch(capsys):
    rows = minibatch.main(["--dynet-backend", "reference_numpy", "--minibatch", "2", "--tasks", "treelstm",
                           "--seconds", "0.01", "--rounds", "1"])
    want = [("dynet_api reference_numpy", 0), ("dynet_api reference_numpy", 1)] + (
        [(minibatch.TORCH, None)] if torch is not None else [])
    assert [(r.side, r.autobatch) for r in rows] == want
    assert all(r.size == 2 and r.unit == "trees/sec" and r.speed > 0 and r.updates >= 2 for r in rows)
    # same seed, same items: batching on or off computes the same warm-up loss
    assert rows[1].loss == pytest.approx(rows[0].loss, rel=1e-5)
    if rows[0].calls is not None:  # dynet_api.profiling present: batching never adds calls
        assert rows[1].calls <= rows[0].calls
    out = capsys.readouterr().out
    assert "make_dynet_venv.sh" in out and "vs ab=0" in out
    assert sum(line.startswith("treelstm ") for line in out.splitlines()) == len(want)


def test_runner_rejects_bad_sizes():
    with pytest.raises(SystemExit, match="--minibatch"):
        minibatch.parse_args(["--minibatch", "16,x"])
    with pytest.raises(SystemExit, match="--autobatch"):
        minibatch.parse_args(["--autobatch", "-1"])


_FAKE_DYNET = '''"""Stands in for DyNet 2.1.2 in the worker: dynet_api on the reference backend, seeded as run seeds."""
import dynet_api as _d

_d.set_backend("reference_numpy")
_d.reset_random_seed(1234)


def __getattr__(name):
    return getattr(_d, name)
'''


def test_peer_worker_gets_its_autobatch_and_runs_minibatches(tmp_path, monkeypatch):
    """One DyNet worker per autobatch value (DyNet reads it at init): the value reaches its
    ``dynet_config.set``, and the worker trains the minibatched variant on the caller's items."""
    from benchmarks import dynet_peer

    (tmp_path / "dynet.py").write_text(_FAKE_DYNET)
    (tmp_path / "dynet_config.py").write_text(
        f"def set(**kw):\n    open({str(tmp_path / 'set.txt')!r}, 'w').write(repr(sorted(kw.items())))\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    trees = D.tree_data(seed=13, vocab=200, n_trees=12)
    with dynet_peer.Peer(python=Path(sys.executable), autobatch=1) as peer:
        side = minibatch._peer_side(peer, "treelstm", 3, "adam", trees, "wall")
        dt, units, loss = side.timed(1, 2, 0)
    dy.set_backend("reference_numpy")
    dy.reset_random_seed(1234)  # as the fake DyNet is seeded: the worker's warm-up loss is this one
    local = tasks_dynet.make_minibatched("treelstm", 3, "adam", trees)
    assert side.first_loss == pytest.approx(local.loss(0), rel=1e-5)
    assert (tmp_path / "set.txt").read_text() == repr([("autobatch", 1), ("mem", 1024), ("random_seed", 1234)])
    assert side.label == minibatch.DYNET and side.autobatch == 1
    assert units == 6 and dt > 0 and loss > 0


def test_run_with_minibatch_runs_the_autobatching_benchmarks(monkeypatch):
    got = []
    monkeypatch.setattr(minibatch, "main", got.append)
    argv = ["--minibatch=16,64", "--dynet-backend", "cpu_eigen", "--autobatch", "0,1"]
    assert run.main(argv) == 0
    assert got == [argv]


def test_a_failing_side_is_reported_in_its_row_and_the_others_still_run(monkeypatch, capsys):
    step = tasks_dynet.Minibatched.step

    def fails_batched(self, k):
        if config.settings["autobatch"]:
            raise ValueError("cannot reshape")
        return step(self, k)

    monkeypatch.setattr(tasks_dynet.Minibatched, "step", fails_batched)
    rows = minibatch.run_minibatch("treelstm", 2, ["reference_numpy"], [0, 1], 0.01, False, rounds=1)
    assert rows[0].error is None and rows[0].speed > 0
    assert rows[1].error == "ValueError in the warm-up update"
    assert "ValueError: cannot reshape" in capsys.readouterr().err
    line = minibatch.format_table(rows).splitlines()[-1]
    assert "failed: ValueError in the warm-up update" in line


def test_every_side_times_the_same_minibatches(monkeypatch):
    """Sides of different speeds run different numbers of updates, but all on minibatches 0 .. M - 1
    (M: the slowest side's count), each a whole number of times."""
    seen: dict[int, list[int]] = {0: [], 1: []}
    step = tasks_dynet.Minibatched.step

    def record(self, k):
        seen[config.settings["autobatch"]].append(k)
        return step(self, k)

    per = {0: 0.004, 1: 0.001}  # batching off calibrates 4x slower: 4x fewer updates
    monkeypatch.setattr(run, "_calibrate", lambda task, budget: per[config.settings["autobatch"]])
    monkeypatch.setattr(tasks_dynet.Minibatched, "step", record)
    rows = minibatch.run_minibatch("treelstm", 2, ["reference_numpy"], [0, 1], 0.012, False, rounds=2)
    assert [r.updates for r in rows] == [3, 12]
    timed = {ab: ks[1:-1] for ab, ks in seen.items()}  # between the warm-up and the counted update (both 0)
    assert timed[0] == [0, 1, 2] and timed[1] == [0, 1, 2] * 4


def test_phases_time_every_side_on_the_same_minibatches(capsys):
    """``--phases N``: each side also times N updates phase by phase, and the table says where an
    update goes (medians; construction includes renew_cg)."""
    rows = minibatch.main(["--dynet-backend", "reference_numpy", "--minibatch", "2", "--tasks", "treelstm",
                           "--seconds", "0.01", "--rounds", "1", "--autobatch", "0,1", "--phases", "3", "--no-torch"])
    assert [r.autobatch for r in rows] == [0, 1]
    for r in rows:
        assert set(r.phases) == set(run.PHASES) and all(v > 0 for v in r.phases.values())
    out = capsys.readouterr().out
    assert "where an update goes: median ms per phase over 3 updates" in out
    assert sum("treelstm N=2" in line for line in out.splitlines()) == 2
    with pytest.raises(SystemExit):
        minibatch.parse_args(["--phases", "-1"])


def test_phase_medians_are_medians_of_step_phases():
    class Steps:
        def __init__(self):
            self.seen = []

        def step_phases(self, k):
            self.seen.append(k)
            return {ph: float(k) for ph in run.PHASES}

    t = Steps()
    got = run.phase_medians(t, 4, 3)
    assert t.seen == [4, 5, 6] and got == dict.fromkeys(run.PHASES, 5.0)


def test_peer_worker_times_phases(tmp_path, monkeypatch):
    from benchmarks import dynet_peer

    (tmp_path / "dynet.py").write_text(_FAKE_DYNET)
    (tmp_path / "dynet_config.py").write_text("def set(**kw):\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    trees = D.tree_data(seed=13, vocab=200, n_trees=12)
    with dynet_peer.Peer(python=Path(sys.executable), autobatch=1) as peer:
        side = minibatch._peer_side(peer, "treelstm", 3, "adam", trees, "wall")
        got = side.phases(1, 2)
    assert set(got) == set(run.PHASES) and all(v > 0 for v in got.values())
