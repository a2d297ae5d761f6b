"""The benchmark tasks cannot rot: data shapes, one update of every task on the reference
backend (and on PyTorch when installed), the twins computing the same loss from the same
weights, and the runner printing its table."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dynet_api as dy
from benchmarks import data as D
from benchmarks import run, tasks_dynet
from dynet_api import config
from dynet_api.plugins import registry

try:
    import torch

    from benchmarks import tasks_torch

    torch.set_flush_denormal(False)  # importing the twins turns flush-to-zero on for the whole process
except ImportError:  # PyTorch is the optional 'bench' extra
    torch = None
    tasks_torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (pip install '.[bench]')")


@pytest.fixture(autouse=True, scope="module")
def _restore_denormals():
    """The PyTorch twins switch flush-to-zero on for the whole process; other tests expect it off."""
    yield
    if torch is not None:
        torch.set_flush_denormal(False)


def _use(name: str):
    """Run on backend ``name`` with one BLAS thread, then give the previous backend back."""
    try:
        registry.get(name)
    except (ValueError, RuntimeError) as e:
        pytest.skip(f"backend {name} unavailable: {e}")
    prev = config.backend()
    dy.set_backend(name)
    dy.reset_random_seed(7)
    with run.one_blas_thread():
        yield
    dy.set_backend(prev.name)


@pytest.fixture
def reference():
    yield from _use("reference_numpy")


@pytest.fixture(params=["reference_numpy", "cpu_eigen"])
def cpu_backend(request):
    """The reference, and the C++ backend where it is built: the benchmarks run on both."""
    yield from _use(request.param)


# ------------------------------------------------------------------ data


def test_sentences_are_seeded_zipfian_and_about_24_words():
    a = D.sentences(5, 2000, 1000)
    assert a == D.sentences(5, 2000, 1000)
    assert a != D.sentences(6, 2000, 1000)
    lens = np.array([len(s) for s in a])
    assert 22 < lens.mean() < 26 and lens.min() >= 2 and lens.max() <= 80
    words = np.concatenate([np.asarray(s) for s in a])
    assert words.min() >= 1 and words.max() < 1000  # id 0 is reserved
    # Zipf(1) over ids 1..999: p(rank r) = 1 / (r * H_999)
    h = sum(1.0 / r for r in range(1, 1000))
    freq = np.bincount(words, minlength=1000) / len(words)
    assert freq[1] == pytest.approx(1 / h, rel=0.05)
    assert freq[2] == pytest.approx(1 / (2 * h), rel=0.08)


def test_lm_batches_are_sorted_padded_by_length_and_end_with_s():
    lm = D.lm_data(seed=3, vocab=500, batch_size=4, n_batches=5)
    assert len(lm.batches) == 5
    for b in lm.batches:
        assert len(b) == 4
        assert [len(s) for s in b] == sorted((len(s) for s in b), reverse=True)
        assert all(s[-1] == 0 and 0 not in s[:-1] for s in b)
    assert lm.words(7) == sum(len(s) for s in lm.batches[2])


def test_tag_data_rare_words_are_those_seen_at_most_five_times():
    td = D.tag_data(seed=4, vocab=3000, n_sents=300, keep=20)
    counts = np.bincount(np.concatenate([np.asarray(s) for s in D.sentences(4, 300, 3000)]), minlength=3000)
    assert td.rare == frozenset(i for i in range(3000) if counts[i] <= 5)
    assert len(td.sents) == 20
    for words, tags in td.sents:
        assert len(words) == len(tags) and all(0 <= t < td.n_tags for t in tags)
    assert all(len(sp) >= 1 and all(1 <= c < td.n_chars for c in sp) for sp in td.spelling)


def test_trees_cover_their_sentence_with_a_label_at_every_node():
    td = D.tree_data(seed=5, vocab=400, n_trees=10)
    sents = D.sentences(5, 10, 400)

    def leaves(t):
        return [t[1]] if D.is_leaf(t) else leaves(t[1]) + leaves(t[2])

    def labels(t):
        return [t[0]] if D.is_leaf(t) else [t[0]] + labels(t[1]) + labels(t[2])

    for tree, s in zip(td.trees, sents, strict=True):
        assert leaves(tree) == s
        assert D.tree_size(tree) == 2 * len(s) - 1 == len(labels(tree))
        assert all(0 <= lab < D.N_LABELS for lab in labels(tree))


# ------------------------------------------------------------------ one update per task


def _expected_units(name: str, task, k: int) -> int:
    if name == "rnnlm-batch":
        return sum(len(s) for s in task.data.batches[k % len(task.data.batches)])
    if name == "treelstm":
        return 1
    return len(task.data.sents[k % len(task.data.sents)][0])


def _check_one_update(name: str, task) -> None:
    before = task.loss(0)
    loss, units = task.step(0)
    assert loss == pytest.approx(before, rel=1e-5)  # step evaluates the same loss, then updates
    assert math.isfinite(loss) and loss > 0
    assert units == _expected_units(name, task, 0)
    assert task.loss(0) < loss  # one SGD step on an item lowers its loss


def _full_size(module, name: str):
    """The benchmark as run, except the LM's vocabulary (10k softmax rows take seconds on NumPy)."""
    if name == "rnnlm-batch":
        return module.RNNLMBatch(D.lm_data(vocab=2000, n_batches=2))
    return module.make(name)


@pytest.mark.parametrize("name", tasks_dynet.TASKS)
def test_dynet_task_one_update(cpu_backend, name):
    _check_one_update(name, _full_size(tasks_dynet, name))


@needs_torch
@pytest.mark.parametrize("name", tasks_dynet.TASKS)
def test_torch_task_one_update(name):
    torch.manual_seed(0)
    _check_one_update(name, _full_size(tasks_torch, name))


# ------------------------------------------------------------------ the twins compute the same thing


def _small_pair(name: str, trainer: str = "sgd"):
    tr = {"trainer": trainer}
    if name == "rnnlm-batch":
        lm = D.lm_data(seed=11, vocab=300, batch_size=4, n_batches=3)
        return tasks_dynet.RNNLMBatch(lm, 16, 12, **tr), tasks_torch.RNNLMBatch(lm, 16, 12, **tr)
    if name.startswith("bilstm-tagger"):
        td = D.tag_data(seed=12, vocab=1500, n_sents=200, keep=8)
        wc = name.endswith("withchar")
        return (tasks_dynet.BiLSTMTagger(td, wc, wdim=16, hidden=6, mlp=5, cdim=4, chidden=8, **tr),
                tasks_torch.BiLSTMTagger(td, wc, wdim=16, hidden=6, mlp=5, cdim=4, chidden=8, **tr))
    trees = D.tree_data(seed=13, vocab=200, n_trees=3)
    return tasks_dynet.TreeLSTM(trees, 8, 10, **tr), tasks_torch.TreeLSTM(trees, 8, 10, **tr)


@needs_torch
@pytest.mark.parametrize("trainer, n_updates", [("sgd", 1), ("adam", 3)])
@pytest.mark.parametrize("name", tasks_dynet.TASKS)
def test_twins_agree_before_and_after_updates(cpu_backend, name, trainer, n_updates):
    """Same weights give the same loss; one SGD update, or three of DyNet's Adam against
    torch's Adam + SparseAdam (sparse rows included), keep them equal."""
    d, t = _small_pair(name, trainer)
    t.load_dynet(d.weights())
    for m in t.net.modules():  # nn.LSTM's second bias vector would take a second step; DyNet has one
        if isinstance(m, torch.nn.LSTM):
            for pname, p in m.named_parameters():
                if pname.startswith("bias_hh"):
                    p.requires_grad_(False)
    k = 1
    if name == "bilstm-tagger-withchar":  # an item that spells out some rare words
        k = next(i for i, (ws, _) in enumerate(d.data.sents) if any(w in d.data.rare for w in ws))
    before = d.loss(k), t.loss(k)
    assert before[0] == pytest.approx(before[1], rel=1e-4)
    for j in range(k, k + n_updates):
        d.step(j)
        t.step(j)
    assert not d.E.grad_as_array().any()  # the touched rows were cleared after the update
    # the updates moved both sides' loss by the same amount (a sharper check than the losses themselves)
    assert d.loss(k) - before[0] == pytest.approx(t.loss(k) - before[1], rel=0.02)
    for j in (k, k + n_updates):
        assert d.loss(j) == pytest.approx(t.loss(j), rel=1e-4)


# ------------------------------------------------------------------ the runner


def test_runner_prints_the_table(reference, capsys):
    assert run.main(["--dynet-backend", "reference_numpy", "--tasks", "bilstm-tagger", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "task" in out and "ratio" in out
    row = next(line for line in out.splitlines() if line.startswith("bilstm-tagger "))
    assert "reference_numpy" in row and "words/sec" in row
    if torch is not None:
        assert row.split()[-2].endswith("x")  # ratio to PyTorch; the last column is DyNet's


def test_runner_without_torch_says_so(reference, capsys, monkeypatch):
    monkeypatch.setattr(run, "have_torch", lambda: False)
    run.main(["--dynet-backend", "reference_numpy", "--tasks", "treelstm", "--seconds", "0.05"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("treelstm "))
    assert run.NO_TORCH in row


def test_runner_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match="no_such_backend"):
        run.backends_from("no_such_backend")


def test_runner_runs_the_chain_micro_benchmark(reference, monkeypatch, capsys):
    from benchmarks import chain

    calls = []
    monkeypatch.setattr(chain, "main", lambda **kw: calls.append(kw))
    run.main(["--dynet-backend", "reference_numpy", "--tasks", "chain", "--seconds", "0.5", "--no-torch"])
    assert calls == [{"backends": ["reference_numpy"], "seconds": 0.5, "torch": False}]


# ------------------------------------------------------------------ DyNet 2.1.2 as a peer, trainers, micro benchmarks


@pytest.fixture(autouse=True)
def no_dynet_venv(tmp_path, monkeypatch):
    """Point the DyNet peer at an empty folder (tests never use a real DyNet venv, even where one is
    built): its column must say how to build it."""
    monkeypatch.setenv("DYNET_VENV", str(tmp_path / "no-venv"))
    from benchmarks import dynet_peer

    assert dynet_peer.venv_python() is None
    return dynet_peer


def test_runner_runs_each_trainer_and_names_the_missing_dynet_venv(reference, no_dynet_venv, capsys):
    run.main(["--dynet-backend", "reference_numpy", "--tasks", "treelstm", "--seconds", "0.02",
              "--trainer", "sgd,adam"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("treelstm ")]
    assert [r[2] for r in rows] == ["sgd", "adam"]
    assert all("make_dynet_venv.sh)" in " ".join(r) for r in rows)
    assert "trainer" in out and "DyNet" in out


def test_runner_rejects_an_unknown_trainer(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--trainer", "sgd,rmsprop"])
    assert "rmsprop" in capsys.readouterr().err


def test_dynet_peer_check_says_how_to_build_it(no_dynet_venv, capsys):
    assert no_dynet_venv.main(["--check"]) == 1
    assert "bash benchmarks/make_dynet_venv.sh" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="make_dynet_venv"):
        no_dynet_venv.Peer()


def test_chain_reports_the_missing_dynet_column(reference, no_dynet_venv, capsys):
    from benchmarks import chain

    best = chain.main(["--steps", "4", "--seconds", "0.01", "--backends", "reference_numpy", "--no-torch",
                       "--no-profile"])
    assert "dynet_2.1.2" not in best
    assert "make_dynet_venv.sh" in capsys.readouterr().out


def test_update_benchmark_rows_for_every_case(reference, no_dynet_venv, capsys):
    from benchmarks import updates

    cols = updates.main(["--backends", "reference_numpy", "--sizes", "4x3,2x2", "--seconds", "0.001",
                         "--trainers", "SimpleSGDTrainer,AdamTrainer", "--lookup-rows", "12000,10001",
                         "--rounds", "2"])
    got = cols["dynet_api reference_numpy"]
    assert set(got) == {f"update {t} {s}" for t in ("SimpleSGDTrainer", "AdamTrainer") for s in ("4x3", "2x2")} | {
        f"{c} {t} {r} rows" for c in ("lookup", "lookup+wd") for t in ("SimpleSGDTrainer", "AdamTrainer")
        for r in (12000, 10001)} | {
        "small step SimpleSGDTrainer", "small step AdamTrainer"}
    assert all(v > 0 for v in got.values())
    out = capsys.readouterr().out
    assert "make_dynet_venv.sh" in out and "lookup AdamTrainer 12000 / 10001 rows" in out
    assert "lookup+wd AdamTrainer 12000 / 10001 rows" in out


def test_update_benchmark_rejects_bad_sizes():
    from benchmarks import updates

    with pytest.raises(SystemExit):
        updates.main(["--sizes", "64by64"])
    with pytest.raises(SystemExit):
        updates.main(["--rounds", "0"])


def test_update_benchmark_keeps_each_cases_best_turn():
    from benchmarks import updates

    best: dict = {}
    for turn in ({"a": 3.0, "b": 1.0}, {"a": 2.0, "b": 4.0, "c": 5.0}):
        updates._keep_best(best, turn)
    assert best == {"a": 2.0, "b": 1.0, "c": 5.0}


_FAKE_DYNET = '''"""Stands in for DyNet 2.1.2 in the worker: dynet_api on the reference backend, seeded as run seeds."""
import dynet_api as _d

_d.set_backend("reference_numpy")
_d.reset_random_seed(1234)


def __getattr__(name):
    return getattr(_d, name)
'''


def test_peer_worker_trains_on_the_same_items_interleaved(reference, tmp_path, monkeypatch):
    """The worker protocol end to end, with dynet_api posing as ``dynet`` in the worker: same seed, same
    pickled items, so its losses equal the in-process side's; its speed fills the DyNet column."""
    import sys
    from pathlib import Path

    from benchmarks import dynet_peer

    (tmp_path / "dynet.py").write_text(_FAKE_DYNET)
    (tmp_path / "dynet_config.py").write_text("def set(**kw):\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with dynet_peer.Peer(python=Path(sys.executable)) as peer:
        r = run.run_task("treelstm", "reference_numpy", 0.02, False, trainer="adam", peer=peer)
        with pytest.raises(RuntimeError, match="unknown trainer"):
            peer.call("task", name="treelstm", trainer="adagrad", data=peer.data_file(D.tree_data()))
    assert r.trainer == "adam" and r.peer > 0 and r.torch is None
    assert r.peer_loss == pytest.approx(r.dynet_loss, rel=1e-5)
    assert "x" in run.format_table([r]).splitlines()[-1].split()[-1]
