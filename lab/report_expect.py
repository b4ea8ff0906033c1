"""What a phase expects of the TLS reports (RFC 8460) a sender delivers, and how it is judged.

``expect.report`` in a scenario is either ``none`` (the recipient domain has no single valid
``_smtp._tls`` record, so no report may arrive: RFC 8460 3, MUST) or a mapping::

    report: {policy_type: sts, result_type: starttls-not-supported, failures: 1,
             successes: 0, mx_host: mx1.victim.test, transport: [https, mailto]}

Levels, from the RFCs' own words:

- that a report arrives at all: ``level``, ``should`` by default (RFC 8461 6: implementers
  of MTA-STS are "strongly RECOMMENDED" to implement TLS-RPT). ``transport`` lists the
  destinations the record offers; a report by any one of them meets it (RFC 8460 3: a
  sender MAY deliver to only one of the rua destinations).
- ``reporter_level``: the level of a missing report when the sender already delivered a
  report by one of those transports earlier in the scenario. A sender that reports and then
  lets an attack on the report MX suppress the report breaks RFC 8460 5.3.1 (MUST): the
  R5 scenario sets ``reporter_level: must``.
- what a report says (policy type, result type, counts, mx-host): ``must`` (RFC 8460 4.3,
  4.4). A validation finding of the collector fails at the level of the rule it breaks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.events import Event
from lab.outcomes import Level
from lab.world import normalize

COLLECTOR = "collector"
REPORT_KIND = "tlsrpt-report"
TRANSPORTS: tuple[str, ...] = ("https", "mailto")
POLICY_TYPES: tuple[str, ...] = ("sts", "tlsa", "no-policy-found")
RESULT_TYPES: tuple[str, ...] = (
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
)
"""The result types of RFC 8460 4.3."""
SETTLED = ("sender", "tlsrpt-settled")


@dataclass(frozen=True)
class ReportExpectation:
    none: bool = False
    """No report may arrive for the domain (RFC 8460 3)."""
    policy_type: str | None = None
    result_type: tuple[str, ...] = ()
    """The report must name one of these (where the RFC allows more than one reading)."""
    failures: int | None = None
    successes: int | None = None
    mx_host: str | None = None
    transport: tuple[str, ...] = TRANSPORTS
    """A report by any of these meets the expectation."""
    level: str = Level.SHOULD
    reporter_level: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.none:
            return {"none": True}
        out: dict[str, Any] = {"transport": list(self.transport), "level": self.level}
        for key in ("policy_type", "failures", "successes", "mx_host", "reporter_level"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.result_type:
            out["result_type"] = (self.result_type[0] if len(self.result_type) == 1
                                  else list(self.result_type))
        return out


def report_events(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.source == COLLECTOR and e.kind == REPORT_KIND]


def delivered(event: Event) -> bool:
    """The collector took it (not the answer an attack forced to fail)."""
    if event.get("failed_on_purpose"):
        return False
    status = event.get("status")
    return status is None or 200 <= int(status) < 300


def for_domain(events: Iterable[Event], domain: str) -> list[Event]:
    """The collector's reports about ``domain`` (a report it could not read counts too)."""
    want = normalize(domain)
    out = []
    for e in report_events(events):
        domains = {normalize(str(d)) for d in e.get("policy_domains") or []}
        header = normalize(str(e.get("tls_report_domain") or ""))
        if want in domains or header == want or (not domains and not header):
            out.append(e)
    return out


def satisfied(expect: ReportExpectation, domain: str, events: Sequence[Event], *,
              every: bool = False) -> bool:
    """Whether the reports the phase waits for are there (``none``: never; it waits for the
    sender's word instead). ``every``: a report by each transport the expectation names (the
    runner waits for all, so that each is judged; one is enough to meet it)."""
    if expect.none:
        return False
    came = {e.get("transport") for e in for_domain(events, domain) if delivered(e)}
    wanted = set(expect.transport)
    return wanted <= came if every else bool(wanted & came)


def _entries(report: Mapping[str, Any], domain: str) -> list[Mapping[str, Any]]:
    out = []
    for entry in report.get("policies") or []:
        if not isinstance(entry, Mapping):
            continue
        policy = entry.get("policy") or {}
        if isinstance(policy, Mapping) and normalize(str(policy.get("policy-domain", ""))) \
                == normalize(domain):
            out.append(entry)
    return out


def _count(entries: Iterable[Mapping[str, Any]], key: str) -> int:
    total = 0
    for entry in entries:
        summary = entry.get("summary") or {}
        value = summary.get(key) if isinstance(summary, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool):
            total += value
    return total


def content_misses(expect: ReportExpectation, domain: str,
                   report: Mapping[str, Any]) -> list[str]:
    """What a parsed report says against the expectation (RFC 8460 4.3, 4.4: must)."""
    entries = _entries(report, domain)
    if not entries:
        return [f"no policies[] entry for policy-domain {domain}"]
    misses = []
    types = [str((e.get("policy") or {}).get("policy-type")) for e in entries]
    if expect.policy_type is not None:
        entries = [e for e, t in zip(entries, types, strict=True) if t == expect.policy_type]
        if not entries:
            return [f"policy-type {' and '.join(types)}, expected {expect.policy_type} "
                    "(RFC 8460 4.4)"]
    results = sorted({str(d.get("result-type")) for e in entries
                      for d in e.get("failure-details") or [] if isinstance(d, Mapping)})
    if expect.result_type and not set(expect.result_type) & set(results):
        misses.append(f"result-type {', '.join(results) or 'none'}, expected "
                      f"{' or '.join(expect.result_type)} (RFC 8460 4.3)")
    for key, want, words in (("total-failure-session-count", expect.failures, "failed"),
                             ("total-successful-session-count", expect.successes,
                              "successful")):
        if want is not None:
            got = _count(entries, key)
            if got != want:
                misses.append(f"{key} {got}, expected {want} {words} session"
                              f"{'s' if want != 1 else ''} (RFC 8460 4.4)")
    if expect.mx_host is not None:
        hosts: list[str] = []
        for e in entries:
            value = (e.get("policy") or {}).get("mx-host")
            hosts += [str(v) for v in value] if isinstance(value, list) else \
                [str(value)] if value else []
        names = {normalize(h.strip()) for h in hosts}
        if normalize(expect.mx_host) not in names:
            misses.append(f"mx-host {', '.join(h for h in hosts if h) or 'missing'}, "
                          f"expected {expect.mx_host} (RFC 8460 4.4)")
    return misses


def _finding_level(finding: Mapping[str, Any]) -> str:
    level = str(finding.get("level") or Level.MUST)
    return level if level in (Level.MUST, Level.SHOULD, Level.MAY) else Level.MUST


def judge(expect: ReportExpectation, domain: str, events: Sequence[Event],
          reported_before: Iterable[str] = ()) -> tuple[list[tuple[str, str]], list[str]]:
    """([(level, miss)], [notes]) for the reports that arrived in the phase."""
    mine = for_domain(events, domain)
    taken = [e for e in mine if delivered(e)]
    refused = [e for e in mine if not delivered(e)]
    misses: list[tuple[str, str]] = []
    notes: list[str] = []
    if refused:
        notes.append(f"the collector refused {len(refused)} report submission"
                     f"{'s' if len(refused) != 1 else ''} (an attack's failed answer)")
    if expect.none:
        if taken:
            how = ", ".join(sorted({str(e.get("transport")) for e in taken}))
            misses.append((Level.MUST, f"a TLS report for {domain} arrived ({how}), but the "
                           "domain has no single valid _smtp._tls record: RFC 8460 3 says the "
                           "sender MUST assume it does not implement TLS-RPT"))
        else:
            notes.append(f"no TLS report for {domain}, as expected")
        return misses, notes
    arrived = [e for e in taken if e.get("transport") in expect.transport]
    if not arrived:
        before = set(reported_before) & set(expect.transport)
        level = expect.reporter_level if before and expect.reporter_level else expect.level
        why = (f"no TLS report for {domain} arrived by {' or '.join(expect.transport)}")
        if before and expect.reporter_level:
            why += (f", though the sender reported by {', '.join(sorted(before))} earlier "
                    "in this scenario")
        else:
            why += " (RFC 8461 6: senders SHOULD report with TLS-RPT)"
        misses.append((level, why))
        return misses, notes
    for e in arrived:
        transport = str(e.get("transport"))
        for finding in e.get("findings") or []:
            if isinstance(finding, Mapping):
                misses.append((_finding_level(finding), f"{transport} report: "
                               f"{finding.get('section', '')}: {finding.get('text', '')}"))
        report = e.get("report")
        if isinstance(report, Mapping):
            misses += [(Level.MUST, f"{transport} report: {m}")
                       for m in content_misses(expect, domain, report)]
        else:
            misses.append((Level.MUST, f"{transport} report: not a readable JSON report"))
    notes.append("TLS report received by " + ", ".join(
        sorted({str(e.get("transport")) for e in arrived})))
    return misses, notes
