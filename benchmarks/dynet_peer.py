"""DyNet 2.1.2 itself as a benchmark peer, run in its own venv as a subprocess.

    python -m benchmarks.dynet_peer --make-venv [DIR]     # build it (bash benchmarks/make_dynet_venv.sh)
    python -m benchmarks.dynet_peer --check               # is it there?

DyNet needs NumPy < 2 and an old Cython, so it lives in a separate venv
(default ``.venv-dynet`` in the repository root, or ``$DYNET_VENV``).  The
benchmarks talk to a worker (``--worker``) started with that venv's Python:
one JSON command per line on its stdin, one JSON answer per line on its
stdout.  The worker imports the *same* task code (``benchmarks/tasks_dynet.py``)
with ``BENCH_DYNET_MODULE=dynet``, so it runs on DyNet instead of dynet_api;
the data items are pickled once by the caller and read by the worker, so both
sides train on identical items whatever NumPy version draws them.  One thread:
the BLAS variables are 1 and DyNet runs on the CPU.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAKE_SCRIPT = "bash benchmarks/make_dynet_venv.sh"
MISSING = f"no DyNet venv ({MAKE_SCRIPT})"
SEED = 1234


def venv_dir() -> Path:
    return Path(os.environ.get("DYNET_VENV", ROOT / ".venv-dynet"))


def venv_python() -> Path | None:
    """The DyNet venv's Python, or None when the venv (with ``dynet`` in it) is absent."""
    py = venv_dir() / "bin" / "python"
    if not py.exists() or not list((venv_dir() / "lib").glob("python*/site-packages/dynet.py")):
        return None
    return py


def build_flags() -> str:
    """DyNet's compile flags as recorded by the venv script (CMake cache lines), one line."""
    f = venv_dir() / "dynet-build-flags.txt"
    if not f.exists():
        return "DyNet 2.1.2 (its default Release flags)"
    vals = dict(line.split("=", 1) for line in f.read_text().splitlines() if "=" in line)
    flags = vals.get("CXX_FLAGS", "")
    return f"DyNet 2.1.2 built with: {' '.join(flags.split())}"


class Peer:
    """A running worker; call(fn, **args) runs ``benchmarks.dynet_peer.<fn>`` in DyNet's venv."""

    def __init__(self, python: Path | None = None, autobatch: int | None = None) -> None:
        """``autobatch``: DyNet's ``--dynet-autobatch`` for this worker (DyNet reads it once, at
        initialisation, so each setting needs its own worker); None: DyNet's default (off)."""
        py = python or venv_python()
        self.autobatch = autobatch
        extra = [] if autobatch is None else ["--autobatch", str(int(autobatch))]
        if py is None:
            raise RuntimeError(MISSING)
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, BENCH_DYNET_MODULE="dynet", PYTHONPATH=path)
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = "1"
        self.proc = subprocess.Popen([str(py), "-m", "benchmarks.dynet_peer", "--worker", *extra], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="dynet-peer-")

    def call(self, fn: str, **args):
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"fn": fn, "args": args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"DyNet worker exited (status {self.proc.wait()}) during {fn}")
        ans = json.loads(line)
        if "error" in ans:
            raise RuntimeError(f"DyNet worker, {fn}: {ans['error']}")
        return ans["result"]

    def data_file(self, data) -> str:
        """Pickle a data set for the worker (so both sides see the very same items)."""
        path = os.path.join(self._tmp.name, f"data{id(data)}.pkl")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                pickle.dump(data, f)
        return path

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self._tmp.cleanup()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------ what the worker runs (in DyNet's venv)

_state: dict = {}


def task(name: str, trainer: str, data: str, minibatch: int = 0) -> str:
    """Build a task on DyNet from the pickled data and take its untimed warm-up update;
    ``minibatch`` N > 0: its variant with N instances per graph."""
    from . import tasks_dynet

    with open(data, "rb") as f:
        items = pickle.load(f)
    t = tasks_dynet.make(name, trainer, items)
    if minibatch:
        t = tasks_dynet.Minibatched(t, minibatch)
    _state["task"] = t
    _state["warmup_loss"] = t.step(0)[0]
    return t.unit


def warmup_loss() -> float:
    """The loss of the current task's warm-up update (its first item(s), from the initial weights)."""
    return _state["warmup_loss"]


def calibrate(budget: float) -> float:
    from .run import _calibrate

    return _calibrate(_state["task"], budget)


def timed(start: int, n: int, clock: str, cycle: int = 0) -> list:
    from .run import CLOCKS, _timed

    return list(_timed(_state["task"], start, n, CLOCKS[clock], cycle))


def phases(start: int, n: int) -> dict:
    """The current task's median seconds per phase over n updates from item ``start`` (run.phase_medians)."""
    from .run import phase_medians

    return phase_medians(_state["task"], start, n)


def version() -> str:
    import dynet

    return getattr(dynet, "__version__", "2.1.2")


def _worker(autobatch: int | None = None) -> int:
    # Answers go to the original stdout; anything else printed there (DyNet's C++ included) to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import dynet_config

    if autobatch is None:
        dynet_config.set(mem=1024, random_seed=SEED)
    else:
        dynet_config.set(mem=1024, random_seed=SEED, autobatch=autobatch)
    import dynet  # noqa: F401  (initialises DyNet once, with the settings above)

    from . import chain, updates

    fns = {"task": task, "calibrate": calibrate, "timed": timed, "phases": phases, "warmup_loss": warmup_loss,
           "version": version, "chain": chain.dynet_side, "updates": updates.dynet_side}
    for line in sys.stdin:
        req = json.loads(line)
        try:
            ans = {"result": fns[req["fn"]](**req["args"])}
        except Exception as e:  # reported to the caller, which raises it there
            ans = {"error": f"{type(e).__name__}: {e}"}
        answers.write(json.dumps(ans) + "\n")
        answers.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.dynet_peer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--make-venv", nargs="?", const=str(venv_dir()), metavar="DIR",
                    help=f"build DyNet 2.1.2 into a venv (default {venv_dir()})")
    ap.add_argument("--check", action="store_true", help="say whether the DyNet venv is there")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--autobatch", type=int, default=None, help=argparse.SUPPRESS)  # the worker's DyNet setting
    a = ap.parse_args(argv)
    if a.worker:
        return _worker(a.autobatch)
    if a.make_venv:
        return subprocess.call(["bash", str(ROOT / "benchmarks" / "make_dynet_venv.sh"), a.make_venv])
    py = venv_python()
    print(MISSING if py is None else f"DyNet venv: {py}; {build_flags()}")
    return 0 if py is not None else 1


if __name__ == "__main__":
    sys.exit(main())
