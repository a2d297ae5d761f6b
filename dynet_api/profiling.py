"""Kernel-call counters and DyNet's ``--dynet-profiling`` report.

A kernel call is one invocation of an op's forward or backward kernel, batched or
not: a node run alone is one forward call, a group of nodes run together by the
autobatcher is one forward call, and each input's gradient is one backward call.
Parameter and lookup leaves count one backward call each for their gradient
hand-over (one for a batched lookup).  Every backend is counted by the same
rule, whether the front end makes the calls or a backend's own executor does
(``Backend.kernel_counts``).  Counting is always on (an integer increment per
call); timing only with ``--dynet-profiling 1``, which also prints a table after
each forward and backward, as DyNet's profiling does.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from .ops import OP_LIST

# Per op id: forward nodes evaluated, kernel calls (forward + backward), seconds in kernels.
NODES: list[int] = [0] * len(OP_LIST)
CALLS: list[int] = [0] * len(OP_LIST)
SECONDS: list[float] = [0.0] * len(OP_LIST)

# Backends whose own executors count (objects with ``kernel_counts()`` / ``reset_kernel_counts()``),
# registered by the graph when it binds one.
_counted: list[Any] = []


class OpCount(NamedTuple):
    """One op's totals since the last :func:`reset`."""

    nodes: int  # nodes evaluated (forward)
    calls: int  # forward + backward kernel calls
    seconds: float  # time in its kernels (0 unless profiling is on)


def cover_ops() -> None:
    """Give ops declared after import (a plugin's or a test's) their counters."""
    n = len(OP_LIST)
    NODES.extend([0] * (n - len(NODES)))
    CALLS.extend([0] * (n - len(CALLS)))
    SECONDS.extend([0.0] * (n - len(SECONDS)))


def watch(backend: Any) -> None:
    """Include a backend's own counters (its ``kernel_counts()``) in :func:`counts`."""
    if callable(getattr(backend, "kernel_counts", None)) and backend not in _counted:
        _counted.append(backend)


def reset() -> None:
    """Zero every counter (the front end's and those of backends that count themselves)."""
    for k in range(len(OP_LIST)):
        NODES[k] = CALLS[k] = 0
        SECONDS[k] = 0.0
    for be in _counted:
        be.reset_kernel_counts()


def counts() -> dict[str, OpCount]:
    """Per op name (ops with any activity only): nodes, kernel calls and seconds since :func:`reset`."""
    out: dict[str, list[Any]] = {}
    for op in OP_LIST:
        k = op.id
        if NODES[k] or CALLS[k]:
            out[op.name] = [NODES[k], CALLS[k], SECONDS[k]]
    for be in _counted:
        for name, (n, c, s) in be.kernel_counts().items():
            row = out.setdefault(name, [0, 0, 0.0])
            row[0] += n
            row[1] += c
            row[2] += s
    return {name: OpCount(*row) for name, row in out.items()}


def kernel_calls() -> int:
    """Forward and backward kernel calls of every op since :func:`reset`."""
    return sum(c.calls for c in counts().values())


def report(title: str = "", since: dict[str, OpCount] | None = None) -> str:
    """DyNet-style table: per op, nodes, kernel calls, time and share of the time, busiest first;
    with ``since`` (an earlier :func:`counts`), only what happened after it."""
    now = counts()
    if since:
        zero = OpCount(0, 0, 0.0)
        now = {name: OpCount(c.nodes - b.nodes, c.calls - b.calls, c.seconds - b.seconds)
               for name, c in now.items() for b in (since.get(name, zero),)}
        now = {name: c for name, c in now.items() if c.nodes or c.calls}
    rows = sorted(now.items(), key=lambda kv: (-kv[1].seconds, -kv[1].calls))
    seconds = sum(c.seconds for _, c in rows)
    total = seconds or 1.0  # the share's denominator
    lines = [f"-- profile {title}".rstrip(),
             f"{'op':<28}{'nodes':>10}{'calls':>10}{'ms':>12}{'share':>8}"]
    for name, c in rows:
        lines.append(f"{name:<28}{c.nodes:>10}{c.calls:>10}{c.seconds * 1e3:>12.3f}{c.seconds / total:>8.1%}")
    lines.append(f"{'total':<28}{sum(c.nodes for _, c in rows):>10}{sum(c.calls for _, c in rows):>10}"
                 f"{seconds * 1e3:>12.3f}")
    return "\n".join(lines)


def print_report(title: str, since: dict[str, OpCount] | None) -> None:
    """Print :func:`report` to stderr (what ``--dynet-profiling 1`` does after a forward or backward)."""
    print(report(title, since), file=sys.stderr)
