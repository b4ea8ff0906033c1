"""An inconclusive scenario runs again from a reset sender; passes and failures never do.

The sender is swaks through ``--sender command``, wrapped so that its first run does nothing
(the lab sees no engagement at all, which is inconclusive) and later runs deliver."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.cli import main

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None,
                                reason="swaks is not installed (Debian package swaks)")

SCENARIO = "starttls/strip-starttls-no-policy"
SWAKS = ("swaks --server {mx} --to {rcpt} --from {from} --data {message_file} "
         "--helo sender.test --tls-optional")


def run(tmp_path: Path, *extra: str) -> tuple[int, list[dict[str, Any]], Path]:
    flag = tmp_path / "first-run-done"
    # the first invocation only leaves the flag; every later one is swaks
    marker = shlex.quote(str(flag))
    cmd = f"sh -c 'if test -e {marker}; then exec \"$@\"; fi; : > {marker}' sh {SWAKS}"
    out = tmp_path / "results.json"
    code = main(["run", "-q", "--sender", "command", "--sender-opt", f"cmd={cmd}",
                 "--json", str(out), *extra, SCENARIO])
    return code, json.loads(out.read_text())["runs"], flag


def test_inconclusive_first_attempt_runs_again(tmp_path: Path) -> None:
    code, records, flag = run(tmp_path)
    assert flag.exists()
    assert [r["phase"] for r in records] == ["baseline", "phase1"]  # one set, not two
    for r in records:
        assert r["verdict"] == "pass", (r["phase"], r["why"])
        assert any("attempt 1 was inconclusive" in n and "engaged" in n
                   for n in r["notes"]), r["notes"]
    assert code == 0


def test_without_retries_the_inconclusive_verdict_stands(tmp_path: Path) -> None:
    code, records, _ = run(tmp_path, "--retry-inconclusive", "0")
    assert [r["verdict"] for r in records] == ["inconclusive", "inconclusive"]
    assert not any("attempt" in note for r in records for note in r["notes"])
    assert code == 1


def test_retry_count_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--retry-inconclusive", "9", SCENARIO]) == 2
    assert "--retry-inconclusive 9" in capsys.readouterr().err
