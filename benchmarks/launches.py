"""Kernel launches per update and where an update's time goes, for a GPU backend beside PyTorch.

    python -m benchmarks.launches [--dynet-backend cuda] [--tasks treelstm rnnlm-batch]
                                  [--minibatch 64] [--autobatch 0,1] [--trainer adam] [--updates 10]
                                  [--torch-device cuda] [--no-torch] [--cprofile TOP]

Each side (dynet_api on each backend with each ``--autobatch`` value, single-instance and at
``--minibatch`` instances per graph for the tasks that have a minibatched variant, and the
PyTorch twin, hand-batched for the minibatches) takes two warm-up updates, then ``--updates`` updates:

* **ms/update**: wall time per update, with nothing else watching;
* **kernel calls**: the project's own counters (:mod:`dynet_api.profiling`: one call per forward
  or backward invocation of an op's kernel, batched or not), for one update;
* **CUDA kernels, copies, GPU ms**: what the GPU ran per update, read by PyTorch's profiler (CUPTI
  sees every kernel the process launches, CuPy's and cuBLAS's included) from its Chrome trace:
  events of category ``kernel`` and ``gpu_memcpy``/``gpu_memset`` and their summed durations;
  ``n/a`` where PyTorch has no CUDA;
* **host share**: 1 - GPU ms / ms per update, the share of an update in which the GPU waits for
  the host: Python dispatch (graph construction, the front end, the kernels' Python, CuPy's
  launch path) and the trainer's bookkeeping;
* for dynet_api sides, the update split into its phases (construct, forward, backward, update),
  from :meth:`benchmarks.tasks_dynet._Task.step_phases`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import minibatch, run  # first: they limit BLAS to one thread before NumPy loads
from .tasks_dynet import MINIBATCH_UNITS

TASKS = run.TASKS
GPU_EVENTS = {"kernel": "kernels", "gpu_memcpy": "copies", "gpu_memset": "copies"}


@dataclass
class Row:
    task: str
    size: int  # instances per graph (1: the single-instance task)
    side: str
    autobatch: int | None
    ms: float  # wall milliseconds per update
    calls: int | None = None  # the project's kernel calls per update (dynet_api sides)
    kernels: float | None = None  # CUDA kernels launched per update
    copies: float | None = None  # memory copies and sets per update
    gpu_ms: float | None = None  # GPU busy milliseconds per update
    phases: dict[str, float] = field(default_factory=dict)  # ms per update by phase (dynet_api sides)

    @property
    def host_share(self) -> float | None:
        return None if self.gpu_ms is None else max(0.0, 1.0 - self.gpu_ms / self.ms)


def gpu_trace(steps: Callable[[], Any]) -> tuple[int, int, float] | None:
    """(kernels, copies, GPU busy ms) of ``steps()`` as CUPTI saw them through PyTorch's profiler;
    None where PyTorch or its CUDA support is absent."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        steps()
        torch.cuda.synchronize()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)
    finally:
        os.unlink(path)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    n = {"kernels": 0, "copies": 0}
    busy_us = 0.0
    for e in events:
        kind = GPU_EVENTS.get(str(e.get("cat", "")).lower())
        if kind is not None and e.get("ph") == "X":
            n[kind] += 1
            busy_us += float(e.get("dur", 0.0))
    return n["kernels"], n["copies"], busy_us / 1e3


def print_cprofile(title: str, steps: Callable[[], Any], top: int) -> None:
    """The ``top`` functions by own time while ``steps()`` runs (Python's cProfile): where the host's
    time goes, by function."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.runcall(steps)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "function calls" in line), 0)
    print(f"-- cProfile: {title}\n" + "\n".join(line for line in lines[start:] if line.strip()))


def measure(side: str, size: int, autobatch: int | None, task, updates: int, prepare: Callable[[], None],
            dynet: bool, cprofile: int = 0) -> Row:
    """One side's row: warm-up, timed updates, counted and traced updates (see the module doc);
    with ``cprofile`` > 0, also that many functions of a cProfile of the updates (dynet_api sides)."""
    prepare()
    for k in range(2):
        task.step(k)
    t0 = time.perf_counter()
    for k in range(updates):
        task.step(k)
    row = Row(task.name, size, side, autobatch, 1e3 * (time.perf_counter() - t0) / updates)
    if dynet:
        row.calls = minibatch.kernel_calls_of(lambda: task.step(0))
        tot: dict[str, float] = {}
        for k in range(updates):
            for ph, dt in task.step_phases(k).items():
                tot[ph] = tot.get(ph, 0.0) + dt
        row.phases = {ph: 1e3 * v / updates for ph, v in tot.items()}
        if cprofile:
            print_cprofile(f"{task.name} N={size} {side} ab={autobatch}, {updates} updates",
                           lambda: [task.step(k) for k in range(updates)], cprofile)
    got = gpu_trace(lambda: [task.step(k) for k in range(updates)])
    if got is not None:
        row.kernels, row.copies, row.gpu_ms = got[0] / updates, got[1] / updates, got[2] / updates
    return row


def rows_for(name: str, size: int, backends: list[str], autobatch: list[int], trainer: str, updates: int,
             torch_ok: bool, cprofile: int = 0) -> list[Row]:
    from . import tasks_dynet

    rows = []
    data = minibatch.task_data(name) if size > 1 else None
    for be in backends:
        for ab in autobatch:
            run.set_dynet_backend(be)
            task = tasks_dynet.make(name, trainer, data)
            if size > 1:
                task = tasks_dynet.Minibatched(task, size)
            rows.append(measure(f"dynet_api {be}", size, ab, task, updates,
                                lambda ab=ab: minibatch.set_autobatch(ab), dynet=True, cprofile=cprofile))
    if torch_ok:
        import torch

        from . import tasks_torch, tasks_torch_batched

        torch.manual_seed(run.SEED)
        tt = (tasks_torch.make(name, trainer) if size == 1
              else tasks_torch_batched.make_minibatched(name, size, trainer, data))
        rows.append(measure(f"PyTorch {tasks_torch.DEVICE}", size, None, tt, updates, lambda: None, dynet=False))
    return rows


def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def format_table(rows: list[Row]) -> str:
    head = ("task", "N", "side", "ab", "ms/update", "kernel calls", "CUDA kernels", "copies", "GPU ms",
            "host share", "construct/forward/backward/update ms")
    out = [head]
    for r in rows:
        phases = "/".join(f"{r.phases[p]:.2f}" for p in run.PHASES if p in r.phases) or "-"
        out.append((r.task, str(r.size), r.side, "-" if r.autobatch is None else str(r.autobatch), f"{r.ms:.2f}",
                    _f(r.calls, "d"), _f(r.kernels, ".0f"), _f(r.copies, ".0f"), _f(r.gpu_ms, ".2f"),
                    _f(r.host_share, ".0%"), phases))
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in out]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.launches", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dynet-backend", "--dynet_backend", dest="backend", default=None,
                    help="backend name, a comma-separated list, or 'all' (default: dynet_api's default backend)")
    ap.add_argument("--tasks", nargs="+", default=["treelstm", "rnnlm-batch"], choices=list(TASKS))
    ap.add_argument("--minibatch", default="64",
                    help="instances per graph for the tasks with a minibatched variant, comma-separated; "
                         "0 for none (default 64)")
    ap.add_argument("--autobatch", default="0,1", help="autobatch values for the minibatched rows (default 0,1)")
    ap.add_argument("--trainer", default="adam", choices=("sgd", "adam"))
    ap.add_argument("--updates", type=int, default=10, help="updates timed and traced per side (default 10)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    ap.add_argument("--cprofile", type=int, default=0, metavar="TOP",
                    help="print the TOP functions by own time of each dynet_api side's updates (cProfile)")
    run.add_torch_device(ap)
    a = ap.parse_args(argv)
    a.sizes = [s for s in minibatch._ints(a.minibatch, "--minibatch", 0) if s > 1]
    a.autobatch_values = minibatch._ints(a.autobatch, "--autobatch", 0)
    if a.updates < 1:
        ap.error("--updates must be at least 1")
    return a


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    backends = run.backends_from(args.backend)
    torch_ok = run.have_torch() and not args.no_torch
    torch_side = run.use_torch_device(args.torch_device, torch_ok)
    rows: list[Row] = []
    with run.one_blas_thread():
        for name in args.tasks:
            sizes = [1] + (args.sizes if name in MINIBATCH_UNITS else [])
            for size in sizes:
                got = rows_for(name, size, backends, args.autobatch_values, args.trainer, args.updates, torch_ok,
                               args.cprofile)
                print(f"  {name}, N={size}: " + ", ".join(f"{r.side} ab={r.autobatch} {r.ms:.2f} ms" for r in got),
                      file=sys.stderr, flush=True)
                rows += got
    print(f"{args.trainer}; {args.updates} updates per side; "
          + (torch_side if torch_ok else "PyTorch: not run") + "; per update")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
