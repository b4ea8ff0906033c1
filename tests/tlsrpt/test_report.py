"""The report's JSON against RFC 8460 4.3/4.4: the shipped schema, then dates and result types."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.tlsrpt import RESULT_TYPES, Finding, validate_report
from lab.tlsrpt.report import parse_datetime, policy_domains, schema
from tests.tlsrpt.kit import REPORT, report

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner,
                                                                max_size=5),
    max_leaves=30)
KEYS = ["organization-name", "date-range", "contact-info", "report-id", "policies",
        "policy", "summary", "failure-details", "policy-type", "policy-domain",
        "result-type", "failed-session-count", "start-datetime", "end-datetime"]
report_like = st.recursive(
    st.none() | st.integers(-3, 3) | st.sampled_from(["sts", "2026-12-01T00:00:00Z", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=6),
    max_leaves=40)
count = st.integers(0, 10**12)
failure = st.fixed_dictionaries({"result-type": st.sampled_from(RESULT_TYPES),
                                 "failed-session-count": count},
                                optional={"receiving-mx-hostname": st.just("mx1.victim.test"),
                                          "failure-reason-code": st.text(max_size=10)})
policy = st.fixed_dictionaries({
    "policy": st.fixed_dictionaries(
        {"policy-type": st.sampled_from(["sts", "tlsa", "no-policy-found"]),
         "policy-domain": st.just("victim.test")},
        optional={"policy-string": st.lists(st.text(max_size=20), max_size=3),
                  "mx-host": st.lists(st.just("mx1.victim.test"), max_size=2)}),
    "summary": st.fixed_dictionaries({"total-successful-session-count": count,
                                      "total-failure-session-count": count}),
}, optional={"failure-details": st.lists(failure, max_size=3)})
valid_reports = st.builds(lambda p, org: report(policies=p, **{"organization-name": org}),
                          st.lists(policy, max_size=3), st.text(min_size=1, max_size=20))


def sections(findings: list[Finding]) -> list[str]:
    return [f.section for f in findings]


def test_the_shipped_schema_is_a_valid_json_schema() -> None:
    jsonschema.validators.validator_for(schema()).check_schema(schema())


def test_the_example_report_is_valid() -> None:
    assert validate_report(REPORT) == []
    assert policy_domains(REPORT) == ["victim.test"]


@given(valid_reports)
def test_reports_built_by_the_rules_are_valid(obj: dict[str, Any]) -> None:
    assert validate_report(obj) == []


@given(json_values)
def test_any_json_value_gives_findings_never_an_exception(obj: Any) -> None:
    findings = validate_report(obj)
    assert all(isinstance(f, Finding) and f.section.startswith("RFC 8460") for f in findings)
    policy_domains(obj)


@given(report_like)
def test_report_shaped_garbage_gives_findings_never_an_exception(obj: Any) -> None:
    findings = validate_report(obj)
    assert findings or isinstance(obj, dict)


@pytest.mark.parametrize("field", ["organization-name", "date-range", "contact-info",
                                   "report-id", "policies"])
def test_each_required_field(field: str) -> None:
    obj = report()
    del obj[field]
    [finding] = validate_report(obj)
    assert finding.section == "RFC 8460 4.4" and repr(field) in finding.text


@pytest.mark.parametrize(("path", "value", "words"), [
    (("policies", 0, "policy", "policy-type"), "dane", "is not one of"),
    (("policies", 0, "summary", "total-failure-session-count"), -1, "less than the minimum"),
    (("policies", 0, "summary", "total-successful-session-count"), 1.5, "not of type"),
    (("policies", 0, "summary", "total-successful-session-count"), "3", "not of type"),
    (("policies", 0, "failure-details", 0, "failed-session-count"), True, "not of type"),
    (("policies", 0, "policy", "policy-string"), "version: STSv1", "not of type"),
    (("policies", 0, "policy", "mx-host"), [1], "not of type"),
    (("report-id",), "", "should be non-empty"),
])
def test_field_types_and_values(path: tuple[Any, ...], value: Any, words: str) -> None:
    obj = report()
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    findings = validate_report(obj)
    assert sections(findings) == ["RFC 8460 4.4"], findings
    assert words in findings[0].text


def test_result_types_are_those_of_section_4_3() -> None:
    obj = report()
    obj["policies"][0]["failure-details"][0]["result-type"] = "starttls-stripped"
    [finding] = validate_report(obj)
    assert finding.section == "RFC 8460 4.3" and "starttls-stripped" in finding.text


@pytest.mark.parametrize(("start", "end", "words"), [
    ("2026-12-01", "2026-12-01T23:59:59Z", "not an RFC 3339 date-time"),
    ("2026-12-01T00:00:00", "2026-12-01T23:59:59Z", "not an RFC 3339 date-time"),
    ("2026-12-01T00:00:00Z", "2026-13-01T00:00:00Z", "not an RFC 3339 date-time"),
    ("2026-12-02T00:00:00Z", "2026-12-01T23:59:59Z", "start-datetime is after"),
    ("2026-12-01T11:00:00+10:00", "2026-12-01T00:00:00Z", "start-datetime is after"),
])
def test_dates(start: str, end: str, words: str) -> None:
    obj = report(**{"date-range": {"start-datetime": start, "end-datetime": end}})
    [finding] = validate_report(obj)
    assert finding.section == "RFC 8460 4.4" and words in finding.text


def test_equal_dates_and_offsets_are_fine() -> None:
    assert parse_datetime("2026-12-01T00:00:00.5+01:00") is not None
    obj = report(**{"date-range": {"start-datetime": "2026-12-01T01:00:00+01:00",
                                   "end-datetime": "2026-12-01T00:00:00z"}})
    assert validate_report(obj) == []


@given(st.text(max_size=40))
def test_parse_datetime_never_raises(text: str) -> None:
    parse_datetime(text)
