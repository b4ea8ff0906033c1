"""A submission as it arrives (RFC 8460 5.1-5.3): bytes in, findings out, never an exception."""

from __future__ import annotations

import contextlib
import gzip
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.sink.server import is_report
from lab.tlsrpt import GZIP_TYPE, JSON_TYPE, MAX_BODY_BYTES, examine, validate_submission
from lab.tlsrpt.submission import MAX_JSON_BYTES, _filename_findings, inflate
from tests.tlsrpt.kit import body, mail, report


def sections(findings: list) -> list[str]:
    return sorted(f.section for f in findings)


@pytest.mark.parametrize(("kind", "gz"), [(JSON_TYPE, False), (GZIP_TYPE, True),
                                          (f"{JSON_TYPE}; charset=utf-8", False)])
def test_https_valid(kind: str, gz: bool) -> None:
    sub = examine("https", body(gz=gz), kind)
    assert sub.findings == [] and sub.policy_domains == ["victim.test"]
    assert sub.event()["size"] == len(body(gz=gz))


@pytest.mark.parametrize(("data", "kind", "expected", "words"), [
    (body(), "application/json", ["RFC 8460 5.3"], "Content-Type"),
    (body(), None, ["RFC 8460 5.3"], "Content-Type"),
    (body(gz=True), JSON_TYPE, ["RFC 8460 4.4"], "not JSON"),
    (body(), GZIP_TYPE, ["RFC 8460 5.2"], "not a valid gzip"),
    (body(gz=True)[:-5], GZIP_TYPE, ["RFC 8460 5.2"], "cut short"),
    (body(gz=True) + b"junk", GZIP_TYPE, ["RFC 8460 5.2"], "after the end"),
    (b"{bad", JSON_TYPE, ["RFC 8460 4.4"], "not JSON"),
    (b"\xff\xfe{}", JSON_TYPE, ["RFC 8460 4.4"], "not JSON in UTF-8"),
    (b"[" * 100000, JSON_TYPE, ["RFC 8460 4.4"], "not JSON"),
    (body(report(policies="none")), JSON_TYPE, ["RFC 8460 4.4"], "not of type 'array'"),
])
def test_https_malformed(data: bytes, kind: str | None, expected: list[str],
                         words: str) -> None:
    findings = validate_submission("https", data, kind)
    assert sections(findings) == expected, findings
    assert words in findings[0].text


def test_a_body_over_the_limit_is_not_read() -> None:
    data = b" " * (MAX_BODY_BYTES + 1)
    sub = examine("https", data, JSON_TYPE)
    assert [f.section for f in sub.findings] == ["lab limit"] and sub.report is None


def test_a_gzip_bomb_is_inflated_only_to_the_limit() -> None:
    bomb = gzip.compress(b" " * (MAX_JSON_BYTES + 1), compresslevel=9)
    assert len(bomb) < MAX_BODY_BYTES
    [finding] = validate_submission("https", bomb, GZIP_TYPE)
    assert finding.section == "lab limit" and "inflates to more than" in finding.text
    with pytest.raises(OverflowError):
        inflate(bomb)


@given(st.binary(max_size=300), st.one_of(st.none(), st.sampled_from(
    [JSON_TYPE, GZIP_TYPE, "text/plain", ";;", "application/tlsrpt+gzip; x"])))
def test_any_https_body_gives_findings_never_an_exception(data: bytes,
                                                          kind: str | None) -> None:
    sub = examine("https", data, kind)
    assert sub.findings or sub.report is not None


@given(st.binary(max_size=200))
def test_any_gzip_tail_never_raises_anything_but_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        inflate(b"\x1f\x8b\x08\x00" + data)


# mail ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_mail_valid(gz: bool) -> None:
    sub = examine("mailto", mail(gz=gz))
    assert sub.findings == []
    event = sub.event()
    assert event["tls_report_domain"] == "victim.test"
    assert event["tls_report_submitter"] == "sender.test"
    assert event["filename"].endswith(".json.gz" if gz else ".json")
    assert event["content_type"].startswith("multipart/report")
    assert event["policy_domains"] == ["victim.test"]


@pytest.mark.parametrize(("kwargs", "expected", "words"), [
    ({"headers": {"TLS-Report-Domain": None}}, ["RFC 8460 5.3.1"], "TLS-Report-Domain"),
    ({"headers": {"TLS-Report-Submitter": None}}, ["RFC 8460 5.3.1"], "TLS-Report-Submitter"),
    ({"headers": {"TLS-Report-Domain": "other.test"}}, ["RFC 8460 5.3.1"],
     "not the report's policy-domain"),
    ({"report_type": "dmarc"}, ["RFC 8460 5.3.1"], "report-type=tlsrpt"),
    ({"dkim": None}, ["RFC 8460 3"], "DKIM"),
    ({"dkim": "v=1; a=rsa-sha256; d=sender.test; s=x; l=100; bh=A; b=B"},
     ["RFC 8460 3"], "l="),
    ({"filename": "report.json.gz"}, ["RFC 8460 5.1"], "is not sender!policy-domain"),
    ({"filename": "sender.test!victim.test!1!2.json"}, ["RFC 8460 5.1"],
     "extension MUST be json.gz"),
    ({"filename": "sender.test!other.test!1!2.json.gz"}, ["RFC 8460 5.1"],
     "policy domain is not"),
    ({"filename": "sender.test!victim.test!3!2.json.gz"}, ["RFC 8460 5.1"],
     "begin timestamp is after"),
    ({"obj": report(policies=[{"policy": {}}])}, ["RFC 8460 4.4"] * 3, "is a required"),
])
def test_mail_findings(kwargs: dict, expected: list[str], words: str) -> None:
    findings = validate_submission("mailto", mail(**kwargs))
    assert sections(findings) == expected, findings
    assert any(words in f.text for f in findings), findings


def test_the_file_name_rule_is_a_recommendation() -> None:
    [finding] = validate_submission("mailto", mail(filename="report.json.gz"))
    assert finding.level == "should"


def test_a_plain_message_is_a_finding() -> None:
    raw = (b"From: a@sender.test\r\nTo: tlsrpt@reports.test\r\nSubject: hi\r\n\r\n"
           b"just text\r\n")
    texts = [f.text for f in validate_submission("mailto", raw)]
    assert any("multipart/report" in t for t in texts)
    assert any("no part of type" in t for t in texts)


def test_a_message_over_the_limit_is_not_read() -> None:
    raw = mail(obj=report(padding="x" * MAX_BODY_BYTES), gz=False)
    [finding] = validate_submission("mailto", raw)
    assert finding.section == "lab limit"


@given(st.binary(max_size=400))
def test_any_message_bytes_give_findings_never_an_exception(data: bytes) -> None:
    assert examine("mailto", data).findings


@given(st.lists(st.sampled_from([
    b"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"b\"\r\n",
    b"TLS-Report-Domain: victim.test\r\n", b"\r\n", b"--b\r\n", b"--b--\r\n",
    b"Content-Type: application/tlsrpt+gzip\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Disposition: attachment; filename=\"a!b!1!2.json.gz\"\r\n", b"H4sI=\r\n",
    b"DKIM-Signature: l=; ;=\r\n", os.urandom(8)]), max_size=25))
def test_mime_shaped_garbage_gives_findings_never_an_exception(lines: list[bytes]) -> None:
    assert examine("mailto", b"".join(lines)).findings


@given(st.text(max_size=80), st.sampled_from([JSON_TYPE, GZIP_TYPE]))
def test_any_file_name_gives_findings_never_an_exception(name: str, kind: str) -> None:
    findings = _filename_findings(name, kind, report())
    assert all(f.section == "RFC 8460 5.1" for f in findings)


@given(st.builds(lambda s, d, b, e, u, x: f"{s}!{d}!{b}!{e}{u}.{x}",
                 st.sampled_from(["sender.test", "mail.sndr.example-1.test"]),
                 st.just("victim.test"), st.integers(0, 2**40), st.integers(2**40, 2**41),
                 st.sampled_from(["", "!1", "!abcXYZ09"]), st.just("json")))
def test_file_names_by_the_rule_are_fine(name: str) -> None:
    assert _filename_findings(name, JSON_TYPE, report()) == []


@given(st.binary(max_size=300), st.lists(st.sampled_from(
    ["a@reports.test", "b@victim.test", "x"]), max_size=2))
def test_the_sink_recognises_reports_without_raising(data: bytes, rcpts: list[str]) -> None:
    assert is_report(data, rcpts) == (is_report(data, []) or "a@reports.test" in rcpts)
