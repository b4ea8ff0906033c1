"""The reference sender's TLS-RPT side, pure: the record, the report, the mail form."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lab.senders.tlsrpt_reporter import (
    Aggregator,
    SessionResult,
    build_report,
    discover,
    encode,
    file_name,
    parse_record,
    report_mail,
)
from lab.tlsrpt import validate_report, validate_submission

HTTPS = "https://tlsrpt.reports.test/v1/tlsrpt"
MAILTO = "mailto:tlsrpt@reports.test"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
STS = ("version: STSv1", "mode: enforce", "mx: mx1.victim.test", "max_age: 86400")


def test_one_valid_record_gives_its_destinations() -> None:
    assert discover([f"v=TLSRPTv1; rua={MAILTO},{HTTPS}"]) == (MAILTO, HTTPS)
    assert discover([f"v=TLSRPTv1;rua={HTTPS};", "v=spf1 -all"]) == (HTTPS,)
    assert discover([f"v=TLSRPTv1; x-ext=1; rua={HTTPS}"]) == (HTTPS,)


def test_anything_but_exactly_one_valid_record_means_no_reporting() -> None:
    assert discover([]) is None
    assert discover([f"v=TLSRPTv1; rua={HTTPS}", f"v=TLSRPTv1; rua={MAILTO}"]) is None
    assert discover(["v=TLSRPTv1; rua=tlsrpt@reports.test"]) is None  # no scheme
    assert discover([f"v=TLSRPTv1 rua={HTTPS}"]) is None  # no separator
    assert discover([f"v=TLSRPTv10; rua={HTTPS}"]) is None
    assert discover(["v=TLSRPTv1; ruf=mailto:a@b.test"]) is None  # rua is required
    assert parse_record("v=TLSRPTv1; rua=mailto:a!b@reports.test") is None  # bare "!"


@given(st.text(max_size=120))
def test_any_text_parses_or_is_refused(text: str) -> None:
    rua = parse_record(text)
    assert rua is None or (rua and all(u.startswith(("mailto:", "https://")) for u in rua))


@given(st.lists(st.text(max_size=60), max_size=4))
def test_discover_never_reports_to_two_records(records: list[str]) -> None:
    found = discover(records)
    if found is not None:
        assert sum(r.startswith("v=TLSRPTv1") for r in records) == 1


def _results() -> list[SessionResult]:
    fail = SessionResult("victim.test", "sts", STS, ("mx1.victim.test",),
                         "starttls-not-supported", "mx1.victim.test", "127.0.0.5", "stripped")
    ok = SessionResult("victim.test", "sts", STS, ("mx1.victim.test",), None,
                       "mx1.victim.test", "127.0.0.5")
    return [fail, fail, ok]


def test_report_aggregates_per_policy_and_validates() -> None:
    report = build_report("victim.test", _results(), organization="lab",
                          contact="mailto:a@sender.test", report_id="r1", start=T0, end=T1)
    assert validate_report(report) == []
    [entry] = report["policies"]
    assert entry["policy"]["policy-type"] == "sts"
    assert entry["policy"]["mx-host"] == ["mx1.victim.test"]
    assert entry["summary"] == {"total-successful-session-count": 1,
                                "total-failure-session-count": 2}
    [detail] = entry["failure-details"]
    assert (detail["result-type"], detail["failed-session-count"]) == (
        "starttls-not-supported", 2)
    assert json.loads(gzip.decompress(encode(report, True))) == report


def test_aggregator_closes_the_period() -> None:
    agg = Aggregator()
    for r in _results():
        agg.add(r)
    assert len(agg.take()["victim.test"]) == 3
    assert agg.take() == {}


def test_mail_form_is_a_valid_submission() -> None:
    report = build_report("victim.test", _results(), organization="lab",
                          contact="mailto:a@sender.test", report_id="r1", start=T0, end=T1)
    msg = report_mail(report, domain="victim.test", submitter="sender.test",
                      mail_from="noreply@sender.test", rcpt="tlsrpt@reports.test",
                      start=T0, end=T1, unique="r1")
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    [part] = [p for p in parsed.iter_attachments()]
    assert part.get_filename() == file_name("sender.test", "victim.test", T0, T1, "r1", True)
    assert part.get_filename() == (f"sender.test!victim.test!{int(T0.timestamp())}!"
                                   f"{int(T1.timestamp())}!r1.json.gz")
    assert part.get_content_type() == "application/tlsrpt+gzip"


def test_signed_mail_and_https_body_have_no_findings() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from lab.senders.tlsrpt_delivery import dkim_sign

    report = build_report("victim.test", _results(), organization="lab",
                          contact="mailto:a@sender.test", report_id="r1", start=T0, end=T1)
    assert validate_submission("https", encode(report, True), "application/tlsrpt+gzip") == []
    assert validate_submission("https", encode(report, False), "application/tlsrpt+json") == []
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    msg = report_mail(report, domain="victim.test", submitter="sender.test",
                      mail_from="noreply@sender.test", rcpt="tlsrpt@reports.test",
                      start=T0, end=T1, unique="r1")
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    signed = dkim_sign(raw, "sender.test", "lab", key)
    assert signed.startswith(b"DKIM-Signature:") and b"l=" not in signed.split(b"\r\n\r\n")[0]
    assert validate_submission("mailto", signed) == []
