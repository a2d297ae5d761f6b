"""What handing Python kernels their attributes by name costs per update (issue 13).

Every kernel of an op with attributes is called through :func:`dynet_api.ops.by_name`, which
copies the node's attribute tuple into the op's named tuple.  A whole-benchmark A/B cannot
resolve so small a cost on a shared machine, so this measures its two factors apart:

* the wrapper's cost per call: a do-nothing kernel called through ``by_name`` against the same
  kernel called directly, interleaved, best of several repeats (nanoseconds);
* how many kernel calls of ops with attributes one update makes (``dynet_api.profiling``), and
  how long the update takes,

and prints their product as a share of the update time::

    python -m benchmarks.attr_cost --dynet-backend reference_numpy
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from dynet_api import profiling
from dynet_api.dim import Dim
from dynet_api.ops import OPS, by_name

from . import run
from .minibatch import set_autobatch

SINGLE = ("treelstm", "rnnlm-batch")
MINIBATCHED = ("bilstm-tagger", "bilstm-tagger-withchar", "treelstm")


def _noop(xs, a, d):
    return a


def wrapper_ns(op_name: str, repeats: int = 7, n: int = 200_000) -> float:
    """Nanoseconds ``by_name`` adds to one forward call of op ``op_name`` (best of ``repeats``)."""
    op = OPS[op_name]
    attrs = tuple(range(len(op.attrs)))
    d = Dim((1,))
    wrapped = by_name(op, _noop)
    best = float("inf")
    for _ in range(repeats):
        times = []
        for f in (_noop, wrapped):
            t0 = time.perf_counter()
            for _ in range(n):
                f(None, attrs, d)
            times.append(time.perf_counter() - t0)
        best = min(best, (times[1] - times[0]) / n * 1e9)
    return best


def per_update(step: Callable[[int], object], k: int = 1, updates: int = 3) -> tuple[int, float]:
    """(kernel calls of ops with attributes in one update, best seconds of one update)."""
    step(0)  # warm-up
    profiling.reset()
    step(k)
    calls = sum(c.calls for name, c in profiling.counts().items() if OPS[name].attrs)
    best = float("inf")
    for j in range(updates):
        t0 = time.perf_counter()
        step(k + 1 + j)
        best = min(best, time.perf_counter() - t0)
    return calls, best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dynet-backend", "--dynet_backend", default="reference_numpy")
    p.add_argument("--minibatch", type=int, default=16)
    args = p.parse_args(argv)
    from . import tasks_dynet

    ns = max(wrapper_ns("pick"), wrapper_ns("lookup"), 0.0)
    print(f"by_name: {ns:.0f} ns per kernel call (best of 7; a shared machine's timings are noisy)")
    print(f"{'task':<24} {'N':>3} {'autobatch':>9} {'attr calls/update':>18} {'update ms':>10} {'share':>8}")
    rows = [(name, 1, None) for name in SINGLE]
    rows += [(name, args.minibatch, ab) for name in MINIBATCHED for ab in (0, 1)]
    for name, size, ab in rows:
        run.set_dynet_backend(args.dynet_backend)
        if ab is not None:
            set_autobatch(ab)
        task = tasks_dynet.make(name) if size == 1 else tasks_dynet.make_minibatched(name, size)
        calls, dt = per_update(task.step)
        share = calls * ns * 1e-9 / dt
        print(f"{name:<24} {size:>3} {'-' if ab is None else ab:>9} {calls:>18} {dt * 1e3:>10.1f} {share:>8.2%}")
    set_autobatch(0)


if __name__ == "__main__":
    main()
