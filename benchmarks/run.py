"""Run the DyNet paper's benchmark tasks on dynet_api and PyTorch and print a table.

    python -m benchmarks.run [--dynet-backend NAME[,NAME...]|all] [--seconds S] [--tasks T ...]
                             [--trainer sgd,adam] [--rounds R] [--clock wall|cpu] [--no-torch] [--no-dynet]
                             [--torch-device cpu|cuda]

For each task and backend: both sides build their model from the same seed
and data, take one untimed warm-up update, a short calibration run times the
slower side, and then both run the *same* N updates on the same data items,
N chosen so that the slower side takes about ``--seconds``, interleaved in R
blocks (dynet_api block, PyTorch block, ...) so that load changes hit both.  The table gives
task, backend, unit, the dynet_api speed, the PyTorch speed and their ratio
(dynet_api / PyTorch; above 1 means dynet_api is faster).  Everything runs on
one CPU thread: BLAS thread variables are set to 1 before NumPy loads and
PyTorch gets ``torch.set_num_threads(1)``; with ``--torch-device cuda`` the PyTorch side runs
on the GPU (the cuda backend's rows are then GPU against GPU).  The ``chain`` micro benchmark
(``benchmarks/chain.py``, the cpu_eigen issue's per-node timing) runs after
the tasks.  With ``--trainer sgd,adam`` every task also runs with DyNet's
Adam (its scripts' trainer) on every side.  DyNet 2.1.2 itself is a third
column when its venv exists (``bash benchmarks/make_dynet_venv.sh``, see
:mod:`benchmarks.dynet_peer`): it runs the same task code in a worker process,
its blocks interleaved with the other two sides'.  With ``--minibatch N[,N...]`` it runs
autobatching's benchmarks instead (:mod:`benchmarks.minibatch`, whose options it takes).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
           "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

TASKS = ("rnnlm-batch", "bilstm-tagger", "bilstm-tagger-withchar", "treelstm")
SEED = 1234
NO_TORCH = "torch not installed"


def one_blas_thread():
    """Limit already-loaded BLAS libraries to one thread (the environment variables above only
    reach a NumPy imported after this module); a no-op context without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass
class Result:
    task: str
    backend: str
    unit: str
    updates: int
    dynet: float  # units per second
    torch: float | None  # None: torch not installed
    dynet_loss: float
    torch_loss: float | None
    trainer: str = "sgd"
    peer: float | None = None  # DyNet 2.1.2's speed; None: its venv is absent (or --no-dynet)
    peer_loss: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.torch is None else self.dynet / self.torch

    @property
    def peer_ratio(self) -> float | None:
        return None if self.peer is None else self.dynet / self.peer


class _PeerTask:
    """DyNet's side of a task, in the worker process, with the task interface ``run_task`` needs."""

    def __init__(self, peer, name: str, trainer: str, data) -> None:
        self.peer = peer
        self.unit = peer.call("task", name=name, trainer=trainer, data=peer.data_file(data))

    def calibrate(self, budget: float) -> float:
        return self.peer.call("calibrate", budget=budget)

    def timed(self, start: int, n: int, clock: str) -> tuple[float, int, float]:
        return tuple(self.peer.call("timed", start=start, n=n, clock=clock))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(task, start: int, n: int, clock=time.perf_counter, cycle: int = 0) -> tuple[float, int, float]:
    """Run ``n`` updates on items start..start+n-1 (each taken modulo ``cycle`` when it is given, so
    that sides of different speeds time the same items); (seconds, units, summed loss)."""
    gc.collect()
    units = 0
    total = 0.0
    t0 = clock()
    for k in range(start, start + n):
        loss, u = task.step(k % cycle if cycle else k)
        units += u
        total += loss
    dt = clock() - t0
    if not math.isfinite(total):
        raise RuntimeError(f"{task.name}: the loss became {total} during the benchmark")
    return dt, units, total


def _calibrate(task, budget: float) -> float:
    """Seconds per update, from updates on items 1, 2, ... until ``budget`` seconds or 3 updates."""
    t0 = time.perf_counter()
    n = 0
    while n < 3 and (n == 0 or time.perf_counter() - t0 < budget):
        task.step(1 + n)
        n += 1
    return (time.perf_counter() - t0) / n


def set_dynet_backend(name: str) -> None:
    """Make ``name`` the backend of the models built next, with a fixed seed for their initial values."""
    import dynet_api as dy

    dy.set_backend(name)
    dy.reset_random_seed(SEED)


def run_task(name: str, backend: str, seconds: float, torch_ok: bool, min_updates: int = 2, rounds: int = 3,
             clock: str = "wall", trainer: str = "sgd", peer=None) -> Result:
    """All sides run the same N updates (items 0..N-1), interleaved in ``rounds`` blocks so that a
    change in machine load during the run affects them alike.  ``peer``: a running DyNet worker."""
    from . import tasks_dynet

    set_dynet_backend(backend)
    dtask = tasks_dynet.make(name, trainer)
    ttask = None
    if torch_ok:
        import torch

        from . import tasks_torch

        torch.manual_seed(SEED)
        ttask = tasks_torch.make(name, trainer)
    local = [t for t in (dtask, ttask) if t is not None]
    for t in local:
        t.step(0)  # warm-up: first-use allocations, caches
    ptask = None if peer is None else _PeerTask(peer, name, trainer, dtask.data)  # warms up in the worker
    per_update = max([_calibrate(t, 0.1 * seconds) for t in local]
                     + ([] if ptask is None else [ptask.calibrate(0.1 * seconds)]))
    n = max(min_updates, round(seconds / per_update))
    cuts = [n * r // rounds for r in range(rounds + 1)]
    runs = [lambda a, m, t=t: _timed(t, a, m, CLOCKS[clock]) for t in local]
    if ptask is not None:
        runs.append(lambda a, m: ptask.timed(a, m, clock))
    totals = [[0.0, 0, 0.0] for _ in runs]
    for a, b in zip(cuts, cuts[1:], strict=False):
        if b > a:
            for tot, timed in zip(totals, runs, strict=True):
                dt, units, loss = timed(a, b - a)
                tot[0] += dt
                tot[1] += units
                tot[2] += loss
    speed = [u / dt for dt, u, _ in totals]
    loss = [lo / n for _, _, lo in totals]
    r = Result(name, backend, dtask.unit, n, speed[0], None, loss[0], None, trainer)
    if ttask is not None:
        r.torch, r.torch_loss = speed[1], loss[1]
    if ptask is not None:
        r.peer, r.peer_loss = speed[-1], loss[-1]
    return r


PHASES = ("construct", "forward", "backward", "update")


def phase_profile(name: str, backend: str, seconds: float) -> tuple[int, dict[str, float]]:
    """Mean seconds per update in each phase of the dynet_api side (after one warm-up update)."""
    from . import tasks_dynet

    set_dynet_backend(backend)
    task = tasks_dynet.make(name)
    task.step(0)
    tot = dict.fromkeys(PHASES, 0.0)
    n = 0
    t0 = time.perf_counter()
    while n < 2 or (time.perf_counter() - t0 < seconds and n < 1000):
        for ph, dt in task.step_phases(n).items():
            tot[ph] += dt
        n += 1
    return n, {ph: v / n for ph, v in tot.items()}


def phase_medians(task, start: int, n: int) -> dict[str, float]:
    """Median seconds per phase (``PHASES``) over ``n`` updates on items start..start+n-1, timed by
    ``task.step_phases``; medians, not means, so that a slow spell of a shared machine does not
    decide where the time goes.  The same code times DyNet's side in its worker."""
    per: dict[str, list[float]] = {ph: [] for ph in PHASES}
    for k in range(start, start + n):
        for ph, dt in task.step_phases(k).items():
            per[ph].append(dt)
    return {ph: statistics.median(v) for ph, v in per.items()}


def format_phases(rows: list[tuple[str, str, int, dict[str, float]]]) -> str:
    head = ("task", "backend", "updates") + tuple(f"{p} ms" for p in PHASES) + ("total ms",)
    out = [head]
    for task, be, n, ph in rows:
        total = sum(ph.values())
        out.append((task, be, str(n)) + tuple(f"{1e3 * ph[p]:.2f} ({100 * ph[p] / total:.0f}%)" for p in PHASES)
                   + (f"{1e3 * total:.2f}",))
    widths = [max(len(r[i]) for r in out) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in out]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(results: list[Result], missing: str = NO_TORCH, peer_missing: str | None = None) -> str:
    from .dynet_peer import MISSING

    head = ("task", "backend", "trainer", "unit", "updates", "dynet_api", "PyTorch", "DyNet", "ratio PyTorch",
            "ratio DyNet")
    rows = [head]
    for r in results:
        torch_col = missing if r.torch is None else f"{r.torch:.1f}"
        peer_col = (peer_missing or MISSING) if r.peer is None else f"{r.peer:.1f}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        peer_ratio = "-" if r.peer_ratio is None else f"{r.peer_ratio:.2f}x"
        rows.append((r.task, r.backend, r.trainer, r.unit, str(r.updates), f"{r.dynet:.1f}", torch_col, peer_col,
                     ratio, peer_ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def backends_from(arg: str | None) -> list[str]:
    from dynet_api.plugins import registry

    if arg is None:
        import dynet_api as dy

        return [dy.backend_name()]
    if arg == "all":
        return [r["name"] for r in registry.report() if r["status"] == "available"]
    names = [a for a in arg.split(",") if a]
    for nm in names:
        registry.get(nm)  # a clear error for an unknown or unavailable backend
    return names


def run_chain(backends: list[str], seconds: float, torch_ok: bool = True, peer=None) -> None:
    """The per-node micro benchmark of the cpu_eigen issue (benchmarks/chain.py), when present."""
    if importlib.util.find_spec("benchmarks.chain") is None:
        print("\nchain: benchmarks/chain.py is not in this tree")
        return
    from . import chain

    print()
    if peer is None:
        chain.main(backends=backends, seconds=seconds, torch=torch_ok)
    else:
        chain.main(backends=backends, seconds=seconds, torch=torch_ok, peer=peer)


def add_torch_device(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--torch-device", default="cpu",
                    help="where the PyTorch side runs: cpu (default) or cuda, to set a GPU backend's row "
                         "against PyTorch on the same GPU")


def use_torch_device(name: str, torch_ok: bool) -> str:
    """Put the PyTorch twins on device ``name``; the table's description of the PyTorch side."""
    if not torch_ok:
        return ""
    import torch

    from . import tasks_torch

    tasks_torch.set_device(name)
    where = str(tasks_torch.DEVICE)
    if tasks_torch.DEVICE.type == "cuda":
        where += f" ({torch.cuda.get_device_name(tasks_torch.DEVICE)})"
    return f"PyTorch {torch.__version__} on {where}, {torch.get_num_threads()} CPU thread(s)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dynet-backend", "--dynet_backend", dest="backend", default=None,
                    help="backend name, a comma-separated list, or 'all' (default: dynet_api's default backend)")
    ap.add_argument("--seconds", type=float, default=3.0, help="target seconds per task for the slower side")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS) + ["chain"], choices=list(TASKS) + ["chain"],
                    help="which benchmarks to run (default: all, chain included)")
    ap.add_argument("--trainer", default="sgd",
                    help="comma-separated trainers, each run on every side: sgd, adam (DyNet's scripts' "
                         "trainer, its defaults), e.g. sgd,adam (default sgd)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved blocks of updates per side (default 3)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time (default) or this process's CPU time (steadier on a shared machine)")
    ap.add_argument("--phases", action="store_true",
                    help="also time the dynet_api side's phases (construct, forward, backward, update) per task")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    ap.add_argument("--no-dynet", action="store_true", help="leave DyNet 2.1.2 out even when its venv exists")
    add_torch_device(ap)
    a = ap.parse_args(argv)
    from .tasks_dynet import TRAINERS

    a.trainers = [t for t in a.trainer.split(",") if t]
    bad = [t for t in a.trainers if t not in TRAINERS]
    if bad or not a.trainers:
        ap.error(f"--trainer: unknown trainer(s) {bad or a.trainer!r}; known: {', '.join(TRAINERS)}")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a.partition("=")[0] == "--minibatch" for a in argv):  # N instances per graph: benchmarks.minibatch
        from . import minibatch

        minibatch.main(argv)
        return 0
    args = parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        raise SystemExit("--seconds must be positive and --rounds at least 1")
    backends = backends_from(args.backend)
    torch_ok = have_torch() and not args.no_torch
    args.torch_side = use_torch_device(args.torch_device, torch_ok)
    from .dynet_peer import Peer, venv_python

    with one_blas_thread(), (contextlib.nullcontext() if args.no_dynet or venv_python() is None
                             else Peer()) as peer:
        run_all(args, backends, torch_ok, peer)
        if args.phases:
            rows = [(name, be) + phase_profile(name, be, args.seconds) for name in args.tasks if name in TASKS
                    for be in backends]
            if rows:
                print("\ndynet_api time per update by phase")
                print(format_phases(rows))
        if "chain" in args.tasks:
            run_chain(backends, args.seconds, torch_ok, peer)
    return 0


def run_all(args: argparse.Namespace, backends: list[str], torch_ok: bool, peer=None) -> list[Result]:
    from .dynet_peer import build_flags

    results = []
    for name in [t for t in args.tasks if t in TASKS]:
        for trainer in args.trainers:
            for be in backends:
                r = run_task(name, be, args.seconds, torch_ok, rounds=args.rounds, clock=args.clock,
                             trainer=trainer, peer=peer)
                print(f"  {name} on {be}, {trainer}: {r.updates} updates, dynet_api {r.dynet:.1f} {r.unit}"
                      + (f", PyTorch {r.torch:.1f}" if r.torch is not None else "")
                      + (f", DyNet {r.peer:.1f}" if r.peer is not None else ""), file=sys.stderr, flush=True)
                results.append(r)
    if results:
        if torch_ok:
            print(f"{args.torch_side}; {args.clock} clock; ratio = dynet_api / PyTorch")
        elif not have_torch():
            print("PyTorch: torch not installed (pip install '.[bench]')")
        if peer is not None:
            print(build_flags() + "; ratios = dynet_api / peer")
        print(format_table(results, NO_TORCH if not have_torch() else "not run (--no-torch)",
                           "not run (--no-dynet)" if args.no_dynet else None))
    return results


if __name__ == "__main__":
    sys.exit(main())
