"""``python -m dynet_api``: list the installed backends, or verify one against the reference.

    python -m dynet_api backends [--json]
    python -m dynet_api verify --backend NAME [--against reference_numpy] [--ops a,b] [--json FILE] [-v]

``verify`` exits 0 when every check passes, 1 when one fails, 2 when the
backend cannot be found or run.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import sys

from . import __version__
from .conformance.report import write_json, write_text
from .conformance.runner import verify
from .plugins import registry


def package_version() -> str:
    """The installed distribution's version, else the package's own ``__version__``."""
    try:
        return md.version("dynet_api")
    except md.PackageNotFoundError:
        return __version__


def cmd_backends(args: argparse.Namespace) -> int:
    rows = registry.report()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    head = f"{'name':<20}{'priority':>8}  {'devices':<16}{'ops':>9}  status"
    print(head)
    print("-" * len(head))
    for r in rows:
        devices = ",".join(r["devices"]) or "-"
        prio = "-" if r["priority"] is None else str(r["priority"])
        ops = f"{r['ops']}/{r['total_ops']}"
        print(f"{r['name']:<20}{prio:>8}  {devices:<16}{ops:>9}  {r['status']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    ops = [s.strip() for s in args.ops.split(",") if s.strip()] if args.ops else None
    try:
        rep = verify(args.backend, args.against, ops, fd=args.fd, edge_examples=args.edge_examples)
    except (ValueError, RuntimeError) as e:  # unknown or unavailable backend, unknown op
        print(f"verify: {e}", file=sys.stderr)
        return 2
    write_text(rep, sys.stdout, verbose=args.verbose)
    if args.json:
        write_json(rep, args.json)
        print(f"wrote {args.json}")
    return 0 if rep.ok else 1


def program_name(argv0: str | None = None) -> str:
    """The name the user typed: ``dynet-api`` for the console script, ``python -m dynet_api`` otherwise."""
    base = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
    return "python -m dynet_api" if base in ("__main__.py", "", "-c") else base


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or program_name(), description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backends", help="list installed backends: devices, status, ops implemented")
    b.add_argument("--json", action="store_true", help="print the rows as JSON")
    b.set_defaults(func=cmd_backends)
    v = sub.add_parser("verify", help="run the conformance suite on one backend against the reference")
    v.add_argument("--backend", required=True, help="backend to check (see `python -m dynet_api backends`)")
    v.add_argument("--against", default="reference_numpy", help="backend giving the expected numbers")
    v.add_argument("--ops", help="comma-separated op (or trainer class) names; default: everything")
    v.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    v.add_argument("--edge-examples", type=int, default=20, metavar="N",
                   help="random shape/attribute cases per op for the edge-case sweep (0: skip)")
    fd = v.add_mutually_exclusive_group()
    fd.add_argument("--fd", dest="fd", action="store_true", default=None,
                    help="also check the reference's float64 gradients by finite differences")
    fd.add_argument("--no-fd", dest="fd", action="store_false", help="skip the finite-difference check")
    v.add_argument("-v", "--verbose", action="store_true", help="one row per sample, not only per op")
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
