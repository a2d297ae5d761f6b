"""Finds backend plugins through the entry-point group and builds them lazily.

Every backend, first-party ones included, arrives through the same group.  A
plugin that fails to import, or whose factory raises, is recorded with its
name and error; the others keep working.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import threading
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .backend import Backend
from .hookspecs import BackendSpec
from .ops import OP_LIST


class BackendChoiceError(Exception):
    """The backend asked for cannot be used (shown as one line when uncaught, see config)."""


class BackendRequestError(BackendChoiceError, ValueError):
    """The request itself is wrong: an unknown name, or a GPU asked of a CPU-only backend."""


class BackendUnavailableError(BackendChoiceError, RuntimeError):
    """The backend asked for (or every GPU backend, for a GPU request) is installed but cannot run here."""


def declares_gpu(spec: BackendSpec | None) -> bool:
    return spec is not None and any(d.upper().startswith("GPU") for d in getattr(spec, "devices", ()))


@dataclass
class BackendRecord:
    name: str
    spec: BackendSpec | None
    plugin: str
    backend: Backend | None = None
    error: str | None = None
    loaded: bool = field(default=False)


class Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, BackendRecord] = {}
        self.plugin_errors: dict[str, str] = {}
        self._discovered = False  # started (guards re-entry from the discovering thread)
        self._done = False  # finished: other threads wait on the lock until then
        # Discovery and loading run once even when threads race to the first use.
        self._lock = threading.RLock()

    # Discovery -------------------------------------------------------------
    def discover(self) -> None:
        if self._done:
            return
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            try:
                self._discover()
            finally:
                self._done = True

    def _discover(self) -> None:
        if os.environ.get("DYNET_API_DISABLE_PLUGIN_AUTOLOAD"):
            return
        blocked = {s for s in os.environ.get("DYNET_API_BLOCK_BACKENDS", "").split(",") if s}
        for ep in md.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            if ep.name in blocked or self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as e:  # a broken plugin must not break the others
                self.plugin_errors[ep.name] = f"{type(e).__name__}: {e}"
                continue
            self.register_plugin(plugin, ep.name)

    def register_plugin(self, plugin: object, name: str) -> None:
        try:
            self.pm.register(plugin, name=name)
            specs = plugin.dynet_api_backends()  # type: ignore[attr-defined]
        except Exception as e:
            self.plugin_errors[name] = f"{type(e).__name__}: {e}"
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            return
        for spec in specs or []:
            self.records[spec.name] = BackendRecord(spec.name, spec, name)

    # Access ----------------------------------------------------------------
    def names(self) -> list[str]:
        self.discover()
        return sorted(self.records)

    def load(self, name: str) -> BackendRecord:
        rec = self.records[name]
        if rec.backend is None and rec.error is None:
            with self._lock:
                self._load(rec)
        return rec

    def _load(self, rec: BackendRecord) -> None:
        if not rec.loaded:
            rec.loaded = True
            try:
                backend = rec.spec.factory()
                if not isinstance(backend, Backend):
                    raise TypeError(f"factory returned {type(backend).__name__}, not a Backend")
                rec.backend = backend
            except Exception as e:
                rec.error = f"{type(e).__name__}: {e}"

    def get(self, name: str) -> Backend:
        self.discover()
        if name not in self.records:
            known = ", ".join(self.names()) or "none"
            extra = "".join(f"; plugin {k!r} failed to load: {v}" for k, v in self.plugin_errors.items())
            raise BackendRequestError(f"unknown backend {name!r}; installed backends: {known}{extra}")
        rec = self.load(name)
        if rec.backend is None:
            raise BackendUnavailableError(f"backend {name!r} is unavailable: {rec.error}")
        return rec.backend

    def runs_on_gpu(self, name: str) -> bool:
        """Whether backend ``name`` declares a GPU device (False for an unknown name)."""
        self.discover()
        rec = self.records.get(name)
        return declares_gpu(rec.spec) if rec else False

    def best_gpu(self, asked: str) -> Backend:
        """The highest-priority available backend that declares a GPU; else why none can run (``asked``: the flag)."""
        self.discover()
        b, reasons = self._first_available(r for r in self.records.values() if declares_gpu(r.spec))
        if b is not None:
            return b
        if not reasons:
            raise BackendUnavailableError(f"{asked} asks for a GPU, but no installed backend runs on one "
                                     f"(installed: {', '.join(self.names()) or 'none'}); install one, e.g. "
                                     f"pip install \"dynet_api[cuda]\" on a machine with an NVIDIA GPU")
        raise BackendUnavailableError(f"{asked} asks for a GPU, but no GPU backend can run here: " + "; ".join(reasons)
                                 + " (see python -m dynet_api backends)")

    def _first_available(self, records) -> tuple[Backend | None, list[str]]:
        """The highest-priority of ``records`` that loads, else None and each one's reason."""
        reasons = []
        for rec in sorted(records, key=lambda r: -r.spec.priority):
            self.load(rec.name)
            if rec.backend is not None:
                return rec.backend, []
            reasons.append(f"{rec.name}: {rec.error}")
        return None, reasons

    def best(self) -> Backend:
        self.discover()
        b, reasons = self._first_available(self.records.values())
        if b is not None:
            return b
        for k, v in self.plugin_errors.items():
            reasons.append(f"plugin {k}: {v}")
        raise RuntimeError("no backend is available" + (" (" + "; ".join(reasons) + ")" if reasons else ""))

    def report(self) -> list[dict]:
        """One row per backend and per failed plugin, for ``python -m dynet_api backends``."""
        self.discover()
        rows = []
        table = {o.name for o in OP_LIST}
        for name in self.names():
            rec = self.load(name)
            b = rec.backend
            rows.append(
                {
                    "name": name,
                    "plugin": rec.plugin,
                    "priority": rec.spec.priority,
                    "status": "available" if b else f"unavailable: {rec.error}",
                    "devices": list(b.devices) if b else [],
                    "ops": len(b.supported_ops() & table) if b else 0,
                    "total_ops": len(table),
                }
            )
        for k, v in self.plugin_errors.items():
            rows.append({"name": k, "plugin": k, "priority": None, "status": f"plugin failed to load: {v}",
                         "devices": [], "ops": 0, "total_ops": len(table)})
        return rows


registry = Registry()
