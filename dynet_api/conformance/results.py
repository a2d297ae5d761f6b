"""What one conformance check found, in a form the CLI table, JSON and pytest share."""

from __future__ import annotations

from dataclasses import dataclass, field

from .compare import Err

PASS, FAIL, UNSUPPORTED, SKIP = "pass", "fail", "unsupported", "skip"


@dataclass
class CaseResult:
    """One case: an op sample, a leaf, a random op, a trainer rule or an edge-case sweep.

    ``value`` and ``grads`` (keyed ``x0``, ``x1``...) hold the worst error of the
    backend against the reference; ``fd`` the reference's float64 gradients
    against central finite differences (when that check ran).
    """

    section: str  # "op", "leaf", "random", "trainer", "edge", "nonfinite", "autobatch"
    backend: str
    name: str  # op or trainer name
    case: str  # sample label
    status: str = PASS
    value: Err | None = None
    grads: dict[str, Err] = field(default_factory=dict)
    fd: dict[str, Err] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    repro: str = ""

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.name}-{self.case}"

    def fail(self, msg: str) -> None:
        self.status = FAIL
        self.messages.append(msg)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def explain(self) -> str:
        """A failure message naming the backend, op, case and input, with a repro note."""
        lines = [f"{self.id}: {self.status}"] + [f"  {m}" for m in self.messages]
        if self.repro:
            lines.append(f"  repro: {self.repro}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "section": self.section, "backend": self.backend, "name": self.name,
            "case": self.case, "status": self.status,
            "value": self.value.to_dict() if self.value else None,
            "grads": {k: v.to_dict() for k, v in self.grads.items()},
            "fd": {k: v.to_dict() for k, v in self.fd.items()},
            "messages": list(self.messages), "repro": self.repro,
        }
