"""The GPU-side benchmark options, checked on the CPU: ``--torch-device`` and ``benchmarks.launches``."""

from __future__ import annotations

import pytest

import dynet_api as dy
from benchmarks import launches, minibatch, run
from dynet_api import config

try:
    import torch

    from benchmarks import tasks_torch

    torch.set_flush_denormal(False)  # importing the twins turns flush-to-zero on for the whole process
except ImportError:  # PyTorch is the optional 'bench' extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (pip install '.[bench]')")
pytestmark = pytest.mark.usefixtures("restore_autobatch")


@pytest.fixture(autouse=True)
def no_dynet_venv(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNET_VENV", str(tmp_path / "no-venv"))


@pytest.fixture(autouse=True)
def _cpu_torch_and_backend():
    prev = config.backend()
    yield
    if torch is not None:
        tasks_torch.set_device("cpu")
        torch.set_flush_denormal(False)
    dy.set_backend(prev.name)


@needs_torch
def test_on_device_moves_tensors_and_packed_sequences_and_keeps_the_rest():
    from torch.nn.utils.rnn import pack_padded_sequence

    tasks_torch.set_device("cpu")
    packed = pack_padded_sequence(torch.zeros(3, 2, dtype=torch.long), torch.tensor([3, 1]))
    got = tasks_torch.on_device((torch.ones(2), [packed, None], (1, (2, 3)), "x"))
    assert isinstance(got, tuple) and isinstance(got[1], list)
    assert torch.equal(got[0], torch.ones(2)) and got[1][1] is None and got[2] == (1, (2, 3)) and got[3] == "x"
    assert type(got[1][0]) is type(packed) and got[1][0].batch_sizes.tolist() == [2, 1, 1]


@needs_torch
def test_torch_device_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--torch-device cuda: this PyTorch .* sees no CUDA device"):
        tasks_torch.set_device("cuda")
    assert tasks_torch.DEVICE == torch.device("cpu")
    with pytest.raises(SystemExit, match="--torch-device bogus: not a device PyTorch knows"):
        tasks_torch.set_device("bogus")


@needs_torch
def test_twins_are_built_on_the_chosen_device():
    """The twins' parameters and cached inputs go where set_device says (the CPU here; the GPU run
    uses the same path with 'cuda')."""
    assert run.use_torch_device("cpu", True).startswith(f"PyTorch {torch.__version__} on cpu")
    t = tasks_torch.make("treelstm", "adam")
    loss, units = t.step(0)
    assert units == 1 and loss > 0
    assert all(p.device == tasks_torch.DEVICE for p in t.net.parameters())
    words, _, labels = t._prepared(0)
    assert words.device == labels.device == tasks_torch.DEVICE


def test_runners_take_the_torch_device_option():
    assert run.parse_args(["--torch-device", "cuda"]).torch_device == "cuda"
    assert minibatch.parse_args(["--torch-device", "cuda"]).torch_device == "cuda"
    assert launches.parse_args([]).torch_device == "cpu"
    assert run.use_torch_device("cuda", False) == ""  # no PyTorch side: nothing to place


def test_launches_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        launches.parse_args(["--updates", "0"])
    with pytest.raises(SystemExit, match="--minibatch"):
        launches.parse_args(["--minibatch", "x"])
    assert launches.parse_args(["--minibatch", "0"]).sizes == []


def test_gpu_trace_is_none_without_a_cuda_pytorch():
    if torch is not None and torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the trace is real here")
    assert launches.gpu_trace(lambda: None) is None


def test_host_share_is_the_time_the_gpu_waits():
    r = launches.Row("treelstm", 1, "dynet_api cuda", 1, ms=4.0, gpu_ms=1.0)
    assert r.host_share == pytest.approx(0.75)
    assert launches.Row("treelstm", 1, "x", None, ms=1.0).host_share is None
    table = launches.format_table([r, launches.Row("treelstm", 1, "PyTorch cpu", None, ms=2.0)])
    lines = table.splitlines()
    assert "CUDA kernels" in lines[0] and "75%" in lines[2] and "n/a" in lines[3]


def test_launches_counts_kernel_calls_and_phases_per_side(capsys):
    rows = launches.main(["--dynet-backend", "reference_numpy", "--tasks", "treelstm", "--minibatch", "2",
                          "--updates", "1", "--no-torch"])
    assert [(r.size, r.autobatch) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(r.ms > 0 and r.calls and set(r.phases) == set(run.PHASES) for r in rows)
    assert rows[3].calls < rows[2].calls  # batching two trees saves calls
    out = capsys.readouterr().out
    assert "PyTorch: not run" in out and sum(line.startswith("treelstm ") for line in out.splitlines()) == 4


def test_launches_prints_a_cprofile_per_dynet_api_side(capsys):
    launches.main(["--dynet-backend", "reference_numpy", "--tasks", "treelstm", "--minibatch", "0",
                   "--autobatch", "1", "--updates", "1", "--no-torch", "--cprofile", "5"])
    out = capsys.readouterr().out
    assert out.count("-- cProfile: treelstm N=1 dynet_api reference_numpy ab=1") == 1
    assert "tottime" in out
