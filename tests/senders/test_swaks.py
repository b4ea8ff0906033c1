"""swaks as the sender under test, driven by the two command lines of
docs/BRING-YOUR-OWN-MTA.md exactly as written there (only documented placeholders)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "BRING-YOUR-OWN-MTA.md"
pytestmark = pytest.mark.skipif(shutil.which("swaks") is None,
                                reason="swaks is not installed (Debian package swaks)")

DOWNGRADES = ["starttls/strip-starttls-enforce", "starttls/reject-starttls-454-enforce"]
BAD_CHAINS = ["certificates/swap-certificate-self-signed-enforce",
              "certificates/swap-certificate-rogue-ca-enforce",
              "certificates/swap-certificate-expired-enforce"]
WRONG_NAME = "certificates/swap-certificate-wrong-name-enforce"


NO_ATTACK = {"baseline", "prime"}
"""Phases with no attack: the baseline, and the phase in which the sender learns the policy."""


def documented_run(title: str) -> list[str]:
    """The `mtasts-lab run` arguments of the sh block after the paragraph ``title``."""
    doc = DOC.read_text()
    block = re.search(re.escape(title) + r".*?```sh\n(.*?)```", doc, re.S)
    assert block, title
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    assert argv[:2] == ["mtasts-lab", "run"]
    # drop the themes named at the end: the test picks a few scenarios of those themes
    while argv and argv[-1] in ("starttls", "certificates"):
        argv.pop()
    return [str(ROOT / a) if a.startswith("docs/") else a for a in argv[1:]]


def run(argv: list[str], scenarios: list[str], tmp_path: Path) -> tuple[int, list[Any]]:
    out = tmp_path / "results.json"
    code = main([*argv, "-q", "--json", str(out), *scenarios])
    return code, json.loads(out.read_text())["runs"]


def ends_after_exit(record: dict[str, Any]) -> float:
    """Seconds from swaks's exit to the end of the phase (an upper bound)."""
    (inject,) = [e for e in record["evidence"] if e["source"] == "runner"
                 and e["kind"] == "inject"]
    (exited,) = [e for e in record["evidence"] if e["source"] == "sender"
                 and e["kind"] == "exit" and e["message_id"] == record["message_id"]]
    # the phase starts just before its inject event, so this over-estimates the end
    return float(inject["t"] + record["duration_s"] - exited["t"])


def test_strict_swaks_refuses_downgrades_and_bad_chains(tmp_path: Path) -> None:
    argv = documented_run("Strict (")
    assert "{ca_file}" in " ".join(argv) and "--tls-verify" in " ".join(argv)
    code, records = run(argv, [*DOWNGRADES, *BAD_CHAINS, WRONG_NAME], tmp_path)
    attacked = [r for r in records if r["phase"] not in NO_ATTACK]
    assert {r["scenario"] for r in attacked} == {*DOWNGRADES, *BAD_CHAINS, WRONG_NAME}
    for r in records:
        if r["phase"] in NO_ATTACK:
            assert (r["verdict"], r["observed"]) == ("pass", "delivered-tls"), r["scenario"]
        elif r["scenario"] == WRONG_NAME:  # the expectations file's known failure
            assert (r["verdict"], r["observed"]) == ("known-failure", "intercepted")
        else:
            assert (r["verdict"], r["observed"]) == ("pass", "not-delivered"), r["scenario"]
            assert r["attack_fired"] is True
            assert ends_after_exit(r) < 2.0, (r["scenario"], ends_after_exit(r))
    assert code == 0


def test_opportunistic_swaks_is_caught(tmp_path: Path) -> None:
    argv = documented_run("Opportunistic (")
    code, records = run(argv, [*DOWNGRADES, BAD_CHAINS[0]], tmp_path)
    attacked = [r for r in records if r["phase"] not in NO_ATTACK]
    assert len(attacked) == 3
    for r in attacked:
        assert r["verdict"] == "fail" and r["attack_fired"] is True, r["scenario"]
        expected = "intercepted" if r["scenario"] in BAD_CHAINS else "delivered-plaintext"
        assert r["observed"] == expected, r["scenario"]
    assert code == 1


def test_unknown_scenario_in_expectations_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "expect.yaml"
    bad.write_text("known_failures:\n  starttls/no-such-scenario: because\n")
    argv = documented_run("Opportunistic (")
    assert main([*argv, "--expect", str(bad), DOWNGRADES[0]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{bad}: known_failures.starttls/no-such-scenario: unknown scenario id" in err
