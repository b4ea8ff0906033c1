"""The JSON results match their versioned schema; the JUnit XML reads back with a JUnit
library, with names and messages that CI reporters show well."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from lab import results_schema
from tests.report.conftest import Outputs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("lab").joinpath("schemas", "results-1.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_real_run_matches_the_schema(themes_run: Outputs) -> None:
    doc = themes_run.doc()
    _validator().validate(doc)
    assert doc["schema_version"] == 1
    assert len(doc["runs"]) > 40
    assert {r["scenario"].split("/")[0] for r in doc["runs"]} == {"starttls", "certificates"}
    info = doc["scenarios"]["starttls/strip-starttls-enforce"]
    assert info["attacker_does"] and info["compliant_does"] and "RFC 8461 5" in info["refs"]
    assert info["phases"]["phase1"]["attacks"][0]["name"] == "strip-starttls"


def test_schema_refuses_what_it_must_and_accepts_additions(themes_run: Outputs) -> None:
    doc = themes_run.doc()
    validator = _validator()
    bad = copy.deepcopy(doc)
    bad["runs"][0]["verdict"] = "sort-of"
    assert any("sort-of" in e.message for e in validator.iter_errors(bad))
    del bad["runs"][1]["sender"]
    assert results_schema.errors(bad)[:2] == [
        "runs.0.verdict: 'sort-of' is not one of ['pass', 'fail', 'known-failure', "
        "'unexpected-pass', 'inconclusive', 'error', 'skipped', 'not-exercised']",
        "runs.1: 'sender' is a required property"]
    # what other parts may add later: new levels, the not-exercised verdict, new fields
    grown = copy.deepcopy(doc)
    grown["runs"][0].update(level="may", verdict="not-exercised", notes=["a note"])
    grown["scenarios"]["starttls/strip-starttls-enforce"]["gates"] = {"x": 1}
    grown["something_new"] = True
    validator.validate(grown)


def test_results_doc_is_generated_from_the_schema() -> None:
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    assert text == results_schema.markdown()
    for field in ("`verdict`", "`attack_fired`", "`schema_version`", "`not-exercised`"):
        assert field in text


def test_junit_reads_back_with_names_ci_reporters_show(themes_run: Outputs) -> None:
    xml = JUnitXml.fromfile(str(themes_run.junit))
    cases = [(suite.name, case) for suite in xml for case in suite]
    assert len(cases) == len(themes_run.doc()["runs"])
    assert {name for name, _ in cases} == {"mtasts-lab.reference", "mtasts-lab.opportunistic"}
    for _, case in cases:
        assert "." not in case.classname, case.classname
        assert case.classname.startswith("mtasts-lab/")
    by_name = {case.name: case for _, case in cases}
    strip = by_name["starttls/strip-starttls-enforce [phase1] with opportunistic"]
    assert strip.classname == "mtasts-lab/opportunistic/starttls"
    (skip,) = strip.result
    assert isinstance(skip, Skipped)
    assert skip.message.startswith("known failure of opportunistic: known-failure: expected "
                                   "not-delivered, observed delivered-plaintext: ")
    assert "ATTACK  strip-starttls on mx1.victim.test: removed STARTTLS" in strip.system_out
    assert "VERDICT known-failure" in strip.system_out
    passed = by_name["starttls/strip-starttls-enforce [phase1] with reference"]
    assert passed.is_passed and "VERDICT pass" in passed.system_out
    assert "removed STARTTLS" in passed.system_out


def test_junit_failure_has_a_message_and_details(failing_run: Outputs) -> None:
    assert failing_run.code == 1
    xml = JUnitXml.fromfile(str(failing_run.junit))
    cases = {case.name: case for suite in xml for case in suite}
    case = cases["own/strip-unlisted [phase1] with opportunistic"]
    (failure,) = case.result
    assert isinstance(failure, Failure) and not isinstance(failure, Error)
    assert failure.type == "fail"
    assert failure.message.startswith("fail: expected not-delivered, observed "
                                      "delivered-plaintext: expected not-delivered")
    assert "refs: RFC 8461 5" in (failure.text or "")
    assert "sender's reason: " in (failure.text or "")
    ok = cases["own/strip-unlisted [phase1] with reference"]
    assert ok.is_passed
    _validator().validate(failing_run.doc())
