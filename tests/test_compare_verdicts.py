"""scripts/docker-compare-verdicts: one sender's verdicts across backends, or two versions of
an MTA (``--sender-b``), by verdict alone when asked (``--verdicts-only``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "docker-compare-verdicts"


def _run(sender: str, backend: str, rows: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    return {"runs": [{"scenario": s, "phase": "phase1", "sender": sender, "backend": backend,
                      "verdict": v, "observed": o, "status": st, "why": ""}
                     for s, v, o, st in rows]}


def _compare(tmp_path: Path, a: dict[str, Any], b: dict[str, Any],
             *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "a.json"),
                           str(tmp_path / "b.json"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_two_versions_agree_on_verdicts_though_one_delivers_where_the_other_defers(
        tmp_path: Path) -> None:
    a = _run("chasquid-1.15", "compose", [("x/454", "pass", "delivered-plaintext", "sent"),
                                          ("x/strip", "known-failure", "not-delivered",
                                           "deferred")])
    b = _run("chasquid", "netns", [("x/454", "pass", "not-delivered", "deferred"),
                                   ("x/strip", "known-failure", "not-delivered", "deferred")])
    strict = _compare(tmp_path, a, b, "--sender", "chasquid-1.15", "--sender-b", "chasquid")
    assert strict.returncode == 1 and "1 differ" in strict.stdout
    loose = _compare(tmp_path, a, b, "--sender", "chasquid-1.15", "--sender-b", "chasquid",
                     "--verdicts-only")
    assert loose.returncode == 0, loose.stdout
    assert "0 differ" in loose.stdout and "note: x/454 [phase1]: same verdict" in loose.stdout


def test_a_different_verdict_is_a_difference_even_by_verdict_alone(tmp_path: Path) -> None:
    a = _run("postfix-3.10", "compose", [("c/wildcard", "pass", "not-delivered", "deferred")])
    b = _run("postfix", "netns", [("c/wildcard", "fail", "intercepted", "sent")])
    done = _compare(tmp_path, a, b, "--sender", "postfix-3.10", "--sender-b", "postfix",
                    "--verdicts-only")
    assert done.returncode == 1 and "c/wildcard [phase1]" in done.stdout
