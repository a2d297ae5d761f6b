"""Per-node cost of a dynamic graph: the 1000-step chain ``h = tanh(W*h + b)`` of 16-dim vectors.

    python -m benchmarks.chain [--steps 1000] [--dim 16] [--seconds 2] [--backends cpu_eigen,reference_numpy]
                               [--no-torch] [--no-profile]

Each step adds three nodes (matmul, add, tanh), so "per node" is the time over
3 * steps.  Three phases are timed for every dynet_api backend:

* construct: ``renew_cg`` and building the chain (nothing is computed: graphs are lazy);
* construct + forward: the same, then the value of ``sum_elems(h)``;
* construct + forward + backward: the same, then ``backward()`` into W and b.

PyTorch eager (one thread, ``torch.set_num_threads(1)``) computes while it
builds, so it has no construct-only figure; its "forward" keeps the autograd
tape (parameters require grad), its "backward" is ``h.sum().backward()``.
The gradients of a long tanh chain decay into denormal floats, which cost
x86 CPUs ~100x per operation: cpu_eigen flushes them to zero while a graph
runs, and PyTorch gets ``torch.set_flush_denormal(True)`` to match (NumPy,
hence reference_numpy, cannot).
Every cell is the best of repeated runs (the machine may be shared), the
backends interleaved in rounds so load changes hit them alike.  The profile
splits cpu_eigen's time into Python construction, marshalling the new nodes
into C++, the C++ forward and the C++ backward.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

PHASES = ("construct", "construct+forward", "construct+forward+backward")
DEFAULT_BACKENDS = ("cpu_eigen", "reference_numpy")


# ------------------------------------------------------------------ dynet_api


class DynetChain:
    """One backend's model and a timed chain run."""

    def __init__(self, backend: str, steps: int, dim: int) -> None:
        import dynet_api as dy

        self.dy = dy
        dy.set_backend(backend)
        self.backend = backend
        self.steps = steps
        self.m = dy.ParameterCollection()
        self.W = self.m.add_parameters((dim, dim), init=dy.NormalInitializer(0, 0.1))
        self.b = self.m.add_parameters(dim)
        self.x = np.linspace(-1, 1, dim)

    def build(self):
        dy = self.dy
        dy.renew_cg()
        W, b = self.W, self.b
        h = dy.inputVector(self.x)
        for _ in range(self.steps):
            h = dy.tanh(W * h + b)
        return h

    def run(self, phase: int) -> float:
        """Seconds for one run of phase 0, 1 or 2."""
        if self.dy.backend_name() != self.backend:
            # Switching backends starts the graph's shape memo and executor afresh (its value and
            # gradient memory too); a program stays on one backend, so that first graph is not
            # timed, and it runs all three phases (built only, it left the first timed forward
            # and backward to fill the new executor's memory: +0.07 us/node on cpu_eigen).
            self.dy.set_backend(self.backend)
            loss = self.dy.sum_elems(self.build())
            loss.value()
            loss.backward()
        t0 = time.perf_counter()
        h = self.build()
        if phase >= 1:
            loss = self.dy.sum_elems(h)
            loss.value()
            if phase == 2:
                loss.backward()
        return time.perf_counter() - t0

    def profile(self, reps: int) -> dict[str, float]:
        """Best seconds of: construction, first forward (marshalling + compute), a recomputed forward, backward."""
        self.dy.set_backend(self.backend)
        best = {"construct": 1e9, "forward": 1e9, "recompute": 1e9, "backward": 1e9}
        for _ in range(reps):
            t0 = time.perf_counter()
            h = self.build()
            loss = self.dy.sum_elems(h)
            t1 = time.perf_counter()
            loss.forward()
            t2 = time.perf_counter()
            loss.forward(recalculate=True)  # nodes already in C++: compute only
            t3 = time.perf_counter()
            loss.backward()
            t4 = time.perf_counter()
            for k, v in zip(best, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                best[k] = min(best[k], v)
        return best


# ------------------------------------------------------------------ DyNet 2.1.2 (in its venv, benchmarks/dynet_peer.py)


class PeerChain:
    """The same chain on DyNet itself; DyNet does not flush denormals (its own behaviour, kept)."""

    def __init__(self, steps: int, dim: int) -> None:
        import dynet as dy

        self.dy = dy
        self.steps = steps
        self.m = dy.ParameterCollection()
        self.W = self.m.add_parameters((dim, dim), init=dy.NormalInitializer(0, 0.1))
        self.b = self.m.add_parameters(dim, init=dy.ConstInitializer(0.0))
        self.x = np.linspace(-1, 1, dim).tolist()

    def run(self, phase: int) -> float:
        dy = self.dy
        t0 = time.perf_counter()
        dy.renew_cg()
        W, b = self.W, self.b  # Parameters are Expressions in DyNet 2.1
        h = dy.inputVector(self.x)
        for _ in range(self.steps):
            h = dy.tanh(W * h + b)
        if phase >= 1:
            loss = dy.sum_elems(h)
            loss.value()
            if phase == 2:
                loss.backward()
        return time.perf_counter() - t0


def dynet_side(steps: int, dim: int, seconds: float) -> list:
    """DyNet's best seconds per phase (run by the worker in DyNet's venv)."""
    return measure({"dynet": PeerChain(steps, dim)}, seconds)["dynet"]


# ------------------------------------------------------------------ PyTorch


class TorchChain:
    def __init__(self, steps: int, dim: int) -> None:
        import torch

        torch.set_num_threads(1)
        torch.set_flush_denormal(True)  # as cpu_eigen does while a graph runs: the chain's gradients decay
        self.torch = torch
        self.steps = steps
        g = torch.Generator().manual_seed(0)
        self.W = (0.1 * torch.randn(dim, dim, generator=g)).requires_grad_()
        self.b = torch.zeros(dim, requires_grad=True)
        self.x = torch.linspace(-1, 1, dim)

    def run(self, phase: int) -> float | None:
        if phase == 0:
            return None  # eager: there is no construction without computing
        W, b = self.W, self.b
        t0 = time.perf_counter()
        h = self.x
        for _ in range(self.steps):
            h = self.torch.tanh(W @ h + b)
        loss = h.sum()
        loss.item()
        if phase == 2:
            loss.backward()
        dt = time.perf_counter() - t0
        W.grad = b.grad = None
        return dt


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ measuring and printing


def measure(runners: dict, seconds: float, min_reps: int = 5) -> dict[str, list[float | None]]:
    """Best time per (runner, phase), rounds interleaved until the time budget is spent."""
    best: dict[str, list[float | None]] = {k: [None] * len(PHASES) for k in runners}
    for r in runners.values():  # warm-up: first-graph allocations, imports
        for p in range(len(PHASES)):
            r.run(p)
    deadline = time.perf_counter() + seconds
    reps = 0
    while reps < min_reps or time.perf_counter() < deadline:
        for name, r in runners.items():
            for p in range(len(PHASES)):
                t = r.run(p)
                if t is not None and (best[name][p] is None or t < best[name][p]):
                    best[name][p] = t
        reps += 1
    return best


def format_table(best: dict, nodes: int) -> str:
    def us(t):
        return "n/a" if t is None else f"{t / nodes * 1e6:.3f}"

    w = max(len(k) for k in best) + 2
    lines = [f"{'us per node':<{w}}" + "".join(f"{p:>28}" for p in PHASES)]
    for name, ts in best.items():
        lines.append(f"{name:<{w}}" + "".join(f"{us(t):>28}" for t in ts))
    if "cpu_eigen" in best:
        base = best["cpu_eigen"]
        for name, ts in best.items():
            if name == "cpu_eigen":
                continue
            cells = ["n/a" if t is None or b is None else f"{t / b:.1f}x" for t, b in zip(ts, base, strict=True)]
            lines.append(f"{name + ' / cpu_eigen':<{w}}" + "".join(f"{c:>28}" for c in cells))
    return "\n".join(lines)


def format_profile(name: str, prof: dict, nodes: int) -> str:
    total = prof["construct"] + prof["forward"] + prof["backward"]
    marshal = max(prof["forward"] - prof["recompute"], 0.0)
    parts = [("Python construction", prof["construct"]), ("marshalling new nodes", marshal),
             ("forward compute", prof["recompute"]), ("backward", prof["backward"])]
    lines = [f"{name}: where the time per node goes (best of runs; total {total / nodes * 1e6:.3f} us)"]
    for label, t in parts:
        lines.append(f"  {label:<24}{t / nodes * 1e6:8.3f} us  {100 * t / total:5.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None, backends: list[str] | None = None, seconds: float = 2.0,
         steps: int = 1000, dim: int = 16, torch: bool = True, profile: bool = True, peer=None) -> dict:
    """Run the benchmark and print its table; returns the best times (seconds) per runner and phase."""
    if argv is not None:
        ap = argparse.ArgumentParser(prog="python -m benchmarks.chain", description=__doc__.split("\n\n")[0])
        ap.add_argument("--steps", type=int, default=steps)
        ap.add_argument("--dim", type=int, default=dim)
        ap.add_argument("--seconds", type=float, default=seconds, help="time budget for the repeated runs")
        ap.add_argument("--backends", default=",".join(DEFAULT_BACKENDS), help="comma-separated dynet_api backends")
        ap.add_argument("--no-torch", action="store_true")
        ap.add_argument("--no-profile", action="store_true")
        ap.add_argument("--no-dynet", action="store_true", help="leave DyNet 2.1.2 out even when its venv exists")
        a = ap.parse_args(argv)
        steps, dim, seconds = a.steps, a.dim, a.seconds
        backends = [b for b in a.backends.split(",") if b]
        torch, profile = not a.no_torch, not a.no_profile
        from .dynet_peer import Peer, venv_python

        if not a.no_dynet and venv_python() is not None:
            with Peer() as p:
                return main(backends=backends, seconds=seconds, steps=steps, dim=dim, torch=torch, profile=profile,
                            peer=p)
    from dynet_api.plugins import registry

    names = list(dict.fromkeys(list(backends or []) + list(DEFAULT_BACKENDS)))
    runners: dict = {}
    for nm in names:
        try:
            registry.get(nm)
        except (ValueError, RuntimeError) as e:
            print(f"chain: skipping backend {nm}: {e}")
            continue
        runners[nm] = DynetChain(nm, steps, dim)
    if torch and have_torch():
        runners["pytorch_eager"] = TorchChain(steps, dim)
    elif torch:
        print("chain: PyTorch is not installed; its column is left out (pip install torch==2.13.0)")
    nodes = 3 * steps
    print(f"chain benchmark: {steps} steps of h = tanh(W*h + b), dim {dim}, {nodes} nodes, one thread")
    best = measure(runners, seconds)
    if peer is not None:  # not interleaved: DyNet runs in its own process, after the others
        best["dynet_2.1.2"] = peer.call("chain", steps=steps, dim=dim, seconds=seconds)
    else:
        from .dynet_peer import MISSING

        print(f"chain: DyNet 2.1.2: {MISSING}")
    print(format_table(best, nodes))
    if profile and "cpu_eigen" in runners:
        print()
        print(format_profile("cpu_eigen", runners["cpu_eigen"].profile(20), nodes))
    return best


if __name__ == "__main__":
    main(sys.argv[1:])
