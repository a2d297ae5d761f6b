"""Autobatching's benchmarks: N instances per graph, batching on and off, kernel calls per update.

    python -m benchmarks.minibatch [--dynet-backend NAME[,NAME...]|all] [--minibatch 16,64]
                                   [--autobatch 0,1] [--tasks T ...] [--seconds S] [--trainer adam]
                                   [--rounds R] [--clock wall|cpu] [--no-torch] [--no-dynet]
                                   [--torch-device cpu|cuda]

For each task (``treelstm``, ``bilstm-tagger``, ``bilstm-tagger-withchar``) and minibatch size N,
every side trains on minibatches 0, 1, ... (items k*N .. k*N+N-1), each side's model from the same
seed, one untimed warm-up update each, then as many updates as take it about ``--seconds`` (at
least 2; a side 20x slower than another must not leave the faster one timing a few milliseconds),
split into ``--rounds`` blocks interleaved with the other sides' so that load changes hit all alike:

* dynet_api on each backend with each ``--autobatch`` value (the per-instance code of
  :class:`benchmarks.tasks_dynet.Minibatched`: N instances built one by one, losses summed with
  ``esum``, one backward, one update).  The switch is the process-wide setting a program uses,
  ``dynet_config.set(autobatch=...)`` and ``--dynet-autobatch`` set, set before each of that side's
  blocks: the front end reads it at every ``renew_cg``;
* DyNet 2.1.2 with each ``--autobatch`` value, the same task code in one worker per value
  (DyNet reads ``autobatch`` once, at initialisation), when its venv exists;
* the hand-batched PyTorch twin (:mod:`benchmarks.tasks_torch_batched`).

After the timed blocks each dynet_api side runs one more update of minibatch 0 between
``profiling.reset()`` and ``profiling.kernel_calls()`` (forward and backward kernel invocations,
batched or not, counted alike on every backend): the kernel calls per update.

The table has one row per (task, N, side, autobatch): instances (trees or sentences) per second,
kernel calls per update, how many times fewer kernel calls than the same side with autobatch 0,
and the speed ratios to DyNet with autobatch 1 and to the same side with autobatch 0 (above 1:
this row is faster).  One CPU thread on every side.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
           "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from . import run  # noqa: E402
from .tasks_dynet import MINIBATCH_UNITS  # noqa: E402

TASKS = tuple(MINIBATCH_UNITS)
TORCH = "PyTorch (by hand)"
DYNET = "DyNet 2.1.2"


def set_autobatch(value: int) -> None:
    """Switch autobatching through the process setting that ``--dynet-autobatch`` and
    ``dynet_config.set(autobatch=...)`` set (``dynet_api.config``; ``dynet_config.set`` itself would
    also re-apply this command line's ``--dynet-backend a,b``, a list only the benchmarks read).
    The graph reads it at every ``renew_cg`` (and tells a backend that batches itself)."""
    from dynet_api import config

    config.set_values(autobatch=int(value))


def kernel_calls_of(step: Callable[[], Any]) -> int | None:
    """Forward + backward kernel calls that ``step()`` makes, from ``dynet_api.profiling``; None (the
    table's ``n/a``) where this tree has no profiling module or the backend's calls are not counted
    (zero calls seen)."""
    try:
        profiling = importlib.import_module("dynet_api.profiling")
    except ImportError:
        return None
    profiling.reset()
    step()
    calls = int(profiling.kernel_calls())
    return calls or None


@dataclass
class Side:
    """One side of the interleaved blocks: a label, its autobatch value (None: not applicable), how
    to time a block of its updates (start, count) -> (seconds, units, loss), how long one update
    takes (calibration, from a time budget), and what to run before each block.  ``timed``'s third
    argument: the number of minibatches every side cycles through (run._timed's ``cycle``)."""

    label: str
    autobatch: int | None
    timed: Callable[[int, int, int], tuple]
    calibrate: Callable[[float], float]
    prepare: Callable[[], None] = lambda: None
    task: Any = None  # the local task (None for DyNet's, in its worker)
    phases: Callable[[int, int], dict] | None = None  # (start, n) -> median seconds per phase (run.PHASES)
    totals: list = field(default_factory=lambda: [0.0, 0])  # seconds, units
    first_loss: float = float("nan")  # the loss of the warm-up update (minibatch 0, initial weights)
    error: str | None = None  # what failed, when the side failed


def _local(label: str, autobatch: int | None, task, clock: str, prepare: Callable[[], None] = lambda: None) -> Side:
    phases = partial(run.phase_medians, task) if hasattr(task, "step_phases") else None
    return Side(label, autobatch, lambda a, m, cycle: run._timed(task, a, m, run.CLOCKS[clock], cycle),
                lambda budget: run._calibrate(task, budget), prepare, task, phases)


@dataclass
class Row:
    task: str
    size: int
    side: str
    autobatch: int | None
    unit: str
    updates: int
    speed: float  # instances per second
    loss: float  # the warm-up update's loss (minibatch 0 from the initial weights)
    calls: int | None = None  # kernel calls per update (dynet_api sides)
    error: str | None = None  # the side failed: where and with which exception (the table says so)
    phases: dict[str, float] | None = None  # median seconds per phase (--phases)


def _dynet_side(name: str, size: int, backend: str, ab: int, trainer: str, data, clock: str) -> Side:
    from . import tasks_dynet

    run.set_dynet_backend(backend)  # the same seed, so both autobatch values start from the same weights
    task = tasks_dynet.Minibatched(tasks_dynet.make(name, trainer, data), size)

    def prepare() -> None:
        import dynet_api as dy

        if dy.backend_name() != backend:
            dy.set_backend(backend)
        set_autobatch(ab)

    return _local(f"dynet_api {backend}", ab, task, clock, prepare)


def _peer_side(peer, name: str, size: int, trainer: str, data, clock: str) -> Side:
    """DyNet's side in its worker (which builds the task and takes the warm-up update there)."""
    peer.call("task", name=name, trainer=trainer, data=peer.data_file(data), minibatch=size)
    return Side(DYNET, peer.autobatch,
                lambda a, m, cycle: tuple(peer.call("timed", start=a, n=m, clock=clock, cycle=cycle)),
                lambda budget: peer.call("calibrate", budget=budget), first_loss=peer.call("warmup_loss"),
                phases=lambda a, m: peer.call("phases", start=a, n=m))


def task_data(name: str):
    """The data set of task ``name`` (the benchmarks' default, shared by every side)."""
    from . import data as D

    return D.tree_data() if name == "treelstm" else D.tag_data()


def _guarded(s: Side, what: str, fn: Callable[[], Any]) -> Any:
    """``s.prepare()`` then ``fn()``, for side ``s``; an exception takes the side out of the run (its row says why, the
    traceback goes to stderr) instead of ending the whole table.  None once the side has failed."""
    if s.error is not None:
        return None
    try:
        s.prepare()
        return fn()
    except Exception as e:  # a backend that fails on a task must not hide the other sides' figures
        s.error = f"{type(e).__name__} in {what}"
        print(f"{s.label} autobatch={s.autobatch}: {what} failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return None


def run_minibatch(name: str, size: int, backends: list[str], autobatch: list[int], seconds: float,
                  torch_ok: bool, peers: dict[int, Any] | None = None, trainer: str = "adam", rounds: int = 3,
                  clock: str = "wall", min_updates: int = 2, phases: int = 0) -> list[Row]:
    """Each side runs its own number of updates (about ``seconds``) in ``rounds`` blocks interleaved
    with the other sides', all on the same minibatches: 0, 1, ..., M - 1 for the slowest side's M
    updates, each faster side cycling through them a whole number of times (trees and sentences
    differ in size from minibatch to minibatch: sides timed on different ones would compare
    different work).  ``phases`` > 0: then each side that can also times that many updates phase by
    phase (minibatches 1, 2, ..., the same on every side)."""
    data = task_data(name)
    sides = [_dynet_side(name, size, be, ab, trainer, data, clock) for be in backends for ab in autobatch]
    if torch_ok:
        import torch

        from . import tasks_torch_batched

        torch.manual_seed(run.SEED)
        tt = tasks_torch_batched.make_minibatched(name, size, trainer, data)
        sides.append(_local(TORCH, None, tt, clock))
    for s in sides:
        got = _guarded(s, "the warm-up update", partial(s.task.step, 0))
        s.first_loss = float("nan") if got is None else got[0]
    sides += [_peer_side(p, name, size, trainer, data, clock) for _, p in sorted((peers or {}).items())]
    counts = []
    for s in sides:
        per = _guarded(s, "calibration", partial(s.calibrate, 0.1 * seconds))
        counts.append(0 if per is None else max(min_updates, round(seconds / per)))
    cycle = min((n for n in counts if n > 0), default=0)
    counts = [max(1, round(n / cycle)) * cycle if n > 0 else 0 for n in counts]
    for r in range(rounds):
        for s, n in zip(sides, counts, strict=True):
            a, b = n * r // rounds, n * (r + 1) // rounds
            got = None if b <= a else _guarded(
                s, f"updates {a}..{b - 1}", partial(s.timed, a, b - a, cycle))
            if got is not None:
                s.totals[0] += got[0]
                s.totals[1] += got[1]
    rows = []
    for s, n in zip(sides, counts, strict=True):
        calls = None
        if s.label.startswith("dynet_api"):
            calls = _guarded(s, "the counted update",
                             partial(kernel_calls_of, partial(s.task.step, 0)))
        ph = None
        if phases > 0 and s.phases is not None:
            ph = _guarded(s, "the phase timing", partial(s.phases, 1, phases))
        dt, units = s.totals
        rows.append(Row(name, size, s.label, s.autobatch, MINIBATCH_UNITS[name], n,
                        units / dt if s.error is None else float("nan"), s.first_loss, calls, s.error, ph))
    return rows


def _find(rows: list[Row], r: Row, side: str, ab: int) -> Row | None:
    return next((o for o in rows if (o.task, o.size, o.side, o.autobatch) == (r.task, r.size, side, ab)), None)


def format_table(rows: list[Row]) -> str:
    """One line per row; ratios against DyNet with autobatch 1 and against the same side with autobatch 0."""
    head = ("task", "N", "side", "autobatch", "updates", "unit", "speed", "kernel calls/update", "fewer calls",
            "vs DyNet ab=1", "vs ab=0", "first loss")
    out: list[tuple[str, ...]] = [head]
    for r in rows:
        if r.error is not None:
            out.append((r.task, str(r.size), r.side, "-" if r.autobatch is None else str(r.autobatch), "-", r.unit,
                        f"failed: {r.error}", *["-"] * (len(head) - 7)))
            continue
        dyn = _find(rows, r, DYNET, 1)
        dyn = None if dyn is None or dyn.error is not None else dyn
        off = _find(rows, r, r.side, 0) if r.autobatch not in (None, 0) else None
        off = None if off is None or off.error is not None else off
        fewer = "-" if off is None or not r.calls or not off.calls else f"{off.calls / r.calls:.1f}x"
        out.append((r.task, str(r.size), r.side, "-" if r.autobatch is None else str(r.autobatch), str(r.updates),
                    r.unit, f"{r.speed:.1f}", "n/a" if r.calls is None else str(r.calls), fewer,
                    "-" if dyn is None else f"{r.speed / dyn.speed:.2f}x",
                    "-" if off is None else f"{r.speed / off.speed:.2f}x", f"{r.loss:.2f}"))
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    left = (0, 2, 5)  # task, side, unit
    lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in out]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_phases(rows: list[Row], updates: int) -> str:
    """Where an update goes, per side: median ms per phase over ``updates`` updates (construction
    includes renew_cg)."""
    return run.format_phases([(f"{r.task} N={r.size}", f"{r.side} ab={'-' if r.autobatch is None else r.autobatch}",
                               updates, r.phases) for r in rows if r.phases])


def _ints(arg: str, what: str, lowest: int) -> list[int]:
    try:
        vals = [int(v) for v in arg.split(",") if v]
    except ValueError:
        raise SystemExit(f"{what}: expected comma-separated integers, got {arg!r}") from None
    if not vals or min(vals) < lowest:
        raise SystemExit(f"{what}: expected integers >= {lowest}, got {arg!r}")
    return vals


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.minibatch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dynet-backend", "--dynet_backend", dest="backend", default=None,
                    help="backend name, a comma-separated list, or 'all' (default: dynet_api's default backend)")
    ap.add_argument("--minibatch", default="16,64", help="instances per graph, comma-separated (default 16,64)")
    ap.add_argument("--autobatch", default="0,1",
                    help="autobatching values (--dynet-autobatch), comma-separated, each run on dynet_api's "
                         "backends and on DyNet (default 0,1)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seconds", type=float, default=3.0, help="target seconds per task and N for the slowest side")
    ap.add_argument("--trainer", default="adam", choices=("sgd", "adam"),
                    help="adam (default: DyNet's scripts' trainer, no clipping) or sgd")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved blocks of updates per side (default 3)")
    ap.add_argument("--clock", choices=sorted(run.CLOCKS), default="wall")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    ap.add_argument("--no-dynet", action="store_true", help="leave DyNet 2.1.2 out even when its venv exists")
    ap.add_argument("--phases", type=int, default=0, metavar="UPDATES",
                    help="also time this many updates per side phase by phase (construct, forward, backward, "
                         "update; medians), on the same minibatches for every side, DyNet's included")
    run.add_torch_device(ap)
    a = ap.parse_args(argv)
    a.sizes = _ints(a.minibatch, "--minibatch", 1)
    a.autobatch_values = _ints(a.autobatch, "--autobatch", 0)
    if a.seconds <= 0 or a.rounds < 1:
        ap.error("--seconds must be positive and --rounds at least 1")
    if a.phases < 0:
        ap.error("--phases must be 0 (off) or a number of updates")
    return a


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    backends = run.backends_from(args.backend)
    torch_ok = run.have_torch() and not args.no_torch
    torch_side = run.use_torch_device(args.torch_device, torch_ok)
    from .dynet_peer import MISSING, Peer, build_flags, venv_python

    with contextlib.ExitStack() as stack:
        stack.enter_context(run.one_blas_thread())
        peers = {} if args.no_dynet or venv_python() is None else {
            ab: stack.enter_context(Peer(autobatch=ab)) for ab in args.autobatch_values}
        rows = []
        for name in args.tasks:
            for size in args.sizes:
                got = run_minibatch(name, size, backends, args.autobatch_values, args.seconds, torch_ok, peers,
                                    args.trainer, args.rounds, args.clock, phases=args.phases)
                print(f"  {name}, N={size}: " + ", ".join(f"{r.side} ab={r.autobatch} {r.speed:.1f}" for r in got),
                      file=sys.stderr, flush=True)
                rows += got
    print(f"{args.trainer}; {args.clock} clock; one thread per side; speed in instances/sec; "
          "ratios: this row's speed / the other's")
    print(build_flags() if peers else f"DyNet 2.1.2: {'not run (--no-dynet)' if args.no_dynet else MISSING}")
    print(torch_side if torch_ok else f"PyTorch: {'not run (--no-torch)' if run.have_torch() else run.NO_TORCH}")
    print(format_table(rows))
    if args.phases > 0:
        print(f"\nwhere an update goes: median ms per phase over {args.phases} updates (wall clock; construct "
              "includes renew_cg)")
        print(format_phases(rows, args.phases))
    return rows


if __name__ == "__main__":
    main()
