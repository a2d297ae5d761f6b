"""Global settings: DyNet's ``--dynet-*`` flags, ``dynet_config.set`` and the environment."""

from __future__ import annotations

import difflib
import os
import sys
import warnings

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


def set_values(**kw) -> None:
    for k, v in kw.items():
        if k not in settings and k not in ("gpu_mask",):
            raise TypeError(f"dynet_config.set: unknown setting {k!r}; known: {', '.join(sorted(settings))}")
        check_value(k, v)
        settings[k] = v
        _explicit.add(k)
