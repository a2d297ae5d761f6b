"""Random streams for worker processes (``multiprocessing`` with ``fork`` or ``spawn``, MPI ranks).

A forked child inherits the parent's generators, so without care every worker repeats the
parent's draws (dropout masks, initialisers) and returns identical results.  Here every forked
child reseeds at once from ``(seed, n)``, ``n`` counting the parent's forks (1, 2, ...), so a
run stays reproducible and the parent's own stream is untouched.  ``seed_worker`` does the same
explicitly: use it as a ``Pool`` initializer (it works under ``spawn``, where nothing is
inherited) or call it with a rank.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np

from . import config

_forks = 0


def stream_seed(base: int, worker: int) -> int:
    """A 32-bit seed for worker ``worker`` of a run seeded with ``base`` (independent streams)."""
    return int(np.random.SeedSequence([int(base), int(worker)]).generate_state(1)[0]) or 1


def _reseed(seed: int) -> None:
    config.rng = np.random.default_rng(seed)
    be = config.current()
    if be is not None:
        be.seed(seed)
    else:  # chosen later: the backend's stream then starts from this seed too
        config.settings["random_seed"] = seed


def seed_worker(base: int | None = None, worker: int | None = None) -> int:
    """Give this process its own stream, derived from ``base`` (default: ``--dynet-seed``) and
    ``worker`` (default: the ``multiprocessing`` worker number, 1, 2, ...).  Returns the seed."""
    if base is None:
        base = int(config.settings["random_seed"] or 0)
    if worker is None:
        ident = multiprocessing.current_process()._identity
        worker = ident[-1] if ident else 0
    seed = stream_seed(base, worker)
    _reseed(seed)
    return seed


def _before_fork() -> None:
    global _forks
    _forks += 1


def _after_fork_in_child() -> None:
    _reseed(stream_seed(int(config.settings["random_seed"] or 0) or os.getppid(), _forks))


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
