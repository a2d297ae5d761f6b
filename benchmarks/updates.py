"""Trainer-update micro benchmark: dynet_api (per backend) against DyNet 2.1.2.

    python -m benchmarks.updates [--backends cpu_eigen,reference_numpy] [--seconds 0.3] [--sizes 64x64,...] [--rounds 3]

Three cases, µs per call, both sides in the same run, one thread:

* ``update``: one ``trainer.update()`` of a single parameter after a small graph
  (``squared_norm`` of it) was built, run and backpropagated (only the update is timed),
  for every trainer both sides have, at sizes 64x64 to 1024x1024;
* ``lookup``: one update of a 1M-row lookup table (dim 16) of which 4 rows were
  used, and of a 10k-row one (``--lookup-rows``), with clipping on (DyNet's default), SGD and Adam;
  the 1M/10k ratio shows whether the cost follows the rows used or the table; the same
  with weight decay on (``lookup+wd``, lambda 1e-6: DyNet's lazy scale, no pass over the table);
* ``small step``: the fixed cost of a small training step -- ``renew_cg``, five
  nodes on 64x64 parameters, forward, backward and the update -- SGD and Adam.

DyNet's side runs in its venv (:mod:`benchmarks.dynet_peer`); without it its
column says how to build it.  Every figure is the best of several timed
batches (the machine may be shared), and the sides take turns (``--rounds``),
each figure the best of its side's turns, so a drift of the machine's speed
reaches both columns alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

TRAINERS = ("SimpleSGDTrainer", "MomentumSGDTrainer", "AdagradTrainer", "AdadeltaTrainer", "RMSPropTrainer",
            "AdamTrainer", "AmsgradTrainer", "EGTrainer", "CyclicalSGDTrainer")
SIZES = ((64, 64), (256, 256), (640, 256), (1024, 1024))
LOOKUP_ROWS = (1_000_000, 10_000)
LOOKUP_DIM = 16
USED_ROWS = (3, 17, 4242, 9999)


def _best_per_call(fn, seconds: float, min_batches: int = 3) -> float:
    """Best mean seconds per call of ``fn(n)`` (which returns the seconds its n timed calls took)."""
    fn(2)  # warm-up
    n, t = 1, fn(1)
    while t < 0.01 and n < 1 << 16:  # batches of about 10 ms
        n *= 4
        t = fn(n)
    best = t / n
    deadline = time.perf_counter() + seconds
    k = 0
    while k < min_batches or time.perf_counter() < deadline:
        best = min(best, fn(n) / n)
        k += 1
    return best


def _update_timer(dy, tr, make_loss):
    """``run(n)``: n steps of renew_cg, ``make_loss()``, forward and backward, timing ``tr.update()`` alone."""
    def run(n: int) -> float:
        total = 0.0
        for _ in range(n):
            dy.renew_cg()
            loss = make_loss()
            loss.value()
            loss.backward()
            t0 = time.perf_counter()
            tr.update()
            total += time.perf_counter() - t0
        return total

    return run


def _update_case(dy, trainer: str, rows: int, cols: int, seconds: float) -> float:
    m = dy.ParameterCollection()
    p = m.add_parameters((rows, cols), init=dy.NormalInitializer(0, 0.01))
    tr = getattr(dy, trainer)(m)
    return _best_per_call(_update_timer(dy, tr, lambda: dy.squared_norm(p)), seconds)


def _lookup_case(dy, trainer: str, rows: int, seconds: float, decay: float = 0.0) -> float:
    if rows <= max(USED_ROWS):
        raise ValueError(f"updates: a lookup table of {rows} rows is too small for the rows used {USED_ROWS}")
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((rows, LOOKUP_DIM), init=dy.NormalInitializer(0, 0.01))
    if decay:
        m.set_weight_decay_lambda(decay)
    tr = getattr(dy, trainer)(m)
    tr.set_clip_threshold(5.0)  # DyNet's default, stated
    loss = _update_timer(dy, tr, lambda: dy.squared_norm(dy.esum([dy.lookup(E, r) for r in USED_ROWS])))
    return _best_per_call(loss, seconds)


def _small_step(dy, trainer: str, seconds: float) -> float:
    m = dy.ParameterCollection()
    W = m.add_parameters((64, 64), init=dy.NormalInitializer(0, 0.1))
    b = m.add_parameters(64)
    tr = getattr(dy, trainer)(m)
    x = np.linspace(-1, 1, 64).tolist()

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            dy.renew_cg()  # five nodes: input, W*x, +b, tanh, squared_norm
            loss = dy.squared_norm(dy.tanh(W * dy.inputVector(x) + b))
            loss.value()
            loss.backward()
            tr.update()
        return time.perf_counter() - t0

    return _best_per_call(run, seconds)


def measure(dy, seconds: float, sizes=SIZES, trainers=TRAINERS, lookup_rows=LOOKUP_ROWS) -> dict:
    """All cases on module ``dy`` (dynet_api on some backend, or dynet); seconds per call, by key."""
    out: dict = {}
    for tr in trainers:
        if not hasattr(dy, tr):
            continue
        for r, c in sizes:
            out[f"update {tr} {r}x{c}"] = _update_case(dy, tr, r, c, seconds)
    for tr in ("SimpleSGDTrainer", "AdamTrainer"):
        for rows in lookup_rows:
            out[f"lookup {tr} {rows} rows"] = _lookup_case(dy, tr, rows, seconds)
        for rows in lookup_rows:
            out[f"lookup+wd {tr} {rows} rows"] = _lookup_case(dy, tr, rows, seconds, decay=1e-6)
    for tr in ("SimpleSGDTrainer", "AdamTrainer"):
        out[f"small step {tr}"] = _small_step(dy, tr, seconds)
    return out


def _keep_best(best: dict, new: dict) -> None:
    """Each case's lowest time so far."""
    for k, v in new.items():
        best[k] = min(v, best.get(k, v))


def dynet_side(seconds: float, sizes: list, trainers: list, lookup_rows: list) -> dict:
    """DyNet's figures (run by the worker in DyNet's venv)."""
    import dynet

    return measure(dynet, seconds, [tuple(s) for s in sizes], trainers, lookup_rows)


def format_table(cols: dict[str, dict], missing: str, lookup_rows=LOOKUP_ROWS) -> str:
    """One row per case, µs per call for each column, then each dynet_api column / DyNet."""
    keys = list(dict.fromkeys(k for c in cols.values() for k in c))
    names = list(cols)
    head = ["case (us per call)"] + names + [f"{n} / DyNet" for n in names if n != "DyNet"]
    rows = [head]
    for k in keys:
        cells = [k]
        for n in names:
            v = cols[n].get(k)
            if v is not None:
                cells.append(f"{v * 1e6:.2f}")
            elif n != "DyNet":
                cells.append("-")
            else:  # with DyNet's figures present, a missing one is a trainer its Python module lacks
                cells.append("not in DyNet 2.1.2" if cols["DyNet"] else missing)
        peer = cols.get("DyNet", {}).get(k)
        for n in names:
            if n != "DyNet":
                v = cols[n].get(k)
                cells.append(f"{v / peer:.2f}x" if v is not None and peer else "-")
        rows.append(cells)
    for case, tr in [(c, t) for c in ("lookup", "lookup+wd") for t in ("SimpleSGDTrainer", "AdamTrainer")]:
        # does the lookup update follow the rows used?
        big, small = f"{case} {tr} {lookup_rows[0]} rows", f"{case} {tr} {lookup_rows[1]} rows"
        cells = [f"{case} {tr} {lookup_rows[0]} / {lookup_rows[1]} rows"]
        for n in names:
            c = cols[n]
            cells.append(f"{c[big] / c[small]:.1f}x" if big in c and small in c else "-")
        rows.append(cells + ["" for n in names if n != "DyNet"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.updates", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="cpu_eigen", help="comma-separated dynet_api backends")
    ap.add_argument("--seconds", type=float, default=0.3, help="time budget per case and side")
    ap.add_argument("--sizes", default=",".join(f"{r}x{c}" for r, c in SIZES), help="e.g. 64x64,1024x1024")
    ap.add_argument("--trainers", default=",".join(TRAINERS), help="DyNet trainer class names")
    ap.add_argument("--lookup-rows", default=",".join(map(str, LOOKUP_ROWS)),
                    help="the big and the small lookup table's rows (default 1000000,10000)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="turns each side takes, alternating; each figure is the best of its turns (default 3)")
    ap.add_argument("--no-dynet", action="store_true", help="leave DyNet 2.1.2 out even when its venv exists")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error(f"--rounds: expected at least 1, got {a.rounds}")
    try:
        sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",") if s]
        if any(len(s) != 2 or min(s) < 1 for s in sizes):
            raise ValueError
    except ValueError:
        ap.error(f"--sizes: expected ROWSxCOLS[,...], got {a.sizes!r}")
    try:
        lookup_rows = [int(v) for v in a.lookup_rows.split(",")]
    except ValueError:
        lookup_rows = []
    if len(lookup_rows) != 2 or min(lookup_rows) <= max(USED_ROWS):
        ap.error(f"--lookup-rows: expected BIG,SMALL, both above {max(USED_ROWS)}, got {a.lookup_rows!r}")
    trainers = [t for t in a.trainers.split(",") if t]
    unknown = [t for t in trainers if t not in TRAINERS]
    if unknown:
        ap.error(f"--trainers: unknown {unknown}; known: {', '.join(TRAINERS)}")
    import dynet_api as dy
    from dynet_api.plugins import registry

    from .dynet_peer import MISSING, Peer, build_flags, venv_python
    from .run import one_blas_thread

    backends = [b for b in a.backends.split(",") if b]
    for be in backends:
        registry.get(be)  # a clear error for an unknown or unavailable backend
    cols: dict[str, dict] = {}
    with_dynet = not a.no_dynet and venv_python() is not None
    with one_blas_thread(), (Peer() if with_dynet else contextlib.nullcontext()) as peer:
        # the sides take turns, round after round, and each keeps its best: a drift of the
        # machine's speed during the run reaches both columns alike
        for _ in range(a.rounds):
            for be in backends:
                dy.set_backend(be)
                _keep_best(cols.setdefault(f"dynet_api {be}", {}), measure(dy, a.seconds, sizes, trainers, lookup_rows))
            if peer is not None:
                _keep_best(cols.setdefault("DyNet", {}), peer.call("updates", seconds=a.seconds, sizes=sizes,
                                                                   trainers=trainers, lookup_rows=lookup_rows))
    if with_dynet:
        print(build_flags())
    cols.setdefault("DyNet", {})
    print("trainer updates, one thread; best of timed batches; ratio = dynet_api time / DyNet time "
          "(above 1: DyNet is faster)")
    print(format_table(cols, "not run (--no-dynet)" if a.no_dynet else MISSING, lookup_rows))
    return cols


if __name__ == "__main__":
    main(sys.argv[1:])
