"""Runs every conformance check of one backend against the reference and collects a Report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..backend import Backend
from ..ops import OP_LIST, OPS
from .autobatch import MIXED_SEEDS, check_autobatch, check_mixed
from .compare import tolerance
from .edge import attr_domain_ops, check_attr_domains, check_edges
from .leaves import SCENARIOS, check_leaf
from .nonfinite import check_nonfinite
from .opcheck import check_sample, coverage, grad_inputs
from .randomness import check_random
from .results import FAIL, PASS, SKIP, UNSUPPORTED, CaseResult
from .samples import compute_ops, missing_samples_reason, random_ops, samples
from .switch import resolve
from .trainercheck import VARIANTS, check_trainer, trainer_classes

SECTIONS = ("ops", "leaves", "random", "trainers", "edges", "nonfinite", "autobatch")
EDGE_EXAMPLES = 20


@dataclass
class Report:
    backend: str
    against: str
    results: list[CaseResult] = field(default_factory=list)
    declared: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    tolerance: str = ""

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def section(self, name: str) -> list[CaseResult]:
        return [r for r in self.results if r.section == name]

    def summary(self) -> dict:
        out = {}
        for sec in ("op", "leaf", "random", "trainer", "edge", "nonfinite", "autobatch"):
            rs = self.section(sec)
            names = sorted({r.name for r in rs})
            failed = sorted({r.name for r in rs if r.status == FAIL})
            unsup = sorted({r.name for r in rs if r.status == UNSUPPORTED} - set(failed))
            passed = {r.name for r in rs if r.status == PASS} - set(failed) - set(unsup)
            out[sec] = {"checked": len(names), "cases": len(rs), "failed": failed, "unsupported": unsup,
                        "passed": len(passed), "skipped": len(set(names) - passed - set(failed) - set(unsup))}
        return out


def _only(names: list[str] | None) -> tuple[set[str] | None, set[str] | None]:
    """Split a --ops list into op names and trainer names; unknown names raise ValueError."""
    if names is None:
        return None, None
    trainers = {c.__name__ for c in trainer_classes()}
    bad = [n for n in names if n not in OPS and n not in trainers]
    if bad:
        raise ValueError(f"unknown op or trainer {', '.join(map(repr, bad))}; ops are the op table's names "
                         f"(e.g. tanh, matmul), trainers e.g. {sorted(trainers)[0]}")
    return {n for n in names if n in OPS}, {n for n in names if n in trainers}


def op_results(be: Backend, ref: Backend, op, *, fd: bool | None = None) -> list[CaseResult]:
    """All sample cases of one op (or one coverage/no-samples row)."""
    ss = samples(op)
    needs_bwd = bool(ss and grad_inputs(ss[0]))
    status, msg = coverage(be, op.name, needs_bwd)
    if status is not None:
        r = CaseResult("op", be.name, op.name, "coverage", status=status, messages=[msg])
        return [r]
    if not ss:
        return [CaseResult("op", be.name, op.name, "no-samples", status=FAIL, messages=[missing_samples_reason(op)])]
    return [check_sample(be, ref, s, fd=fd) for s in ss]


def leaf_ops() -> list[str]:
    return [o.name for o in OP_LIST if o.leaf and not o.random]


def leaf_result(be: Backend, name: str) -> CaseResult:
    if name not in SCENARIOS:
        return CaseResult("leaf", be.name, name, "front-end", status=FAIL,
                          messages=[f"leaf op {name!r} has no front-end scenario in dynet_api.conformance.leaves"])
    return check_leaf(be, name)


def verify(backend: str | Backend, against: str | Backend = "reference_numpy", ops: list[str] | None = None, *,
           fd: bool | None = None, edge_examples: int = EDGE_EXAMPLES, sections=SECTIONS, progress=None) -> Report:
    """Check ``backend`` against ``against`` over the whole op table, the leaves, random ops and trainers.

    ``ops`` restricts the run to those op (and trainer class) names.  ``fd``
    (finite differences of the reference's float64 gradients) defaults to on
    when the backend is the reference itself.  ``progress(text)`` is called
    before each op.
    """
    t0 = time.perf_counter()
    be, ref = resolve(backend), resolve(against)
    op_names, trainer_names = _only(ops)
    rep = Report(be.name, ref.name, declared=dict(be.unsupported), tolerance=str(tolerance(be.dtype, ref.dtype)))

    def wanted(name: str) -> bool:
        return op_names is None or name in op_names

    if "ops" in sections:
        for op in compute_ops():
            if wanted(op.name):
                if progress:
                    progress(op.name)
                rep.results.extend(op_results(be, ref, op, fd=fd))
    if "leaves" in sections:
        rep.results.extend(leaf_result(be, n) for n in leaf_ops() if wanted(n))
    if "random" in sections:
        rep.results.extend(check_random(be, op) for op in random_ops() if wanted(op.name))
    if "trainers" in sections and (ops is None or trainer_names):
        for cls in trainer_classes():
            if trainer_names is None or cls.__name__ in trainer_names:
                rep.results.extend(check_trainer(be, ref, cls, v) for v in VARIANTS)
    if "edges" in sections and edge_examples > 0:
        for op in compute_ops():
            if wanted(op.name):
                r = check_edges(be, op, edge_examples)
                if r.status != SKIP or r.messages[:1] != ["no kernel (see coverage)"]:
                    rep.results.append(r)
        for op in attr_domain_ops():
            if wanted(op.name):
                r = check_attr_domains(be, op)
                if r.status != SKIP:
                    rep.results.append(r)
    if "nonfinite" in sections:
        for op in compute_ops():
            if wanted(op.name):
                r = check_nonfinite(be, ref, op)
                if r.status != UNSUPPORTED:
                    rep.results.append(r)
    if "autobatch" in sections:
        for op in compute_ops():
            if wanted(op.name):
                r = check_autobatch(be, op)
                if r.status not in (UNSUPPORTED, SKIP):
                    rep.results.append(r)
        if op_names is None:
            rep.results.extend(check_mixed(be, seed) for seed in MIXED_SEEDS)
    rep.seconds = time.perf_counter() - t0
    return rep


__all__ = ["Report", "verify", "SECTIONS", "PASS", "FAIL", "UNSUPPORTED", "SKIP"]
