"""The command line: exit codes, one-line errors, the results contract, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.cli import main

REQUIRED = {"scenario", "phase", "sender", "backend", "expected", "observed", "verdict",
            "level", "attack_fired", "duration_s", "reason", "refs"}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_malformed_scenario_is_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    write(tmp_path, "theme/broken.yaml", """
summary: broken on purpose
refs: [x]
teach: t
world: {policy: {mode: enforced}}
phases: [{expect: {outcome: delivered-tls}}]
""")
    out = cli("run", "--scenarios-dir", str(tmp_path), "--json", str(tmp_path / "o.json"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "theme/broken.yaml" in lines[0] and "world.policy.mode" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("args", [
    ["run", "--sender", "nobody"],
    ["run", "--backend", "moon"],
    ["run", "no/such-scenario"],
    ["run", "--json", "/nonexistent-dir/out.json"],
    ["run", "--sender-opt", "colour=blue"],
    ["explain", "no/such-scenario"],
])
def test_bad_usage_exits_2_with_one_line(args: list[str]) -> None:
    out = cli(*args)
    assert out.returncode == 2, out
    assert out.stderr.startswith("mtasts-lab: error: ") and "Traceback" not in out.stderr


def test_list_comes_from_the_code() -> None:
    attacks = cli("list", "attacks").stdout
    for name in ("passthrough", "strip-starttls", "swap-certificate"):
        assert name in attacks
    assert "certificate:" in attacks  # options are listed with their types
    assert "reference" in cli("list", "senders").stdout
    assert "loopback" in cli("list", "backends").stdout
    assert "starttls/strip-starttls-enforce" in cli("list", "scenarios").stdout


def test_explain_tells_the_story() -> None:
    out = cli("explain", "starttls/strip-starttls-enforce")
    assert out.returncode == 0
    for words in ("What the attacker does", "What a compliant sender does", "RFC 8461",
                  "Known failures", "opportunistic"):
        assert words in out.stdout


@pytest.mark.integration
def test_run_writes_the_results_contract(tmp_path: Path) -> None:
    out = [tmp_path / n for n in ("r.json", "r.xml", "r.html")]
    code = main(["run", "starttls/strip-starttls-enforce", "-q", "--json", str(out[0]),
                 "--junit", str(out[1]), "--html", str(out[2])])
    assert code == 0
    doc = json.loads(out[0].read_text())
    assert doc["exit_code"] == 0 and doc["backend"] == "loopback"
    runs = doc["runs"]
    assert {(r["sender"], r["phase"]) for r in runs} == {
        ("reference", "baseline"), ("reference", "prime"), ("reference", "phase1"),
        ("opportunistic", "baseline"), ("opportunistic", "prime"), ("opportunistic", "phase1")}
    for r in runs:
        assert set(r) >= REQUIRED
    attack = {r["sender"]: r for r in runs if r["phase"] == "phase1"}
    assert attack["reference"]["verdict"] == "pass"
    assert attack["reference"]["attack_fired"] is True
    assert attack["reference"]["reason"].startswith("4.7")
    assert attack["opportunistic"]["verdict"] == "known-failure"
    assert attack["opportunistic"]["observed"] == "delivered-plaintext"
    suites = ET.parse(out[1]).getroot().findall("testsuite")
    assert {s.get("name") for s in suites} == {"mtasts-lab.reference",
                                               "mtasts-lab.opportunistic"}
    assert sum(int(s.get("skipped", "0")) for s in suites) == 1
    page = out[2].read_text()
    assert "strip-starttls" in page and "removed STARTTLS" in page
