"""What every example shares: its command line, its progress bar, its data files.

Kept free of dynet_api so the examples still run under DyNet with their import changed back.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Iterable

# DyNet's flags that take no value; every other --dynet-* flag is followed by one (or written --flag=value).
_DYNET_SWITCHES = {"--dynet-gpu", "--dynet-viz"}


def without_dynet_flags(argv: list[str]) -> list[str]:
    """``argv`` less the ``--dynet-*`` flags and their values, which the library reads itself."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        key = arg.partition("=")[0].replace("_", "-")
        if not key.startswith("--dynet-"):
            out.append(arg)
        elif "=" not in arg and key not in _DYNET_SWITCHES and i + 1 < len(argv):
            i += 1  # skip the flag's value too
        i += 1
    return out


def parse_args(ap: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The example's own flags; a mistyped one is an error (argparse's usual exit 2), DyNet's are left to it."""
    return ap.parse_args(without_dynet_flags(sys.argv[1:] if argv is None else list(argv)))


def progress(items: Iterable, desc: str, off: bool = False):
    """A tqdm bar over ``items`` (shown only on a terminal, never with ``off``); the items alone without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are optional
        return _Plain(items)
    return tqdm(items, desc=desc, leave=False, disable=True if off else None)


class _Plain:
    """Iterates like a disabled tqdm bar, for machines without tqdm."""

    def __init__(self, items: Iterable) -> None:
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def write(self, text: str) -> None:
        print(text)


def backend_name(dy) -> str:
    """The backend the example runs on ("dynet" under DyNet itself, which has only one)."""
    return dy.backend_name() if hasattr(dy, "backend_name") else "dynet"


def stdlib_source(module: str) -> str:
    """The source of a standard-library module, whether it is a file or (like pathlib since 3.13) a package."""
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec else None
    if spec is not None and not (origin or "").endswith(".py"):  # frozen (os since 3.11): its module knows the file
        origin = getattr(importlib.import_module(module), "__file__", None)
    if not origin or not origin.endswith(".py") or not os.path.exists(origin):
        raise FileNotFoundError(f"no Python source for the standard-library module {module!r}")
    if spec.submodule_search_locations:  # a package: every .py file in it, in a fixed order
        root = os.path.dirname(origin)
        files = [os.path.join(root, f) for f in sorted(os.listdir(root)) if f.endswith(".py")]
    else:
        files = [origin]
    parts = []
    for path in files:
        with open(path, encoding="utf8") as f:
            parts.append(f.read())
    return "\n".join(parts)
