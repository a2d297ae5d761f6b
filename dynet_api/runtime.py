"""The process-wide state: the chosen backend and the random generator for initialisers.

The backend is chosen on first use (so ``dynet_config.set`` after import still
counts): ``dynet_config.set(backend=...)``, then ``--dynet-backend``, then
``DYNET_BACKEND``, else the highest-priority backend that is available.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

from . import config
from .backend import Backend
from .plugins import BackendChoiceError, BackendRequestError, registry

_backend: Backend | None = None
rng: np.random.Generator = np.random.default_rng()
_seed_applied = False
_choosing = threading.RLock()  # threads racing to the first use choose (and seed) one backend


def backend() -> Backend:
    global _backend
    if _backend is None:
        with _choosing:
            if _backend is None:
                try:
                    b = choose()
                except BackendChoiceError:
                    _short_report_if_uncaught()
                    raise
                _apply_seed(b)
                _backend = b
    return _backend


def choose() -> Backend:
    """The backend the settings ask for; a GPU request gets a backend that declares a GPU device, or an error."""
    name = config.settings["backend"]
    if config.gpu_requested():
        asked = config.gpu_request_source()
        if name:
            if not registry.runs_on_gpu(name):
                registry.get(name)  # an unknown name is reported as such first
                raise BackendRequestError(f"{asked} asks for a GPU, but {config.backend_source()} runs on the CPU "
                                         f"only; drop one of the two")
            return registry.get(name)
        return registry.best_gpu(asked)
    return registry.get(name) if name else registry.best()


def _short_report_if_uncaught() -> None:
    """Show an uncaught BackendChoiceError as its one-line message, not a traceback into the library.

    Only that error type is affected; every other exception keeps the previous hook.
    """
    previous = sys.excepthook
    if getattr(previous, "_dynet_api_short", False):
        return

    def hook(etype, value, tb):
        if issubclass(etype, BackendChoiceError):
            print(f"{os.path.basename(sys.argv[0]) or 'python'}: error: {value}", file=sys.stderr)
        else:
            previous(etype, value, tb)

    hook._dynet_api_short = True  # type: ignore[attr-defined]
    sys.excepthook = hook


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
    try:
        b = registry.get(name)
    except BackendChoiceError:
        _short_report_if_uncaught()
        raise
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
