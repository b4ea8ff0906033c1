"""One entry of the results file: what one phase of one scenario did with one sender
(``Record``), what it keeps of each TLS report, and the run's exit code from the records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.judge import Verdict
from lab.report_expect import delivered


@dataclass
class Record:
    """One phase of one scenario for one sender: one entry of the results file."""

    scenario: str
    phase: str
    sender: str
    backend: str
    expected: list[str]
    observed: str | None
    verdict: str
    level: str
    attack_fired: bool | None
    duration_s: float
    reason: str
    refs: list[str]
    why: str = ""
    advisory: bool = False
    status: str | None = None
    attacks: list[str] = field(default_factory=list)
    fired: dict[str, list[str]] = field(default_factory=dict)
    engaged: list[str] = field(default_factory=list)
    sni: list[str] = field(default_factory=list)
    message_id: str = ""
    verdict_delay_ms: float | None = None
    """From the sender's decision (its status event or the receipt) to the verdict."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Gates that stopped the sender, changes it never consulted, the choice it made."""
    exercise_required: bool = False
    """A ``not-exercised`` verdict here fails the run (the phase says so)."""
    report_expected: dict[str, Any] | None = None
    """What the phase expects of the TLS reports (lab.report_expect), None: nothing."""
    reports: list[dict[str, Any]] = field(default_factory=list)
    """The TLS reports the collector received for the phase: transport, report, findings."""

    @property
    def fails_run(self) -> bool:
        return Verdict(self.verdict, self.why, self.advisory,
                       required=self.exercise_required).fails_run

    def as_dict(self, evidence: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not evidence:
            data.pop("evidence")
        return data


def report_summary(event: Any) -> dict[str, Any]:
    """What the record keeps of one report the collector received."""
    keep = ("transport", "content_type", "size", "status", "filename", "policy_domains",
            "tls_report_domain", "tls_report_submitter", "report", "findings")
    out = {k: event.get(k) for k in keep if event.get(k) is not None}
    out["delivered"] = delivered(event)
    return out


def exit_code(records: Sequence[Record]) -> int:
    """1 when a record fails the run (fail, unexpected-pass, inconclusive, error), else 0."""
    return 1 if any(r.fails_run for r in records) else 0
