"""Hooks a backend plugin implements.

A plugin is any object (usually a module) named by an entry point in the group
``dynet_api.backends``.  It implements ``dynet_api_backends`` and returns one or
more :class:`BackendSpec`; registering must stay cheap, so the spec carries a
factory that builds the backend only when it is first needed (it may raise
:class:`dynet_api.backend.BackendUnavailable` to say why it cannot run here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pluggy

PROJECT = "dynet_api"
ENTRY_POINT_GROUP = "dynet_api.backends"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class BackendSpec:
    """What a plugin registers: a name, a factory and a default-choice priority."""

    name: str
    factory: Callable[[], object]
    priority: int = 0  # the highest available priority is the default backend
    description: str = ""
    # The kinds of device the backend runs on ("CPU", "GPU"), declared before it is built, so a
    # GPU request can pick a GPU backend (and explain why none runs) without naming one.
    devices: tuple[str, ...] = ("CPU",)


@hookspec
def dynet_api_backends() -> list[BackendSpec]:  # type: ignore[empty-body]
    """Return the backends this plugin provides."""
