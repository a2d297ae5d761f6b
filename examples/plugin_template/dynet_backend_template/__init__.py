"""A dynet_api backend plugin in one module: the NumPy reference, counting every kernel call.

What a backend provides (see ``dynet_api.backend.Backend``):

* ``forward_kernels`` / ``backward_kernels``: dicts keyed by op name (the op
  table, ``dynet_api.ops``); ``f(xs, attrs, dim)`` and ``b(xs, y, dy, attrs,
  dim, i)``;
* tensor and parameter-storage methods (``from_numpy``, ``to_numpy``, ``iadd``,
  ``scatter_add_batch``, ``update``...), here inherited from the reference;
* ``unsupported``: the ops it knowingly lacks, with a reason; ``verify`` lists
  them instead of failing.

The plugin registers through the entry point in pyproject.toml and the
``dynet_api_backends`` hook below; building the backend is left to the factory,
so registering costs nothing.
"""

from __future__ import annotations

from collections import Counter

from dynet_backends.reference_numpy import ReferenceNumpyBackend

from dynet_api.hookspecs import BackendSpec, hookimpl

__version__ = "0.1.0"

# Ops this template leaves out on purpose, to show how a declared gap is reported.
DECLARED_GAPS = {"lgamma": "left out of the template to show a declared gap (the reference has it)"}


def _counted(table: dict, counts: Counter, kind: str) -> dict:
    def wrap(name, kernel):
        def counted(*args):
            counts[(kind, name)] += 1
            return kernel(*args)

        return counted

    return {name: wrap(name, k) for name, k in table.items() if name not in DECLARED_GAPS}


class CountingBackend(ReferenceNumpyBackend):
    """Computes what the reference computes; ``calls`` counts kernel calls by (kind, op)."""

    name = "counting_numpy"
    devices = ("CPU",)
    unsupported = dict(DECLARED_GAPS)

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.forward_kernels = _counted(ReferenceNumpyBackend.forward_kernels, self.calls, "forward")
        self.backward_kernels = _counted(ReferenceNumpyBackend.backward_kernels, self.calls, "backward")


@hookimpl
def dynet_api_backends():
    # A negative priority: installing the plugin never changes the default backend.
    return [BackendSpec("counting_numpy", CountingBackend, priority=-10,
                        description="NumPy reference with kernel-call counting (plugin template)")]
