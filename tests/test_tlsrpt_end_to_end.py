"""TLS-RPT end to end on loopback: the reference sender's reports reach the lab's collector
by HTTPS and by mail and meet every expectation of the tlsrpt theme; the negative control
sends none, so each report phase is its known failure."""

from __future__ import annotations

import asyncio

import pytest

from lab.oracle import KNOWN_FAILURE, PASS
from lab.run_record import Record
from lab.runner import RunOptions, run_catalogue
from lab.scenario import select


@pytest.fixture(scope="module")
def records() -> list[Record]:
    options = RunOptions(senders=["reference", "opportunistic"], grace_s=0.3)
    return asyncio.run(run_catalogue(select(["tlsrpt"]), options, jobs=2))


@pytest.mark.integration
def test_reference_passes_every_tlsrpt_phase(records: list[Record]) -> None:
    mine = [r for r in records if r.sender == "reference"]
    assert mine and all(r.verdict == PASS and not r.advisory for r in mine), [
        f"{r.scenario} [{r.phase}] {r.verdict}: {r.why}" for r in mine if r.verdict != PASS]


@pytest.mark.integration
def test_reports_arrive_by_both_transports_and_validate(records: list[Record]) -> None:
    [both] = [r for r in records if r.sender == "reference"
              and r.scenario == "tlsrpt/strip-starttls-report-both" and r.phase == "phase1"]
    assert sorted(x["transport"] for x in both.reports) == ["https", "mailto"]
    for report in both.reports:
        assert report["delivered"] and report["findings"] == []
        [entry] = report["report"]["policies"]
        assert entry["failure-details"][0]["result-type"] == "starttls-not-supported"


@pytest.mark.integration
def test_record_none_means_no_report(records: list[Record]) -> None:
    phases = [r for r in records if r.sender == "reference"
              and r.scenario == "tlsrpt/record-absent-or-broken"]
    assert len(phases) == 3 and all(r.reports == [] for r in phases)


@pytest.mark.integration
def test_negative_control_sends_no_report(records: list[Record]) -> None:
    report_phases = [r for r in records if r.sender == "opportunistic"
                     and r.report_expected and not r.report_expected.get("none")]
    assert report_phases and all(r.reports == [] for r in report_phases)
    assert any(r.verdict == KNOWN_FAILURE for r in report_phases)


@pytest.mark.integration
def test_retry_after_the_collector_failed_once(records: list[Record]) -> None:
    [r6] = [r for r in records if r.sender == "reference"
            and r.scenario == "tlsrpt/collector-fails-once" and r.phase == "phase1"]
    assert [x.get("status") for x in r6.reports] == [500, 200]
