"""The cache scenarios against Postfix + postfix-mta-sts-resolver on netns: no phase passes
whose attack or world change did not reach the sender.

postfix-mta-sts-resolver makes no DNS query and no fetch for ``cache_grace`` seconds after a
fetch; its verdicts must say so (``not-exercised`` known failures), never read as passes.
Needs root, network namespaces and ``scripts/install-postfix``; skips saying what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.backends.netns import NetnsBackend
from lab.cli import main
from lab.scenario import select
from lab.senders.postfix import PostfixSender

pytestmark = pytest.mark.netns


def test_cache_scenarios_on_postfix_pass_only_with_evidence(tmp_path: Path) -> None:
    missing = NetnsBackend.check() + PostfixSender.check()
    if missing:
        pytest.skip("postfix on netns unavailable: " + "; ".join(missing))
    out = tmp_path / "out.json"
    code = main(["run", "-q", "--backend", "netns", "--sender", "postfix", "cache",
                 "--json", str(out)])
    runs = json.loads(out.read_text())["runs"]
    scenarios = {s.id: s for s in select(["cache"])}
    assert {r["scenario"] for r in runs} == set(scenarios)
    assert code == 0, [(r["scenario"], r["phase"], r["verdict"], r["why"]) for r in runs
                       if r["verdict"] not in ("pass", "known-failure", "not-exercised")]
    for r in runs:
        scenario = scenarios[r["scenario"]]
        if r["phase"] == "baseline":
            continue
        phase = next(p for p in scenario.phases if p.name == r["phase"])
        policy_events = [e for e in r["evidence"] if e["source"] == "policy"]
        sts_queries = [e for e in r["evidence"] if e["source"] == "dns"
                       and str(e.get("name", "")).startswith("_mta-sts.")]
        if r["verdict"] == "pass" and phase.is_attack:
            # every attack fired, or the phase lets the primed cache decide and says so
            silent = [a for a, ev in r["fired"].items() if not ev]
            unread = [k for k, _ in phase.edits if (k == "policy" and not policy_events)
                      or (k == "sts-txt" and not sts_queries)]
            if silent or unread:
                assert phase.state_decides, r
                # a set-up phase (primes) says it was learning; a graded one, its cached state
                said = "a learning phase" if phase.primes else "own cached state"
                assert any(said in n for n in r["notes"]), r
        if r["verdict"] == "not-exercised":
            reason = scenario.known_failures.get("postfix", "")
            assert reason.startswith("not exercised"), r
            # the evidence agrees: the resolver consulted nothing in the phase
            assert not sts_queries and not policy_events, r
        if r["scenario"] == "cache/expired-after-max-age" and r["phase"] == "after-expiry":
            # an expired policy makes the resolver look again: the hidden record reached it
            assert r["fired"]["hide-sts-record"] and r["verdict"] == "pass", r
