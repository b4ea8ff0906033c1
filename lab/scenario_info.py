"""What a scenario teaches, as plain data: carried in the JSON results (``scenarios``) so
that ``mtasts-lab merge`` can draw the HTML report without the scenario files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lab.scenario import Phase, Scenario


def _phase_info(phase: Phase) -> dict[str, Any]:
    return {
        "attacks": [{"name": a.name, "place": a.place, "summary": a.summary}
                    for a in phase.attacks],
        "expect": list(phase.expect.outcome),
        "level": phase.expect.level,
        "status": phase.expect.status,
    }


def scenario_info(s: Scenario) -> dict[str, Any]:
    """The explain data of one scenario (see ``mtasts-lab explain``)."""
    phases = {p.name: _phase_info(p) for p in s.phases}
    if s.baseline is not None:
        phases = {"baseline": _phase_info(s.baseline), **phases}
    return {
        "summary": s.summary,
        "teach": s.teach.strip(),
        "refs": list(s.refs),
        "covers": list(s.covers),
        "mode": s.mode,
        "attacker_does": s.attacker_does,
        "compliant_does": s.compliant_does,
        "known_failures": dict(s.known_failures),
        "phases": phases,
    }


def infos(scenarios: Iterable[Scenario]) -> dict[str, dict[str, Any]]:
    return {s.id: scenario_info(s) for s in scenarios}


def phase_attacks(info: Mapping[str, Any] | None, phase: str) -> list[dict[str, Any]]:
    if not info:
        return []
    attacks: list[dict[str, Any]] = info.get("phases", {}).get(phase, {}).get("attacks", [])
    return attacks
