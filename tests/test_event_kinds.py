"""Every event the lab emits is declared in ``lab.events.KINDS``, with its payload fields.

Two nets: the lab runs a spread of scenarios with ``EventLog(check=True)`` (every event that
really happens), and a scan of the source for literal kinds (also the senders that need
root or Docker to run).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from lab.events import (
    COLLECTOR,
    DNS,
    KINDS,
    POLICY,
    PROXY,
    RUNNER,
    SENDER,
    SINK,
    EventLog,
    problem,
)
from lab.runner import Runner, RunOptions
from lab.scenario import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
SPREAD = (
    "starttls/strip-starttls-enforce", "starttls/abort-handshake-enforce",
    "starttls/reset-after-handshake-enforce", "injection/inject-response-enforce",
    "policy-fetch/redirect-301", "policy-fetch/trickle-body", "policy-fetch/unreachable",
    "policy-fetch/certificate-rogue-ca", "discovery/sts-txt-truncated-over-udp",
    "mx/spoof-mx-enforce", "cache/same-id-mode-none-kept",
)


def test_the_check_names_an_undeclared_kind_and_field() -> None:
    log = EventLog(check=True)
    log.emit(PROXY, "connect", {"conn": "c", "mx": "m", "peer": "p"})
    log.emit(PROXY, "teleported", {})
    log.emit(SINK, "connect", {"peer": "p", "mx": "m", "colour": "red"})
    assert log.undeclared == [
        "event kind ('proxy', 'teleported') is not declared in lab.events.KINDS",
        "event ('sink', 'connect') carries undeclared fields ['colour']",
    ]
    assert len(log.since()) == 3  # the check changes nothing the oracle sees
    assert problem(SINK, "connect", {"container": "mx0"}) is None


def test_a_run_emits_only_declared_kinds(tmp_path: Path) -> None:
    scenarios = [s for s in load_catalogue() if s.id in SPREAD]
    assert len(scenarios) == len(SPREAD)
    runner = Runner(RunOptions(run_dir=tmp_path))
    runner.events = EventLog(check=True)
    asyncio.run(runner.run(scenarios))
    assert runner.events.undeclared == []
    seen = {(e.source, e.kind) for e in runner.events.since()}
    # the spread reaches every source and most kinds: the check saw real traffic
    assert {s for s, _ in seen} == {DNS, POLICY, PROXY, SINK, SENDER, RUNNER}
    assert len(seen) >= 20, sorted(seen)


# Literal kinds in the source: emit(SOURCE, "kind"), and the helpers that fix the source.
_CONSTS = {"DNS": DNS, "POLICY": POLICY, "PROXY": PROXY, "SINK": SINK, "SENDER": SENDER,
           "RUNNER": RUNNER, "COLLECTOR": COLLECTOR}
_DIRECT = re.compile(
    r"\bemit\(\s*(DNS|POLICY|PROXY|SINK|SENDER|RUNNER|COLLECTOR)\s*,\s*\"([\w-]+)\"")
_HELPERS = (  # (files, call, source)
    (("lab/smtp/*.py", "lab/proxy/*.py"), re.compile(r"\b_emit\(\s*\"([\w-]+)\""), PROXY),
    (("lab/policy_host/mitm.py",), re.compile(r"\breport\(\s*\"([\w-]+)\""), POLICY),
    (("lab/senders/*.py",), re.compile(r"\bself\.emit\(\s*\"([\w-]+)\""), SENDER),
)


def _literal_kinds() -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / "lab").rglob("*.py"):
        text = path.read_text()
        found |= {(_CONSTS[c], k) for c, k in _DIRECT.findall(text)}
    for globs, call, source in _HELPERS:
        for glob in globs:
            for path in ROOT.glob(glob):
                found |= {(source, k) for k in call.findall(path.read_text())}
    return found


def test_every_literal_kind_in_the_source_is_declared() -> None:
    found = _literal_kinds()
    assert len(found) >= 25, sorted(found)  # the scan still finds the emit calls
    assert sorted(found - set(KINDS)) == []
