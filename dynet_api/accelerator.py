"""The optional C accelerator (csrc/fastgraph.c), switched on or off here and nowhere else.

``fastgraph`` is the compiled module, or None when it is not built or when the environment sets
``DYNET_API_PURE_PYTHON`` (to anything but ``0``): every module that has a C fast path reads this
name, so the pure-Python path is one environment variable away.  The graph module configures it
(``graph.py``: ``configure`` and ``configure_leaves``); other modules only call its functions.
"""

from __future__ import annotations

import os
from types import ModuleType

PURE_PYTHON_VARIABLE = "DYNET_API_PURE_PYTHON"


def _load() -> ModuleType | None:
    if os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        return None
    try:
        from . import _fastgraph  # type: ignore[attr-defined]  # compiled, no stub
    except ImportError:  # a build without a C compiler: the Python twins run
        return None
    return _fastgraph


fastgraph: ModuleType | None = _load()
