"""A report as it arrived, by HTTPS or by mail: unpack it, find what breaks RFC 8460.

``examine`` is pure: bytes in, a ``Submission`` out (the parsed report or None, and every
finding with its section); it never raises on bad input. Bounds: a body over
``MAX_BODY_BYTES`` is not parsed, a gzip stream is inflated to at most ``MAX_JSON_BYTES``.

HTTPS (RFC 8460 5.3.2): the body is the report, ``application/tlsrpt+json`` or
``application/tlsrpt+gzip`` (5.3) compressed with gzip (5.2).
Mail (RFC 8460 5.3.1): a ``multipart/report; report-type=tlsrpt`` message with the headers
``TLS-Report-Domain`` and ``TLS-Report-Submitter``, the report as a part of one of those
media types whose file name follows 5.1, and (section 3) a DKIM signature that does not use
``l=``.
The lab holds no DKIM keys of senders: a signature's presence and its tags are checked, not
its cryptography.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import zlib
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal

from lab.tlsrpt.findings import Finding, limit, rfc
from lab.tlsrpt.report import policy_domains, validate_report

Transport = Literal["https", "mailto"]
JSON_TYPE = "application/tlsrpt+json"
GZIP_TYPE = "application/tlsrpt+gzip"
MEDIA_TYPES = (JSON_TYPE, GZIP_TYPE)
MAX_BODY_BYTES = 1 << 20
"""The most bytes of a report (HTTP body, or whole message) the lab reads: 1 MiB."""
MAX_JSON_BYTES = 4 << 20
"""The most bytes a gzip report may inflate to: 4 MiB."""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_FILENAME = re.compile(rf"(?P<sender>{_DOMAIN})!(?P<domain>{_DOMAIN})!(?P<begin>\d+)!(?P<end>\d+)"
                       r"(?:!(?P<unique>[A-Za-z0-9]+))?\.(?P<ext>json|json\.gz)")


@dataclass
class Submission:
    transport: Transport
    content_type: str | None
    size: int
    report: Any = None
    """The parsed JSON object, or None when there was none to parse."""
    findings: list[Finding] = field(default_factory=list)
    filename: str | None = None
    tls_report_domain: str | None = None
    tls_report_submitter: str | None = None

    @property
    def policy_domains(self) -> list[str]:
        return policy_domains(self.report)

    def event(self) -> dict[str, Any]:
        """The payload of a ``("collector", "tlsrpt-report")`` event."""
        data: dict[str, Any] = {
            "transport": self.transport, "content_type": self.content_type, "size": self.size,
            "policy_domains": self.policy_domains, "report": self.report,
            "findings": [f.as_dict() for f in self.findings],
        }
        if self.transport == "mailto":
            data.update(filename=self.filename, tls_report_domain=self.tls_report_domain,
                        tls_report_submitter=self.tls_report_submitter)
        return data


def media_type(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type value, lower-case, without parameters."""
    return (content_type or "").partition(";")[0].strip().lower()


def inflate(data: bytes, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """Decompress one gzip stream, never more than ``max_bytes``; ValueError if it is not
    gzip, is cut short, has data after it, or inflates to more."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise ValueError(f"not a valid gzip stream ({exc})") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise OverflowError(f"inflates to more than {max_bytes} bytes")
    if not inflater.eof:
        raise ValueError("the gzip stream is cut short")
    if inflater.unused_data:
        raise ValueError("data after the end of the gzip stream")
    return out


def decode_report(kind: str, data: bytes, where: str) -> tuple[Any, list[Finding]]:
    """The report in a body of media type ``kind`` (one of ``MEDIA_TYPES``)."""
    findings: list[Finding] = []
    if kind == GZIP_TYPE:
        try:
            data = inflate(data)
        except OverflowError as exc:
            return None, [limit(f"{where}: {exc}; not read")]
        except ValueError as exc:
            return None, [rfc("5.2", f"{where}: {exc}")]
    elif len(data) > MAX_JSON_BYTES:
        return None, [limit(f"{where}: more than {MAX_JSON_BYTES} bytes of JSON; not read")]
    try:
        text = data.decode("utf-8")
        report = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, [rfc("4.4", f"{where}: the report is not JSON in UTF-8 ({exc})")]
    findings += validate_report(report)
    return report, findings


def examine(transport: Transport, body: bytes, content_type: str | None = None) -> Submission:
    """A submission: for ``https`` the POST body and its Content-Type, for ``mailto`` the
    whole message as received (``content_type`` is then read from the message)."""
    if transport == "https":
        return _https(body, content_type)
    return _mail(body)


def validate_submission(transport: Transport, body: bytes,
                        content_type: str | None = None) -> list[Finding]:
    """Every way a submission breaks RFC 8460 (empty: valid). See ``examine``."""
    return examine(transport, body, content_type).findings


def _https(body: bytes, content_type: str | None) -> Submission:
    sub = Submission("https", content_type, len(body))
    if len(body) > MAX_BODY_BYTES:
        sub.findings.append(limit(f"a body of {len(body)} bytes, over {MAX_BODY_BYTES}; "
                                  "not read"))
        return sub
    kind = media_type(content_type)
    if kind not in MEDIA_TYPES:
        sub.findings.append(rfc("5.3", f"Content-Type {content_type!r}: a report is "
                                       f"{JSON_TYPE} or {GZIP_TYPE}"))
        kind = _sniff(body)
    sub.report, found = decode_report(kind, body, "the body")
    sub.findings += found
    return sub


def _sniff(body: bytes) -> str:
    return GZIP_TYPE if body[:2] == b"\x1f\x8b" else JSON_TYPE


def _mail(raw: bytes) -> Submission:
    sub = Submission("mailto", None, len(raw))
    if len(raw) > MAX_BODY_BYTES:
        sub.findings.append(limit(f"a message of {len(raw)} bytes, over {MAX_BODY_BYTES}; "
                                  "not read"))
        return sub
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        _mail_checks(msg, sub)
    except Exception as exc:  # the email package on hostile input: a finding, never a crash
        sub.findings.append(rfc("5.3.1", f"the message cannot be parsed as MIME "
                                         f"({type(exc).__name__}: {exc})"))
    return sub


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else " ".join(str(value).split())


def _mail_checks(msg: Message, sub: Submission) -> None:
    sub.content_type = _header(msg, "Content-Type")
    sub.tls_report_domain = _header(msg, "TLS-Report-Domain")
    sub.tls_report_submitter = _header(msg, "TLS-Report-Submitter")
    out = sub.findings
    if msg.get_content_type() != "multipart/report" or (
            str(msg.get_param("report-type") or "").lower() != "tlsrpt"):
        out.append(rfc("5.3.1", f"Content-Type {sub.content_type!r}: a report by mail is "
                                "multipart/report with report-type=tlsrpt"))
    for name, value in (("TLS-Report-Domain", sub.tls_report_domain),
                        ("TLS-Report-Submitter", sub.tls_report_submitter)):
        if not value:
            out.append(rfc("5.3.1", f"the {name} header is missing"))
    _dkim(msg, out)
    parts = [p for p in msg.walk() if p.get_content_type() in MEDIA_TYPES]
    if not parts:
        out.append(rfc("5.3.1", f"no part of type {JSON_TYPE} or {GZIP_TYPE}"))
        return
    if len(parts) > 1:
        out.append(rfc("5.3.1", f"{len(parts)} report parts; one message carries one report"))
    part = parts[0]
    kind = part.get_content_type()
    sub.filename = part.get_filename()
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    sub.report, found = decode_report(kind, data, "the report part")
    out += found
    out += _filename_findings(sub.filename, kind, sub.report)
    domains = policy_domains(sub.report)
    if sub.tls_report_domain and domains and sub.tls_report_domain.lower().rstrip(".") not in {
            d.lower().rstrip(".") for d in domains}:
        out.append(rfc("5.3.1", f"TLS-Report-Domain {sub.tls_report_domain!r} is not the "
                                f"report's policy-domain ({', '.join(domains)})"))


def _dkim(msg: Message, out: list[Finding]) -> None:
    signatures = msg.get_all("DKIM-Signature") or []
    if not signatures:
        out.append(rfc("3", "no DKIM-Signature: reports sent by mail MUST carry a DKIM "
                                "signature of the reporting domain"))
    for sig in signatures:
        tags = {k.strip(): v.strip() for k, _, v in
                (t.partition("=") for t in "".join(str(sig).split()).split(";") if t)}
        if "l" in tags:
            out.append(rfc("3", "the DKIM-Signature uses l= (MUST NOT limit the body "
                                    "length)"))


def _filename_findings(name: str | None, kind: str, report: Any) -> list[Finding]:
    if not name:
        return [rfc("5.1", "the report part has no file name", "should")]
    match = _FILENAME.fullmatch(name)
    ext_ok = name.endswith(".json.gz") if kind == GZIP_TYPE else name.endswith(".json")
    out = []
    if not ext_ok:
        out.append(rfc("5.1", f"file name {name!r}: the extension MUST be "
                              f"{'json.gz' if kind == GZIP_TYPE else 'json'} for {kind}"))
    if match is None:
        out.append(rfc("5.1", f"file name {name!r} is not "
                              "sender!policy-domain!begin!end[!unique-id].extension", "should"))
        return out
    if int(match["begin"]) > int(match["end"]):
        out.append(rfc("5.1", f"file name {name!r}: the begin timestamp is after the end",
                       "should"))
    domains = policy_domains(report)
    if domains and match["domain"].lower() not in {d.lower().rstrip(".") for d in domains}:
        out.append(rfc("5.1", f"file name {name!r}: the policy domain is not the report's "
                              f"({', '.join(domains)})", "should"))
    return out
