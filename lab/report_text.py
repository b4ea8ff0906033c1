"""TLS reports told for a person: what a phase expects, what arrived, pretty-printed.

Shared by ``mtasts-lab explain`` (the expectation), the step-by-step narrative and the HTML
report (the expectation beside each report the collector received)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lab.report_expect import ReportExpectation


def expected_words(expect: ReportExpectation | Mapping[str, Any] | None) -> str:
    """One line: what the phase expects of the TLS reports."""
    if expect is None:
        return ""
    data = expect.as_dict() if isinstance(expect, ReportExpectation) else dict(expect)
    if data.get("none"):
        return "no TLS report may arrive (RFC 8460 3: no single valid _smtp._tls record)"
    parts = []
    if data.get("policy_type"):
        parts.append(f"policy-type {data['policy_type']}")
    if data.get("result_type"):
        wanted = data["result_type"]
        parts.append("result-type " + (" or ".join(wanted) if isinstance(wanted, list)
                                       else str(wanted)))
    for key, words in (("failures", "failed"), ("successes", "successful")):
        if data.get(key) is not None:
            parts.append(f"{data[key]} {words}")
    if data.get("mx_host"):
        parts.append(f"mx-host {data['mx_host']}")
    how = " or ".join(data.get("transport") or ("https", "mailto"))
    level = data.get("level", "should")
    then = (f", {data['reporter_level']} once it reported earlier"
            if data.get("reporter_level") else "")
    return (f"a TLS report by {how} ({level}{then}) saying "
            + (", ".join(parts) or "anything valid") + " (content: must)")


def received_lines(report: Mapping[str, Any]) -> list[str]:
    """One received report: how it came, its findings, its JSON pretty-printed."""
    how = str(report.get("transport"))
    head = [f"{how} report"]
    for key in ("content_type", "size", "status", "filename"):
        if report.get(key) is not None:
            head.append(f"{key.replace('_', ' ')} {report[key]}")
    if not report.get("delivered", True):
        head.append("refused by the collector")
    lines = [", ".join(head)]
    for finding in report.get("findings") or []:
        lines.append(f"  finding ({finding.get('level', 'must')}): {finding.get('section')}: "
                     f"{finding.get('text')}")
    body = report.get("report")
    if body is None:
        lines.append("  (no readable JSON report)")
    else:
        lines += ["  " + line for line in json.dumps(body, indent=2).splitlines()]
    return lines
