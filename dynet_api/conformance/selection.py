"""Which backends the pytest suite checks: set by the pytest plugin's options or the environment.

``--conformance-backend NAME`` (repeatable) or ``DYNET_API_CONFORMANCE_BACKENDS=a,b``
picks backends; by default every installed backend is checked.  A backend that
is installed but cannot run here is skipped with its reason; a name that is
not installed at all fails, so a typo never passes silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..plugins import registry

ENV_BACKENDS = "DYNET_API_CONFORMANCE_BACKENDS"
ENV_OPS = "DYNET_API_CONFORMANCE_OPS"

settings: dict = {"backends": None, "against": "reference_numpy", "ops": None, "edge_examples": 20}


def configure(backends=None, against: str | None = None, ops: str | None = None, edge_examples: int | None = None):
    if backends:
        settings["backends"] = [n for b in backends for n in b.split(",") if n]
    if against:
        settings["against"] = against
    if ops:
        settings["ops"] = [n for n in ops.split(",") if n]
    if edge_examples is not None:
        settings["edge_examples"] = int(edge_examples)


@dataclass
class Target:
    name: str
    backend: object | None  # a Backend, or None when it cannot run
    reason: str = ""  # why not
    installed: bool = True


def backend_names() -> list[str]:
    if settings["backends"]:
        return list(settings["backends"])
    env = os.environ.get(ENV_BACKENDS)
    if env:
        return [n for n in env.split(",") if n]
    return registry.names()


def targets() -> list[Target]:
    out = []
    for name in backend_names():
        try:
            out.append(Target(name, registry.get(name)))
        except ValueError as e:  # not installed
            out.append(Target(name, None, str(e), installed=False))
        except RuntimeError as e:  # installed, cannot run here (no GPU...)
            out.append(Target(name, None, str(e)))
    return out


def op_filter() -> set[str] | None:
    ops = settings["ops"] or [n for n in os.environ.get(ENV_OPS, "").split(",") if n] or None
    return set(ops) if ops else None


def reference():
    return registry.get(settings["against"])
