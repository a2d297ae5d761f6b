"""The process state, in one module: the settings, the chosen backend and the initialisers' random generator.

Settings come from DyNet's ``--dynet-*`` flags, ``dynet_config.set`` and the environment.  The
backend is chosen on first use (so ``dynet_config.set`` after import still counts):
``dynet_config.set(backend=...)``, then ``--dynet-backend``, then ``DYNET_BACKEND``, else the
highest-priority backend that is available.  Layers above (the graph) learn of a change of backend
through :func:`on_backend_change`; this module imports nothing above the backend contract.
"""

from __future__ import annotations

import difflib
import os
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import Backend
from .plugins import BackendChoiceError, BackendRequestError, registry

# Values in force; None means "not given".
settings: dict = {
    "backend": None,
    "mem": None,
    "random_seed": 0,
    "autobatch": 0,
    "profiling": 0,
    "weight_decay": 0.0,
    "shared_parameters": 0,
    "requested_gpus": 0,
    "devices": None,
    "threads": 1,
    "gpu_ids": None,
}
_explicit: set[str] = set()  # keys set through dynet_config.set
_from_argv: set[str] = set()  # keys given as --dynet-* flags

_FLAGS = {
    "--dynet-backend": ("backend", str),
    "--dynet-mem": ("mem", str),
    "--dynet-seed": ("random_seed", int),
    "--dynet-autobatch": ("autobatch", int),
    "--dynet-profiling": ("profiling", int),
    "--dynet-weight-decay": ("weight_decay", float),
    "--dynet-gpus": ("requested_gpus", int),
    "--dynet-devices": ("devices", str),
    "--dynet-threads": ("threads", int),
    "--dynet-gpu-ids": ("gpu_ids", str),  # DyNet's deprecated spelling of --dynet-devices GPU:i,...
    "--dynet-shared-parameters": ("shared_parameters", int),
}
# Flags DyNet accepts without a value (--dynet-gpu means --dynet-gpus 1; --dynet-viz turns on graphviz output).
_SWITCHES = ("--dynet-gpu", "--dynet-viz")
KNOWN_FLAGS: tuple[str, ...] = tuple(sorted((*_FLAGS, *_SWITCHES)))


class DynetFlagWarning(UserWarning):
    """A ``--dynet-*`` flag that DyNet does not know (most likely a typo); it is ignored."""


def misspelled_flags(argv: list[str]) -> list[str]:
    """One warning text per ``--dynet-*`` flag DyNet does not know, naming the closest flag it does."""
    out = []
    for arg in argv:
        key = arg.partition("=")[0].replace("_", "-")
        if key.startswith("--dynet-") and key not in KNOWN_FLAGS:
            close = difflib.get_close_matches(key, KNOWN_FLAGS, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else f"; known flags: {', '.join(KNOWN_FLAGS)}"
            out.append(f"unknown flag {arg.partition('=')[0]} is ignored{hint}")
    return out


def gpu_requested() -> bool:
    """Whether the program asked for a GPU: --dynet-gpus N>0, --dynet-gpu, a GPU in --dynet-devices or set_gpu()."""
    devices = settings["devices"] or settings["gpu_ids"] or ""
    return bool(settings["requested_gpus"]) or "GPU" in str(devices).upper() or bool(settings["gpu_ids"])


def gpu_request_source() -> str:
    """How the GPU was asked for, in the words the user wrote, for error messages."""
    if "requested_gpus" in _from_argv and "requested_gpus" not in _explicit:
        return f"--dynet-gpus {settings['requested_gpus']}"
    if "devices" in _from_argv:
        return f"--dynet-devices {settings['devices']}"
    if "gpu_ids" in _from_argv:
        return f"--dynet-gpu-ids {settings['gpu_ids']}"
    return "dynet_config.set_gpu()"


def backend_source() -> str:
    """Where the backend name in force came from, for error messages."""
    if "backend" in _explicit:
        return f"dynet_config.set(backend={settings['backend']!r})"
    if "backend" in _from_argv:
        return f"--dynet-backend {settings['backend']}"
    return f"DYNET_BACKEND={settings['backend']}"


def parse_argv(argv: list[str]) -> dict:
    """Read ``--dynet-x VALUE`` / ``--dynet-x=VALUE`` (and ``--dynet_x``); argv is left as it is."""
    found: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, val = arg.partition("=")
        key = key.replace("_", "-")
        if key == "--dynet-gpu":
            found["requested_gpus"] = 1
        elif key == "--dynet-viz":
            pass
        elif key in _FLAGS:
            name, conv = _FLAGS[key]
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{key} needs a value")
                i += 1
                val = argv[i]
            try:
                found[name] = conv(val)
            except ValueError:
                raise ValueError(f"{key}: bad value {val!r}") from None
            check_value(name, found[name])
        i += 1
    return found


def check_value(name: str, value) -> None:
    """Reject settings DyNet's init rejects, before they can do harm."""
    if name == "weight_decay" and value is not None and not 0.0 <= float(value) < 1.0:
        raise ValueError(f"[dynet] weight decay parameter must be between 0 and 1 (probably very small like 1e-6), "
                         f"got {value}")


def parse_mem_mb(value) -> int:
    """``--dynet-mem`` as DyNet writes it: "512" or "fwd,bwd,params[,scratch]" (MB, summed); 0: no limit."""
    if value is None or value == "":
        return 0
    parts: list = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value).split(",")
    try:
        mb = sum(int(float(p)) for p in parts)
    except ValueError:
        raise ValueError(f"mem: expected megabytes such as '512' or '256,256,512', got {value!r}") from None
    if mb < 0:
        raise ValueError(f"mem: must not be negative, got {value!r}")
    return mb


def mem_limit_bytes() -> int:
    """The ``mem`` setting (``--dynet-mem``) in bytes; 0: no limit."""
    return parse_mem_mb(settings.get("mem")) << 20


def load_from_command_line() -> None:
    for text in misspelled_flags(sys.argv[1:]):
        # Shown as "<program>:0: DynetFlagWarning: ...": the flag is on the command line, not in any source line.
        warnings.warn_explicit(text, DynetFlagWarning, os.path.basename(sys.argv[0]) or "<command line>", 0)
    for k, v in parse_argv(sys.argv[1:]).items():
        _from_argv.add(k)
        if k not in _explicit:
            settings[k] = v
    if settings["backend"] is None and "backend" not in _explicit:
        settings["backend"] = os.environ.get("DYNET_BACKEND") or None


def given(name: str) -> bool:
    """Whether the program chose this setting (a flag or dynet_config.set), so a backend may pick its own default."""
    return name in _explicit or name in _from_argv


def given_value(name: str, default: Any) -> Any:
    """The setting's value where the program chose it (see :func:`given`), else ``default`` (one
    call where every ``renew_cg`` asks)."""
    return settings.get(name) if name in _explicit or name in _from_argv else default


def set_values(**kw) -> None:
    for k, v in kw.items():
        if k not in settings and k not in ("gpu_mask",):
            raise TypeError(f"dynet_config.set: unknown setting {k!r}; known: {', '.join(sorted(settings))}")
        check_value(k, v)
        settings[k] = v
        _explicit.add(k)


# ------------------------------------------------------------------ the backend and the random generator

_backend: Backend | None = None
rng: np.random.Generator = np.random.default_rng()
_choosing = threading.RLock()  # threads racing to the first use choose (and seed) one backend
_backend_listeners: list[Callable[[], object]] = []  # called after set_backend switches (the graph renews itself)


def on_backend_change(listener: Callable[[], object]) -> None:
    """Call ``listener()`` whenever :func:`set_backend` switches to another backend (a higher layer registers)."""
    _backend_listeners.append(listener)


def backend() -> Backend:
    """The backend new graphs and collections use, chosen (and seeded) on the first call."""
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
    name = settings["backend"]
    if gpu_requested():
        asked = gpu_request_source()
        if name:
            if not registry.runs_on_gpu(name):
                registry.get(name)  # an unknown name is reported as such first
                raise BackendRequestError(f"{asked} asks for a GPU, but {backend_source()} runs on the CPU "
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
    seed = int(settings["random_seed"] or 0)
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
        for listener in _backend_listeners:
            listener()
    return b


def configure_from_settings() -> None:
    """Switch to the backend the settings name, if one is already in use and it differs."""
    name = settings["backend"]
    if name and _backend is not None and _backend.name != name:
        set_backend(name)


def reset_random_seed(seed: int) -> None:
    """Reseed the initialisers' generator and the backend (or the backend chosen later)."""
    global rng
    rng = np.random.default_rng(seed)
    settings["random_seed"] = seed
    if _backend is not None:
        _backend.seed(seed)
