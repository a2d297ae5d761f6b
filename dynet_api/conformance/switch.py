"""Running front-end code on a chosen backend, then putting the previous one back.

Parameters are bound to the backend they were created on and the graph to the
process's backend (config), so every graph-level check runs inside ``using(backend)``.
A backend known to the plugin registry is selected with
:func:`dynet_api.config.set_backend`; an unregistered Backend object (a test's
corrupted subclass, say) is installed the same way without the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .. import config
from ..backend import Backend
from ..graph import _cg
from ..plugins import registry


def resolve(backend: str | Backend) -> Backend:
    """A Backend object from a name (through the plugin registry) or the object itself."""
    if isinstance(backend, Backend):
        return backend
    return registry.get(backend)


def _install(b: Backend | None) -> None:
    rec = registry.records.get(b.name) if b is not None else None
    if rec is not None and rec.backend is b:
        config.set_backend(b.name)
        return
    config._backend = b
    _cg.renew()


@contextmanager
def using(backend: Backend) -> Iterator[Backend]:
    """Make ``backend`` the process's backend (config) for the duration of the block."""
    prev = config._backend
    if prev is backend:
        yield backend
        return
    _install(backend)
    try:
        yield backend
    finally:
        config._backend = prev
        _cg.renew()
