"""Data-parallel scaling on MPI: 1 rank vs 2 ranks on the BiLSTM tagger and the Tree-LSTM.

``python -m benchmarks.distributed [--steps N] [--tasks ...]`` launches ``mpiexec -n 1`` and
``mpiexec -n 2`` of this module (``--worker``) in the same run.  Each rank takes the items
``rank, rank + size, ...`` (one item per update, as in benchmarks/tasks_dynet.py), runs a warm-up
then ``--steps`` timed updates through ``DistributedTrainer``, and reports its units, wall time and
time inside the gradient exchange.  Throughput is all ranks' units over the slowest rank's time;
scaling efficiency is throughput(2) / (2 x throughput(1)).  The exchange time includes waiting
for the slower rank, so it is an upper bound on pure communication.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WARMUP = 5


def worker(task_name: str, steps: int, bucket_mb: float) -> None:
    from dynet_api import distributed

    from . import tasks_dynet

    world = distributed.init()
    task = tasks_dynet.make(task_name)
    distributed.broadcast_parameters(task.model, world)
    tr = distributed.DistributedTrainer(task.trainer, world, bucket_bytes=int(bucket_mb * (1 << 20)))
    task.trainer = tr
    for i in range(WARMUP):
        task.step(world.rank + i * world.size)
    world.barrier()
    tr.comm_seconds = 0.0
    units = 0
    t0 = time.perf_counter()
    for i in range(WARMUP, WARMUP + steps):
        units += task.step(world.rank + i * world.size)[1]
    secs = time.perf_counter() - t0
    rows = world.comm.gather({"units": units, "secs": secs, "comm": tr.comm_seconds}, root=0)
    if world.rank == 0:
        print("RESULT " + json.dumps({"task": task_name, "unit": task.unit, "ranks": rows, "steps": steps}))


def launch(task_name: str, n: int, steps: int, bucket_mb: float) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-launcher", "fork", "-n", str(n), sys.executable,
           "-m", "benchmarks.distributed", "--worker", task_name, "--steps", str(steps),
           "--bucket-mb", str(bucket_mb)]
    out = subprocess.run(cmd, cwd=here, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["bilstm-tagger", "treelstm"])
    ap.add_argument("--steps", type=int, default=200, help="timed updates per rank")
    ap.add_argument("--bucket-mb", type=float, default=4.0,
                    help="gradient bucket size; each bucket's allreduce starts as soon as it is packed")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.bucket_mb)
        return
    print(f"{os.cpu_count()} cores; {args.steps} timed updates per rank after {WARMUP} warm-up updates; "
          f"buckets of {args.bucket_mb:g} MB")
    for name in args.tasks:
        rates = {}
        for n in (1, 2):
            r = launch(name, n, args.steps, args.bucket_mb)
            slowest = max(x["secs"] for x in r["ranks"])
            rate = sum(x["units"] for x in r["ranks"]) / slowest
            comm_ms = 1000 * sum(x["comm"] for x in r["ranks"]) / len(r["ranks"]) / args.steps
            step_ms = 1000 * slowest / args.steps
            rates[n] = rate
            print(f"{name:16s} ranks {n}: {rate:9.1f} {r['unit']:10s} step {step_ms:7.2f} ms, gradient exchange "
                  f"{comm_ms:6.2f} ms ({100 * comm_ms / step_ms:4.1f}% of the step)")
        print(f"{name:16s} scaling efficiency (2 ranks): {rates[2] / (2 * rates[1]):.2f}")


if __name__ == "__main__":
    main()
