"""A newcomer's first hour: mistyped flags are caught, a GPU request is honoured or refused with the reason,
the command line names itself and its version, an unknown backend is one line, the examples run anywhere.

Flags are read when ``dynet_api`` is imported, so command-line behaviour runs in fresh interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from dynet_api import config
from dynet_api.hookspecs import BackendSpec
from dynet_api.plugins import BackendChoiceError, Registry, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
VALUE = "import dynet_api as dy; dy.renew_cg(); print(dy.inputVector([1]).value(), dy.backend_name())"


def run(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "DYNET_BACKEND"}
    e.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=e, timeout=120, cwd=ROOT, **kw)


def gpu_backend_available() -> bool:
    return any(registry.runs_on_gpu(n) and registry.load(n).backend is not None for n in registry.names())


needs_no_gpu = pytest.mark.skipif(gpu_backend_available(), reason="a GPU backend runs here: the request succeeds")

# ---------------------------------------------------------------- mistyped flags


@pytest.mark.parametrize("script", ["digits_mlp.py", "xor.py", "cnn.py", "rnnlm.py", "bilstm_tagger.py",
                                    "treelstm.py", "attention.py"])
def test_examples_reject_unknown_flags(script):
    r = run([os.path.join(EXAMPLES, script), "--epcohs", "2", "--dynet-seed", "3"])
    assert r.returncode == 2, r.stdout[-2000:]
    assert "unrecognized arguments: --epcohs 2" in r.stderr


@pytest.mark.parametrize("script", ["digits_mlp.py", "xor.py"])
def test_quick_is_accepted_by_the_small_examples(script):
    r = run([os.path.join(EXAMPLES, script), "--quick", "--dynet-backend", "reference_numpy", "--dynet-seed", "3"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "backend reference_numpy" in r.stdout
    assert r.stderr == ""  # progress bars stay quiet when the output is not a terminal


def test_example_flag_stripping_keeps_the_examples_own_flags():
    sys.path.insert(0, EXAMPLES)
    try:
        from _support import without_dynet_flags
    finally:
        sys.path.remove(EXAMPLES)
    argv = ["--epochs", "3", "--dynet-seed", "9", "--dynet-gpu", "--quick", "--dynet_mem=512", "--dynet-viz",
            "--dynet-backend", "cpu_eigen", "--chars"]
    assert without_dynet_flags(argv) == ["--epochs", "3", "--quick", "--chars"]


@pytest.mark.parametrize("flag, closest", [("--dynet-backnd", "--dynet-backend"), ("--dynet-sed", "--dynet-seed"),
                                           ("--dynet_autobach", "--dynet-autobatch"),
                                           ("--dynet-gpuids", "--dynet-gpu-ids")])
def test_misspelled_dynet_flag_names_the_closest(flag, closest):
    (text,) = config.misspelled_flags(["prog", flag, "1"])
    assert flag in text and f"did you mean {closest}?" in text


def test_misspelled_flag_warns_in_a_program():
    r = run(["-c", VALUE, "--dynet-backnd", "reference_numpy"])
    assert r.returncode == 0, r.stderr
    assert "unknown flag --dynet-backnd is ignored; did you mean --dynet-backend?" in r.stderr


# Every flag DyNet's init code (dynet/init.cc, python/_dynet.pyx, dynet.py.in) and its docs accept,
# and this package's own --dynet-backend / --dynet-threads.
DYNET_FLAGS = [["--dynet-mem", "512"], ["--dynet-weight-decay", "1e-6"], ["--dynet-seed", "3"],
               ["--dynet-autobatch", "1"], ["--dynet-profiling", "0"], ["--dynet-gpus", "0"],
               ["--dynet-devices", "CPU"], ["--dynet-viz"], ["--dynet-gpu-ids", "0"],
               ["--dynet-shared-parameters", "1"], ["--dynet-threads", "1"], ["--dynet-backend", "reference_numpy"],
               ["--dynet_mem=512"], ["--dynet-gpu"]]


@pytest.mark.parametrize("argv", DYNET_FLAGS, ids=lambda a: a[0])
def test_dynet_flags_are_accepted_silently(argv):
    assert config.misspelled_flags(argv) == []


# ---------------------------------------------------------------- GPU requests


@needs_no_gpu
@pytest.mark.parametrize("flags", [["--dynet-gpus", "1"], ["--dynet-devices", "GPU:0"], ["--dynet-gpu"],
                                   ["--dynet-gpu-ids", "0"]])
def test_gpu_flag_without_a_gpu_fails_with_the_reason(flags):
    r = run(["-c", VALUE, *flags])
    assert r.returncode != 0, r.stdout
    assert "asks for a GPU" in r.stderr and "no GPU backend can run here" in r.stderr
    assert "cuda:" in r.stderr  # the GPU backend's own reason (CuPy missing, no device...)
    assert "Traceback" not in r.stderr  # one line from the command line


@needs_no_gpu
def test_set_gpu_without_a_gpu_raises_inside_the_program():
    code = ("from dynet_api import dynet_config; dynet_config.set_gpu()\nimport dynet_api as dy\n"
            "try:\n    dy.renew_cg(); dy.inputVector([1]).value()\n"
            "except RuntimeError as e:\n    print('RuntimeError:', e)\n")
    r = run(["-c", code])
    assert r.returncode == 0, r.stderr
    assert "RuntimeError: dynet_config.set_gpu() asks for a GPU" in r.stdout


def test_gpu_request_with_an_explicit_cpu_backend_names_both():
    r = run(["-c", VALUE, "--dynet-gpus", "1", "--dynet-backend", "reference_numpy"])
    assert r.returncode != 0
    line = r.stderr.strip().splitlines()[-1]
    assert "--dynet-gpus 1" in line and "--dynet-backend reference_numpy" in line and "CPU only" in line


class _FakeGpu:
    """A plugin whose one backend declares a GPU device (it computes with the reference's kernels)."""

    @staticmethod
    def dynet_api_backends():
        from dynet_backends.reference_numpy import ReferenceNumpyBackend

        class FakeGpuBackend(ReferenceNumpyBackend):
            name = "fake_gpu"
            devices = ("GPU:0",)

        return [BackendSpec("fake_gpu", FakeGpuBackend, priority=-5, devices=("GPU",))]


class _Cpu:
    @staticmethod
    def dynet_api_backends():
        from dynet_backends.reference_numpy import ReferenceNumpyBackend

        return [BackendSpec("reference_numpy", ReferenceNumpyBackend, priority=0)]


@pytest.fixture
def fake_registry(monkeypatch):
    """A registry with a CPU backend (the higher priority) and a fake GPU one, and default settings."""
    reg = Registry()
    reg._discovered = True
    reg.register_plugin(_Cpu, "cpu")
    reg.register_plugin(_FakeGpu, "fake")
    monkeypatch.setattr(config, "registry", reg)
    monkeypatch.setattr(config, "settings", dict(config.settings, backend=None, requested_gpus=0, devices=None,
                                                 gpu_ids=None))
    return reg


def test_without_a_gpu_request_the_highest_priority_backend_is_chosen(fake_registry):
    assert config.choose().name == "reference_numpy"


@pytest.mark.parametrize("setting", [{"requested_gpus": 1}, {"devices": "GPU:0"}, {"devices": "CPU,GPU:1"},
                                     {"gpu_ids": "0"}])
def test_gpu_request_picks_the_backend_declaring_a_gpu(fake_registry, setting):
    config.settings.update(setting)
    b = config.choose()
    assert b.name == "fake_gpu" and b.devices == ("GPU:0",)


def test_gpu_request_and_a_named_gpu_backend_agree(fake_registry):
    config.settings.update(requested_gpus=1, backend="fake_gpu")
    assert config.choose().name == "fake_gpu"


def test_gpu_request_with_no_gpu_backend_installed_says_how_to_get_one(monkeypatch):
    reg = Registry()
    reg._discovered = True
    reg.register_plugin(_Cpu, "cpu")
    with pytest.raises(BackendChoiceError, match=r"no installed backend runs on one .*pip install"):
        reg.best_gpu("--dynet-gpus 1")


def test_gpu_backend_that_cannot_start_gives_its_reason():
    from dynet_api.backend import BackendUnavailable

    def broken():
        raise BackendUnavailable("CuPy is not installed: pip install cupy-cuda12x")

    plugin = SimpleNamespace(dynet_api_backends=lambda: [BackendSpec("gpu_b", broken, devices=("GPU",))])
    reg = Registry()
    reg._discovered = True
    reg.register_plugin(plugin, "gpu_b")
    with pytest.raises(RuntimeError, match=r"gpu_b: BackendUnavailable: CuPy is not installed: pip install"):
        reg.best_gpu("--dynet-gpus 1")


# ---------------------------------------------------------------- unknown backend: one line


def test_unknown_backend_from_the_command_line_is_one_line():
    r = run(["-c", VALUE, "--dynet-backend", "nope"])
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "error: unknown backend 'nope'; installed backends:" in line and "reference_numpy" in line


def test_unknown_backend_stays_a_value_error_inside_a_program():
    code = ("import dynet_api as dy\ntry:\n    dy.renew_cg(); dy.inputVector([1]).value()\n"
            "except ValueError as e:\n    print('caught', type(e).__name__)\n")
    r = run(["-c", code, "--dynet-backend", "nope"])
    assert r.returncode == 0, r.stderr
    assert "caught BackendRequestError" in r.stdout


def test_other_errors_keep_their_traceback():
    code = ("import dynet_api as dy\ntry:\n    dy.renew_cg(); dy.inputVector([1]).value()\nexcept ValueError:\n"
            "    pass\nraise KeyError('other')\n")
    r = run(["-c", code, "--dynet-backend", "nope"])
    assert "Traceback" in r.stderr and "KeyError: 'other'" in r.stderr


# ---------------------------------------------------------------- python -m dynet_api


def test_version():
    from dynet_api import __version__

    r = run(["-m", "dynet_api", "--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"python -m dynet_api {__version__}"


def test_help_uses_the_invoked_name():
    from dynet_api.__main__ import build_parser, program_name

    assert program_name("/usr/local/bin/dynet-api") == "dynet-api"
    assert program_name("/x/dynet_api/__main__.py") == "python -m dynet_api"
    assert build_parser("dynet-api").format_help().startswith("usage: dynet-api ")


# ---------------------------------------------------------------- example data


def test_stdlib_source_reads_modules_and_packages():
    sys.path.insert(0, EXAMPLES)
    try:
        from _support import stdlib_source
    finally:
        sys.path.remove(EXAMPLES)
    assert "def dedent" in stdlib_source("textwrap")
    assert "class PurePath" in stdlib_source("pathlib")  # a module before 3.13, a package since
    assert "def walk" in stdlib_source("os")
    with pytest.raises(FileNotFoundError, match="no_such_module_x"):
        stdlib_source("no_such_module_x")


# ---------------------------------------------------------------- messages fit the call


def test_class_loss_batch_mismatch_message_fits_the_call():
    import numpy as np

    import dynet_api as dy

    x = dy.inputTensor(np.zeros((3, 4), dtype=np.float32), batched=True)
    with pytest.raises(ValueError) as e:
        dy.pickneglogsoftmax_batch(x, [0, 1])
    assert "2 indices for batch size 4: give one per batch element" in str(e.value)
    assert "_batch" not in str(e.value)  # the call already is the _batch form
    with pytest.raises(ValueError, match=r"1 index for batch size 4: .*\(pickneglogsoftmax_batch takes a list\)"):
        dy.pickneglogsoftmax(x, 1)
    with pytest.raises(ValueError, match=r"hinge: 3 indices for batch size 4"):
        dy.hinge_batch(x, [0, 1, 2])
