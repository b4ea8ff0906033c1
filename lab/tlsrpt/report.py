"""Validate the JSON of a TLS report: the schema first, then what a schema cannot say.

The schema (``lab/schemas/tlsrpt-report.schema.json``) says which fields must be there and
their types (RFC 8460 4.4): ``organization-name``, ``date-range``, ``contact-info``,
``report-id``, ``policies`` with a ``policy`` (``policy-type`` sts, tlsa or no-policy-found,
``policy-domain``, ...), a ``summary`` of non-negative counts and ``failure-details``.
Here, besides: the dates are RFC 3339 date-times and the range is in order, and each
``result-type`` is one that RFC 8460 4.3 defines.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

import jsonschema

from lab.tlsrpt.findings import Finding, rfc

SCHEMA_FILE = "tlsrpt-report.schema.json"

RESULT_TYPES: tuple[str, ...] = (
    # 4.3.1 negotiation failures
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure",
    # 4.3.2.1 DANE policy failures
    "tlsa-invalid", "dnssec-invalid", "dane-required",
    # 4.3.2.2 MTA-STS policy failures
    "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
)
"""The result types RFC 8460 4.3 defines (4.3.3: ``validation-failure`` for the rest)."""

POLICY_TYPES: tuple[str, ...] = ("tlsa", "sts", "no-policy-found")

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files("lab").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    validator: jsonschema.protocols.Validator = cls(schema())
    return validator


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the report"


def parse_datetime(text: str) -> datetime | None:
    """An RFC 3339 date-time with its offset, or None."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


def validate_report(obj: Any) -> list[Finding]:
    """Every way ``obj`` (parsed JSON) breaks RFC 8460 4.3/4.4; empty when it is valid."""
    findings = [rfc("4.4", f"{_where(e.absolute_path)}: {e.message}")
                for e in sorted(_validator().iter_errors(obj), key=lambda e: list(
                    map(str, e.absolute_path)))]
    if not isinstance(obj, dict):
        return findings
    findings += _dates(obj.get("date-range"))
    for i, policy in enumerate(_list(obj.get("policies"))):
        if not isinstance(policy, dict):
            continue
        for j, detail in enumerate(_list(policy.get("failure-details"))):
            kind = detail.get("result-type") if isinstance(detail, dict) else None
            if isinstance(kind, str) and kind not in RESULT_TYPES:
                findings.append(rfc("4.3", f"policies[{i}].failure-details[{j}].result-type: "
                                           f"{kind!r} is not a result type of RFC 8460 4.3"))
    return findings


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dates(date_range: Any) -> list[Finding]:
    if not isinstance(date_range, dict):
        return []
    out: list[Finding] = []
    parsed: dict[str, datetime] = {}
    for key in ("start-datetime", "end-datetime"):
        value = date_range.get(key)
        if not isinstance(value, str):
            continue
        when = parse_datetime(value)
        if when is None:
            out.append(rfc("4.4", f"date-range.{key}: {value!r} is not an RFC 3339 date-time"))
        else:
            parsed[key] = when
    start, end = parsed.get("start-datetime"), parsed.get("end-datetime")
    if start is not None and end is not None and start > end:
        out.append(rfc("4.4", "date-range: start-datetime is after end-datetime"))
    return out


def policy_domains(obj: Any) -> list[str]:
    """The ``policy-domain`` of each policy in a report (strings only; any shape in)."""
    out: list[str] = []
    if not isinstance(obj, dict) or not isinstance(obj.get("policies"), list):
        return out
    for policy in obj["policies"]:
        inner = policy.get("policy") if isinstance(policy, dict) else None
        domain = inner.get("policy-domain") if isinstance(inner, dict) else None
        if isinstance(domain, str):
            out.append(domain)
    return out
