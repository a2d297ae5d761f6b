"""Model-file speed and memory: save and load of 1M, 10M and 50M floats, text and safetensors.

    python -m benchmarks.save_load [--sizes 1,10,50] [--dir DIR]

Each (size, format, operation) runs in a fresh subprocess, so its peak resident
memory (ru_maxrss) is its own; the table gives seconds and the peak minus the
process's resident memory just before the operation (the model itself is
already in memory then). The model is one 1000-column parameter matrix plus a
small one, on the default backend.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import numpy as np
import dynet_api as dy

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

n, path, op = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pc = dy.ParameterCollection()
big = pc.add_parameters((1000, n // 1000), init=dy.ConstInitializer(0.0))
small = pc.add_parameters(10)
if op == "save":
    big.set_value(np.random.default_rng(0).standard_normal((1000, n // 1000)).astype(np.float32))
base = rss_kb()
t = time.perf_counter()
if op == "save":
    pc.save(path)
else:
    pc.populate(path)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "extra_mb": max(0, peak - base) / 1024}))
"""


def run(n: int, path: str, op: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), path, op], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,50", help="model sizes in millions of floats")
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary folder)")
    args = ap.parse_args(argv)
    sizes = [int(float(s) * 1_000_000) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        print(f"{'floats':>10} {'format':<12} {'save s':>8} {'load s':>8} {'save +MB':>9} {'load +MB':>9} "
              f"{'file MB':>8}")
        for n in sizes:
            for fmt in ("txt", "safetensors"):
                path = os.path.join(d, f"m{n}.{fmt}")
                s = run(n, path, "save")
                size = os.path.getsize(path) / 2**20
                ld = run(n, path, "load")
                print(f"{n:>10,} {fmt:<12} {s['seconds']:>8.2f} {ld['seconds']:>8.2f} {s['extra_mb']:>9.0f} "
                      f"{ld['extra_mb']:>9.0f} {size:>8.0f}", flush=True)
                os.unlink(path)


if __name__ == "__main__":
    main()
