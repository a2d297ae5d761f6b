"""The process-wide state: the chosen backend and the random generator for initialisers.

The backend is chosen on first use (so ``dynet_config.set`` after import still
counts): ``dynet_config.set(backend=...)``, then ``--dynet-backend``, then
``DYNET_BACKEND``, else the highest-priority backend that is available.
"""

from __future__ import annotations

import threading

import numpy as np

from . import config
from .backend import Backend
from .plugins import registry

_backend: Backend | None = None
rng: np.random.Generator = np.random.default_rng()
_seed_applied = False
_choosing = threading.RLock()  # threads racing to the first use choose (and seed) one backend


def backend() -> Backend:
    global _backend
    if _backend is None:
        with _choosing:
            if _backend is None:
                name = config.settings["backend"]
                b = registry.get(name) if name else registry.best()
                _apply_seed(b)
                _backend = b
    return _backend


def current() -> Backend | None:
    """The backend in use, or None while none has been chosen (never chooses one)."""
    return _backend


def _apply_seed(b: Backend) -> None:
    global rng
    seed = int(config.settings["random_seed"] or 0)
    if seed:
        rng = np.random.default_rng(seed)
        b.seed(seed)
    else:
        b.seed(int(np.random.SeedSequence().generate_state(1)[0]))


def set_backend(name: str) -> Backend:
    """Make ``name`` the default backend for new graphs and parameter collections."""
    global _backend
    b = registry.get(name)
    if b is not _backend:
        _apply_seed(b)
        _backend = b
        from .graph import _cg

        _cg.renew()
    return b


def configure_from_settings() -> None:
    name = config.settings["backend"]
    if name and _backend is not None and _backend.name != name:
        set_backend(name)


def reset_random_seed(seed: int) -> None:
    global rng
    rng = np.random.default_rng(seed)
    config.settings["random_seed"] = seed
    if _backend is not None:
        _backend.seed(seed)
