"""The scenario loader: every malformed file gives one error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.scenario import ScenarioError, load_catalogue, load_file, load_text, parse

GOOD = """
summary: strip under enforce
refs: ["RFC 8461 5"]
teach: why
world:
  policy: {mode: enforce}
phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered}
"""


def test_good_scenario_loads_with_baseline() -> None:
    s = load_text(GOOD, "x.yaml", "x")
    assert s.world.domain.name == "victim.test"
    assert s.world.domain.mx == ("mx1.victim.test",)
    assert s.world.domain.policy is not None and s.world.domain.policy.mode == "enforce"
    assert [a.name for a in s.phases[0].attacks] == ["strip-starttls"]
    assert s.baseline is not None and s.baseline.expect.outcome == ("delivered-tls",)
    assert s.phases[0].rcpt == "user@victim.test"


def test_catalogue_ids_are_paths_without_suffix() -> None:
    ids = {s.id for s in load_catalogue()}
    assert "starttls/strip-starttls-enforce" in ids
    assert all("/" in i and not i.endswith(".yaml") for i in ids)


@pytest.mark.parametrize(("change", "field", "words"), [
    ("summary: ''", "summary", "non-empty"),
    ("colour: red", "colour", "unknown field"),
    ("world: {policy: {mode: strict}}", "world.policy.mode", "enforce, testing, none"),
    ("world: {policy: {max_age: 31557601}}", "world.policy.max_age", "between"),
    ("world: {policy: {id: 'has-dash'}}", "world.policy.id", "letters and digits"),
    ("world: {domain: example.com}", "domain", ".test"),
    ("world: {mx: [mx1.victim.test, mx2.victim.test, a.victim.test, b.victim.test,"
     " c.victim.test]}", "world.mx", "at most"),
    ("phases: []", "phases", "non-empty"),
    ("phases: [{expect: {outcome: lost}}]", "phases[0].expect.outcome[0]", "one of"),
    ("phases: [{attacks: [nope], expect: {outcome: not-delivered}}]",
     "phases[0].attacks[0]", "unknown attack"),
    ("phases: [{attacks: [{swap-certificate: {certificat: expired}}],"
     " expect: {outcome: not-delivered}}]", "phases[0].attacks[0].swap-certificate.certificat",
     "unknown field"),
    ("phases: [{attacks: [{swap-certificate: {certificate: forged}}],"
     " expect: {outcome: not-delivered}}]",
     "phases[0].attacks[0].swap-certificate.certificate", "one of"),
    ("phases: [{attacks: [{strip-starttls: {mx: mx9.victim.test}}],"
     " expect: {outcome: not-delivered}}]", "phases[0].attacks[0].strip-starttls.mx",
     "not an MX host"),
    ("phases: [{expect: {outcome: delivered-tls, level: maybe}}]", "phases[0].expect.level",
     "must, should, may"),
    ("known_failures: {opportunistic: ''}", "known_failures.opportunistic", "reason"),
    ("timeout: 0", "timeout", "between"),
    ("phases: [{expect: {outcome: delivered-tls, report: some}}]", "phases[0].expect.report",
     "must be none or a mapping"),
    ("phases: [{expect: {outcome: delivered-tls, report: {result_type: tls-broke}}}]",
     "phases[0].expect.report.result_type", "starttls-not-supported"),
    ("phases: [{expect: {outcome: delivered-tls, report: {result_type: [tlsa-invalid, x]}}}]",
     "phases[0].expect.report.result_type[1]", "tlsa-invalid"),
    ("phases: [{expect: {outcome: delivered-tls, report: {result_type: []}}}]",
     "phases[0].expect.report.result_type", "at least one"),
    ("phases: [{expect: {outcome: delivered-tls, report: {policy_type: dane}}}]",
     "phases[0].expect.report.policy_type", "sts, tlsa, no-policy-found"),
    ("phases: [{expect: {outcome: delivered-tls, report: {transport: [ftp]}}}]",
     "phases[0].expect.report.transport[0]", "https, mailto"),
    ("phases: [{expect: {outcome: delivered-tls, report: {failures: -1}}}]",
     "phases[0].expect.report.failures", "between"),
    ("phases: [{expect: {outcome: delivered-tls, report: {mx_host: mx.example.com}}}]",
     "phases[0].expect.report.mx_host", ".test"),
    ("phases: [{expect: {outcome: delivered-tls, report: {count: 1}}}]",
     "phases[0].expect.report.count", "unknown field"),
    ("world: {smart_host: relay.test}", "world.smart_host", "one of other_domains"),
    ("world: {smart_host: relay.example}", "world.smart_host", ".test"),
    ("phases: [{expect: {outcome: delivered-tls, refreshed: true}}]",
     "phases[0].expect.refreshed", "wait_s"),
])
def test_errors_name_the_file_and_the_field(change: str, field: str, words: str) -> None:
    data = yaml.safe_load(GOOD)
    data.update(yaml.safe_load(change))
    with pytest.raises(ScenarioError) as info:
        parse(data, "themes/bad.yaml", "themes/bad")
    message = str(info.value)
    assert message.startswith("themes/bad.yaml: ")
    assert field in message and words in message
    assert "\n" not in message


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(ScenarioError, match=r"^b\.yaml: line \d+: not valid YAML"):
        load_text("summary: x\nrefs: [unclosed\n", "b.yaml", "b")


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ScenarioError, match="duplicate key 'summary'"):
        load_text("summary: a\nsummary: b\n", "d.yaml", "d")


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="line 1: not UTF-8"):
        load_file(bad)


def test_phase_world_changes_accumulate() -> None:
    text = GOOD.replace("""phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered}""", """phases:
  - expect: {outcome: delivered-tls}
  - world: {policy: {mode: none, id: two}}
    expect: {outcome: delivered-tls}
  - expect: {outcome: delivered-tls}""")
    s = load_text(text, "p.yaml", "p")
    modes = [p.world.domain.policy.mode for p in s.phases if p.world.domain.policy]
    assert modes == ["enforce", "none", "none"]
    assert s.baseline is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["summary", "refs", "teach", "world", "phases", "mx",
                                       "policy", "mode", "attacks", "expect", "outcome",
                                       "domain", "strip-starttls", "x"]), children, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_structure_gives_a_scenario_or_a_scenario_error(data: object) -> None:
    try:
        parse(data, "h.yaml", "h")
    except ScenarioError as exc:
        assert str(exc).startswith("h.yaml: ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_scenario_or_a_scenario_error(text: str) -> None:
    try:
        load_text(text, "t.yaml", "t")
    except ScenarioError as exc:
        assert str(exc).startswith("t.yaml: ")


def test_report_expectation_loads() -> None:
    data = yaml.safe_load(GOOD)
    data["phases"][0]["expect"]["report"] = {
        "policy_type": "sts", "result_type": "starttls-not-supported", "failures": 1,
        "transport": ["mailto"], "reporter_level": "must"}
    data["phases"].append({"expect": {"outcome": "delivered-tls", "report": "none"}})
    s = parse(data, "x.yaml", "x")
    report = s.phases[0].expect.report
    assert report is not None and report.transport == ("mailto",)
    assert (report.failures, report.successes, report.level, report.reporter_level) == (
        1, None, "should", "must")
    assert s.phases[1].expect.report is not None and s.phases[1].expect.report.none
    assert s.baseline is not None and s.baseline.expect.report is None
    assert report.result_type == ("starttls-not-supported",)
    assert report.as_dict()["result_type"] == "starttls-not-supported"


def test_a_report_may_name_each_result_type_the_rfc_allows() -> None:
    data = yaml.safe_load(GOOD)
    data["phases"][0]["expect"]["report"] = {
        "policy_type": "tlsa", "result_type": ["tlsa-invalid", "validation-failure",
                                               "tlsa-invalid"]}
    report = parse(data, "x.yaml", "x").phases[0].expect.report
    assert report is not None
    assert report.result_type == ("tlsa-invalid", "validation-failure")
    assert report.as_dict()["result_type"] == ["tlsa-invalid", "validation-failure"]


def test_a_smart_host_is_the_policy_domain() -> None:
    data = yaml.safe_load(GOOD)
    data["world"] = {"policy": {"mode": "enforce"}, "smart_host": "relay.test",
                     "other_domains": [{"domain": "relay.test", "policy": {"mode": "testing"}}]}
    world = parse(data, "t.yaml", "t").world
    assert world.smart_host == "relay.test"
    assert world.policy_domain.name == "relay.test" and world.domain.name == "victim.test"
    data["world"].pop("smart_host")
    assert parse(data, "t.yaml", "t").world.policy_domain.name == "victim.test"
