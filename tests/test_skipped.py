"""Phases that cannot run here are reported as skipped with the reason: never passed."""

from __future__ import annotations

import asyncio

import pytest

from lab.backends.loopback import LoopbackBackend
from lab.report import junit
from lab.run_record import exit_code
from lab.runner import Runner, RunOptions
from lab.scenario import load_text

pytestmark = pytest.mark.integration


class NoStripLoopback(LoopbackBackend):
    name = "test-no-strip-loopback"
    unsupported_attacks = {"strip-starttls": "this test backend cannot strip STARTTLS"}


SCENARIO = load_text("""
summary: strip under enforce
refs: ["RFC 8461 5"]
teach: t
world: {policy: {mode: enforce}}
phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered}
""", "skip.yaml", "skip")


def test_unsupported_attack_is_skipped_with_its_reason() -> None:
    options = RunOptions(backend=NoStripLoopback.name, senders=["reference"])
    records = asyncio.run(Runner(options).run([SCENARIO]))
    assert [(r.phase, r.verdict) for r in records] == [("baseline", "skipped"),
                                                       ("phase1", "skipped")]
    assert all("cannot strip STARTTLS" in r.why for r in records)
    assert all(r.observed is None and r.attack_fired is None for r in records)
    assert exit_code(records) == 0
    cases = junit(records).findall(".//testcase")
    assert all(case.find("skipped") is not None for case in cases)
