"""What a doctor check finds: ok, a problem, or a note, with the reason; and the
report printed from a list of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "problem", "note"]
OK: Status = "ok"
PROBLEM: Status = "problem"
NOTE: Status = "note"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    reason: str


def has_problem(findings: list[Finding]) -> bool:
    return any(finding.status == PROBLEM for finding in findings)


def format_report(findings: list[Finding]) -> str:
    width = max(len(finding.check) for finding in findings)
    lines = [f"{f.status:<8} {f.check:<{width}}  {f.reason}" for f in findings]
    problems = sum(finding.status == PROBLEM for finding in findings)
    lines.append(
        f"{problems} problem{'s' if problems != 1 else ''} found"
        if problems
        else "healthy: no problems found"
    )
    return "\n".join(lines)
