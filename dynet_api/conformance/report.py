"""The verify report: one row per op (worst case), trainers, random ops, gaps, failures, summary; and JSON."""

from __future__ import annotations

import json
from typing import TextIO

from .compare import Err
from .results import FAIL, PASS, UNSUPPORTED, CaseResult
from .runner import Report

FAILURES_SHOWN = 3  # failing cases printed per op; --json has them all


def _e(err: Err | None) -> str:
    if err is None:
        return "-"
    if err.abs == float("inf"):
        return "inf"
    return f"{err.abs:.1e}/{err.rel:.1e}"


def _errs(errs: dict) -> str:
    return "  ".join(f"{k} {_e(v)}" for k, v in errs.items()) or "-"


def _table(rows: list[list[str]], w) -> None:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        w("  ".join(c.rjust(widths[k]) if k == 1 else c.ljust(widths[k]) for k, c in enumerate(r)).rstrip() + "\n")


def _status(rs: list[CaseResult]) -> str:
    if any(r.status == FAIL for r in rs):
        return "FAIL"
    if any(r.status == UNSUPPORTED for r in rs):
        return "unsupported"
    if all(r.status == PASS for r in rs):
        return "pass"
    return "skip"


def _worst(errs: list[Err | None]) -> Err | None:
    out = None
    for e in errs:
        if e is not None:
            out = e.worst(out)
    return out


def aggregate(rs: list[CaseResult]) -> dict:
    """The worst value, gradient and finite-difference errors over an op's cases."""
    keys = sorted({k for r in rs for k in r.grads})
    fkeys = sorted({k for r in rs for k in r.fd})
    return {
        "cases": len(rs), "status": _status(rs),
        "value": _worst([r.value for r in rs]),
        "grads": {k: _worst([r.grads.get(k) for r in rs]) for k in keys},
        "fd": {k: _worst([r.fd.get(k) for r in rs]) for k in fkeys},
    }


def _why(status: str, rs: list[CaseResult]) -> str:
    """The status, and for an unsupported or failed row the first case's reason (as --json gives it)."""
    if status in (PASS, "skip"):
        return status
    msgs = [m for r in rs if r.status == status.lower() for m in r.messages]
    return f"{status}: {msgs[0]}" if msgs else status


def _by_name(rs: list[CaseResult]) -> dict[str, list[CaseResult]]:
    out: dict[str, list[CaseResult]] = {}
    for r in rs:
        out.setdefault(r.name, []).append(r)
    return out


def write_text(rep: Report, out: TextIO, verbose: bool = False) -> None:
    """The human-readable report: errors are 'max abs/max rel'."""
    w = out.write
    w(f"dynet_api verify: backend {rep.backend!r} against {rep.against!r} "
      f"(tolerance {rep.tolerance}; errors shown as max abs/max rel)\n\n")
    op_rs = rep.section("op")
    # The finite-difference column only when that check ran (by default: on the reference itself).
    with_fd = any(r.fd for r in op_rs)
    rows = [["op", "cases", "value", "gradients"] + (["finite diff (reference)"] if with_fd else []) + ["status"]]
    for name, rs in _by_name(op_rs).items():
        a = aggregate(rs)
        fd = [_errs(a["fd"])] if with_fd else []
        rows.append([name, str(a["cases"]), _e(a["value"]), _errs(a["grads"]), *fd, _why(a["status"], rs)])
        if verbose and len(rs) > 1:
            rows.extend(["  " + r.case, "", _e(r.value), _errs(r.grads), *([_errs(r.fd)] if with_fd else []),
                         _why(r.status, [r])] for r in rs)
    if op_rs:
        _table(rows, w)
        if not with_fd:
            w("(the reference's own gradients against finite differences: add --fd)\n")
    for title, sec in (("leaves (front end)", "leaf"), ("random ops", "random"), ("trainers", "trainer")):
        rs = rep.section(sec)
        if not rs:
            continue
        w(f"\n{title}\n")
        for r in rs:
            w(f"  {r.name + ' ' + (r.case if sec == 'trainer' else ''):<40}{_e(r.value):<22}{_why(r.status, [r])}\n")
    edges = rep.section("edge")
    if edges:
        bad = [r for r in edges if r.status == FAIL]
        w(f"\nedge cases: {len(edges)} ops swept, {len(bad)} with failures\n")
    nonfinite = rep.section("nonfinite")
    if nonfinite:
        bad = [r for r in nonfinite if r.status == FAIL]
        w(f"non-finite inputs (NaN, +Inf, -Inf): {len(nonfinite)} ops checked, {len(bad)} with failures\n")
    batched = rep.section("autobatch")
    if batched:
        bad = [r for r in batched if r.status == FAIL]
        w(f"autobatching on vs off: {len(batched)} forests checked, {len(bad)} with failures\n")
    if rep.declared:
        w("\ndeclared unsupported (listed, not failures):\n")
        for k, v in sorted(rep.declared.items()):
            w(f"  {k}: {v}\n")
    fails = rep.failures()
    if fails:
        w(f"\nfailures ({len(fails)} cases):\n")
        for name, rs in _by_name(fails).items():
            for r in rs[:FAILURES_SHOWN]:
                w(r.explain() + "\n")
            if len(rs) > FAILURES_SHOWN:
                w(f"... and {len(rs) - FAILURES_SHOWN} more failing cases of {name} (see -v or --json)\n")
    w("\n" + summary_line(rep) + "\n")


def summary_line(rep: Report) -> str:
    s = rep.summary()
    parts = []
    for sec, label in (("op", "ops"), ("leaf", "leaves"), ("random", "random ops"), ("trainer", "trainers"),
                       ("edge", "edge-case sweeps"), ("nonfinite", "non-finite inputs"),
                       ("autobatch", "autobatch forests")):
        d = s[sec]
        if not d["checked"]:
            continue
        txt = f"{label} {d['passed']}/{d['checked']} pass"
        if d["failed"]:
            txt += f", {len(d['failed'])} FAIL ({', '.join(d['failed'][:8])}{', ...' if len(d['failed']) > 8 else ''})"
        if d["unsupported"]:
            txt += f", {len(d['unsupported'])} declared unsupported"
        if d["skipped"]:
            txt += f", {d['skipped']} skipped"
        parts.append(txt)
    verdict = "PASS" if rep.ok else "FAIL"
    return f"summary: {'; '.join(parts)} -- {verdict} in {rep.seconds:.1f} s"


def to_json(rep: Report) -> dict:
    ops = {}
    for name, rs in _by_name(rep.section("op")).items():
        a = aggregate(rs)
        ops[name] = {"cases": a["cases"], "status": a["status"],
                     "value": a["value"].to_dict() if a["value"] else None,
                     "grads": {k: v.to_dict() for k, v in a["grads"].items() if v},
                     "fd": {k: v.to_dict() for k, v in a["fd"].items() if v}}
    return {
        "backend": rep.backend, "against": rep.against, "ok": rep.ok, "seconds": rep.seconds,
        "summary": rep.summary(), "declared_unsupported": rep.declared, "ops": ops,
        "cases": [r.to_dict() for r in rep.results],
    }


def write_json(rep: Report, path: str) -> None:
    def clean(v):
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, float) and v in (float("inf"), float("-inf")):
            return str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    with open(path, "w") as f:
        json.dump(clean(to_json(rep)), f, indent=1)
        f.write("\n")
