"""Judging the TLS reports of a phase (lab.report_expect): levels from the RFCs' words."""

from __future__ import annotations

from typing import Any

from lab.events import Event
from lab.report_expect import ReportExpectation, judge, satisfied

STRIP = ReportExpectation(policy_type="sts", result_type=("starttls-not-supported",), failures=1,
                          successes=0, mx_host="mx1.victim.test")


def _report(result: str = "starttls-not-supported", failures: int = 1,
            ptype: str = "sts") -> dict[str, Any]:
    return {"policies": [{
        "policy": {"policy-type": ptype, "policy-domain": "victim.test",
                   "mx-host": ["mx1.victim.test"]},
        "summary": {"total-successful-session-count": 0,
                    "total-failure-session-count": failures},
        "failure-details": [{"result-type": result, "failed-session-count": failures}]}]}


def _event(transport: str = "https", report: dict[str, Any] | None = None,
           **extra: Any) -> Event:
    data = {"transport": transport, "policy_domains": ["victim.test"],
            "report": report if report is not None else _report(), "findings": [], **extra}
    return Event("collector", "tlsrpt-report", data)


def test_the_expected_report_passes() -> None:
    misses, notes = judge(STRIP, "victim.test", [_event()])
    assert misses == [] and notes == ["TLS report received by https"]
    assert satisfied(STRIP, "victim.test", [_event()])
    assert not satisfied(STRIP, "victim.test", [_event()], every=True)
    assert satisfied(STRIP, "victim.test", [_event(), _event("mailto")], every=True)


def test_content_misses_are_must() -> None:
    for event, words in ((_event(report=_report("validation-failure")), "result-type"),
                         (_event(report=_report(failures=2)), "total-failure-session-count"),
                         (_event(report=_report(ptype="no-policy-found")), "policy-type")):
        misses, _ = judge(STRIP, "victim.test", [event])
        assert [lv for lv, _ in misses] == ["must"] and words in misses[0][1]


def test_findings_fail_at_their_own_level() -> None:
    event = _event(findings=[{"section": "RFC 8460 5.1", "text": "file name", "level": "should"},
                             {"section": "RFC 8460 5.3", "text": "media type"}])
    assert [lv for lv, _ in judge(STRIP, "victim.test", [event])[0]] == ["should", "must"]


def test_no_report_is_a_should_unless_the_sender_reported_before() -> None:
    assert [lv for lv, _ in judge(STRIP, "victim.test", [])[0]] == ["should"]
    r5 = ReportExpectation(transport=("mailto",), reporter_level="must")
    assert [lv for lv, _ in judge(r5, "victim.test", [], ["mailto"])[0]] == ["must"]
    assert [lv for lv, _ in judge(r5, "victim.test", [], ["https"])[0]] == ["should"]


def test_a_refused_submission_is_not_a_report() -> None:
    refused = _event(status=500, failed_on_purpose=True)
    assert not satisfied(STRIP, "victim.test", [refused])
    misses, notes = judge(STRIP, "victim.test", [refused])
    assert misses and "refused 1" in notes[0]


def test_report_none_fails_any_report_at_must() -> None:
    none = ReportExpectation(none=True)
    assert judge(none, "victim.test", [])[0] == []
    assert [lv for lv, _ in judge(none, "victim.test", [_event("mailto")])[0]] == ["must"]
    other = Event("collector", "tlsrpt-report", {"transport": "https",
                                                 "policy_domains": ["other.test"]})
    assert judge(none, "victim.test", [other])[0] == []


def test_any_of_the_allowed_result_types_meets_the_expectation() -> None:
    dane = ReportExpectation(policy_type="tlsa", result_type=(
        "tlsa-invalid", "certificate-host-mismatch", "validation-failure"))
    for result in dane.result_type:
        event = _event(report=_report(result, ptype="tlsa"))
        assert judge(dane, "victim.test", [event])[0] == [], result
    misses, _ = judge(dane, "victim.test", [_event(report=_report("certificate-expired",
                                                                  ptype="tlsa"))])
    assert misses == [("must", "https report: result-type certificate-expired, expected "
                       "tlsa-invalid or "
                       "certificate-host-mismatch or validation-failure (RFC 8460 4.3)")]
