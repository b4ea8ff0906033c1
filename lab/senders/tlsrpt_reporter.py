"""TLS-RPT (RFC 8460) for the lab's own sender: the record, the results, the report. Pure.

- ``parse_record`` / ``discover``: the ``_smtp._tls.<policy domain>`` TXT record (3): records
  that do not begin with ``v=TLSRPTv1;`` are discarded; anything but exactly one left, or one
  that does not parse, means the domain does not implement TLS-RPT: no report.
- ``SessionResult``: one delivery attempt's result for its policy domain (success, or the
  result type of 4.3 that names what failed).
- ``Aggregator``: the results of one reporting period, per policy domain.
- ``build_report``: the JSON report of 4.3/4.4 for one policy domain.
- ``file_name``, ``report_mail``: the submission forms of 5.1 and 5.3 (delivery, with
  sockets, is in ``lab.senders.tlsrpt_delivery``).

The sender's parser is written apart from the lab's collector (``lab.tlsrpt``) on purpose:
the reference sender is a second reading of the RFC, not the collector's mirror.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal

PolicyType = Literal["sts", "tlsa", "no-policy-found"]

_WSP = "[ \t]"
_VERSION = re.compile(rf"v=TLSRPTv1{_WSP}*;")
_DELIM = re.compile(rf"{_WSP}*;{_WSP}*")
_URI_SEP = re.compile(rf"{_WSP}*,{_WSP}*")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_URI = re.compile(r"(?:mailto:[^@\s,!;]+@[A-Za-z0-9.-]+|https://[A-Za-z0-9.-]+(?::\d{1,5})?"
                  r"(?:/[^\s,!;]*)?)")
_OTHER_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s,!;]+")


def parse_record(txt: str) -> tuple[str, ...] | None:
    """The ``rua`` URIs of one ``v=TLSRPTv1`` record, or None when it is not valid.

    Grammar (3): ``v=TLSRPTv1`` then ``;``-separated fields, one of them ``rua=`` with one or
    more comma-separated URIs (``mailto:`` or ``https:``; ``,``, ``!`` and ``;`` inside a URI
    must be percent-encoded, so a bare one breaks the record); extensions ``name=value``.
    URIs of other schemes are grammatical but unusable: they are left out.
    """
    if not txt.startswith("v=TLSRPTv1"):
        return None
    parts = _DELIM.split(txt[len("v=TLSRPTv1"):])
    if parts[0] != "" or len(parts) < 2:
        return None
    fields = parts[1:]
    if fields[-1] == "":
        fields = fields[:-1]
    rua: list[str] = []
    seen_rua = False
    for f in fields:
        name, eq, value = f.partition("=")
        if not eq:
            return None
        if name == "rua":
            seen_rua = True
            uris = _URI_SEP.split(value.strip())
            for uri in uris:
                if _URI.fullmatch(uri):
                    rua.append(uri)
                elif not _OTHER_URI.fullmatch(uri) or uri.lower().startswith(
                        ("mailto:", "https:")):
                    return None  # malformed: an unusable mailto/https URI breaks the record
        elif not (_EXT_NAME.fullmatch(name) and _EXT_VALUE.fullmatch(value)):
            return None
    if not seen_rua or not rua:
        return None
    return tuple(rua)


def discover(records: Sequence[str]) -> tuple[str, ...] | None:
    """The ``rua`` of the one TLS-RPT record among the TXT strings, or None: no reporting."""
    tlsrpt = [r for r in records if _VERSION.match(r)]
    if len(tlsrpt) != 1:
        return None
    return parse_record(tlsrpt[0])


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class SessionResult:
    """One attempt to one MX address: success, or the result type of what failed (4.3)."""

    policy_domain: str
    policy_type: PolicyType
    policy_string: tuple[str, ...] = ()
    """The policy's lines (STS) or TLSA records, as the sender applied them."""
    mx_host: tuple[str, ...] = ()
    """For an STS policy: the policy's mx patterns (``mx-host`` is a list, RFC 8460 4.4)."""
    result_type: str | None = None
    """None: a successful session."""
    receiving_mx_hostname: str | None = None
    receiving_ip: str | None = None
    failure_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.result_type is None


@dataclass
class Aggregator:
    """The results of one reporting period, per policy domain."""

    results: dict[str, list[SessionResult]] = field(default_factory=dict)

    def add(self, result: SessionResult) -> None:
        self.results.setdefault(result.policy_domain.lower(), []).append(result)

    def take(self) -> dict[str, list[SessionResult]]:
        """Close the period: everything recorded so far, and start empty."""
        out, self.results = self.results, {}
        return out

    def clear(self) -> None:
        self.results.clear()


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(domain: str, results: Iterable[SessionResult], *, organization: str,
                 contact: str, report_id: str, start: datetime, end: datetime,
                 count_offset: tuple[int, int] = (0, 0),
                 policy_type: str | None = None) -> dict[str, Any]:
    """The RFC 8460 4.4 report of one policy domain for one period.

    One ``policies`` entry per applied policy (type, string, domain, mx-host), its summary
    (successful and failed sessions), and ``failure-details`` grouped by result type and
    receiving host. ``count_offset`` and ``policy_type`` exist only for the mutants that
    miscount or mislabel (``lab.senders.profiles``)."""
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[SessionResult]] = {}
    for r in results:
        groups.setdefault((r.policy_type, r.policy_string, r.mx_host), []).append(r)
    policies = []
    for (ptype, pstring, mx_host), rs in groups.items():
        policy: dict[str, Any] = {"policy-type": policy_type or ptype,
                                  "policy-domain": domain}
        if pstring:
            policy["policy-string"] = list(pstring)
        if mx_host:
            policy["mx-host"] = list(mx_host)
        details: dict[tuple[str, str | None, str | None], int] = {}
        reasons: dict[tuple[str, str | None, str | None], str | None] = {}
        for r in rs:
            if r.result_type is None:
                continue
            key = (r.result_type, r.receiving_mx_hostname, r.receiving_ip)
            details[key] = details.get(key, 0) + 1
            reasons.setdefault(key, r.failure_reason)
        failure_details = []
        for (rtype, host, ip), n in details.items():
            detail: dict[str, Any] = {"result-type": rtype, "failed-session-count": n}
            if host:
                detail["receiving-mx-hostname"] = host
            if ip:
                detail["receiving-ip"] = ip
            if reasons[(rtype, host, ip)]:
                detail["failure-reason-code"] = str(reasons[(rtype, host, ip)])[:200]
            failure_details.append(detail)
        ok = sum(1 for r in rs if r.ok) + count_offset[0]
        failed = sum(1 for r in rs if not r.ok) + count_offset[1]
        entry: dict[str, Any] = {
            "policy": policy,
            "summary": {"total-successful-session-count": max(ok, 0),
                        "total-failure-session-count": max(failed, 0)},
        }
        if failure_details:
            entry["failure-details"] = failure_details
        policies.append(entry)
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": rfc3339(start), "end-datetime": rfc3339(end)},
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }


def encode(report: dict[str, Any], compressed: bool) -> bytes:
    data = json.dumps(report, indent=None, separators=(",", ":")).encode()
    return gzip.compress(data, mtime=0) if compressed else data


def file_name(submitter: str, domain: str, start: datetime, end: datetime, unique: str,
              compressed: bool) -> str:
    """5.1: ``sender!policy-domain!begin!end[!unique-id].json[.gz]``."""
    ext = "json.gz" if compressed else "json"
    return (f"{submitter}!{domain}!{int(start.timestamp())}!{int(end.timestamp())}"
            f"!{unique}.{ext}")


def report_mail(report: dict[str, Any], *, domain: str, submitter: str, mail_from: str,
                rcpt: str, start: datetime, end: datetime, unique: str,
                compressed: bool = True, media_type: str | None = None) -> EmailMessage:
    """5.3: a ``multipart/report; report-type=tlsrpt`` message with the report attached,
    TLS-Report-Domain and TLS-Report-Submitter headers and a 5.1 file name (unsigned; the
    delivery part adds the DKIM signature)."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = rcpt
    msg["Subject"] = f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{unique}>"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=submitter)
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = submitter
    msg.set_content(f"This is an aggregate TLS report from {submitter} for {domain}.\n")
    body = encode(report, compressed)
    subtype = "tlsrpt+gzip" if compressed else "tlsrpt+json"
    if media_type is not None:  # the wrong-media-type mutant
        subtype = media_type.partition("/")[2]
    msg.add_attachment(body, maintype="application", subtype=subtype,
                       filename=file_name(submitter, domain, start, end, unique, compressed))
    msg.set_type("multipart/report")
    msg.set_param("report-type", "tlsrpt")
    return msg
