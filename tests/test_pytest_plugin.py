"""The pytest plugin, run as a user would: pytest in a folder holding the documented
examples (docs/examples/pytest), in a subprocess so the entry point is what loads it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.scenario import select

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "pytest"


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                           *args, str(folder)], capture_output=True, text=True, timeout=300,
                          cwd=folder, check=False)


def counts(out: str) -> dict[str, int]:
    summary = out.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


def phases(*scenario_ids: str) -> int:
    """How many tests the plugin makes: one per phase, the baseline included."""
    return sum(len(s.phases) + (1 if s.baseline else 0) for s in select(list(scenario_ids)))


STRIP, SELF_SIGNED = ("starttls/strip-starttls-enforce",
                      "certificates/swap-certificate-self-signed-enforce")


def test_reference_example_one_test_per_phase(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "mtasts_lab_reference.yaml", tmp_path)
    done = pytest_in(tmp_path, "-v")
    assert done.returncode == 0, done.stdout + done.stderr
    assert counts(done.stdout) == {"passed": phases(STRIP, SELF_SIGNED)}, done.stdout
    for test in ("starttls/strip-starttls-enforce[baseline]",
                 "starttls/strip-starttls-enforce[phase1]",
                 "certificates/swap-certificate-self-signed-enforce[phase1]"):
        assert f"mtasts_lab_reference.yaml::{test} PASSED" in done.stdout


def test_known_failure_is_an_xfail_and_selection_runs_only_what_is_selected(
        tmp_path: Path) -> None:
    (tmp_path / "mtasts_lab_negative.yaml").write_text(
        "sender: opportunistic\nscenarios: [starttls/strip-starttls-enforce, "
        "certificates/swap-certificate-self-signed-enforce]\n")
    done = pytest_in(tmp_path, "-k", "strip and phase1")
    assert counts(done.stdout) == {"xfailed": 1,
                                   "deselected": phases(STRIP, SELF_SIGNED) - 1}, done.stdout
    assert done.returncode == 0


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_example_fails_with_the_transcript(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "mtasts_lab_swaks.yaml", tmp_path)
    done = pytest_in(tmp_path)
    assert done.returncode == 1
    # the attack phase fails; the baseline and the priming phase deliver over TLS
    assert counts(done.stdout) == {"failed": 1, "passed": phases(STRIP) - 1}, done.stdout
    failure = done.stdout.split("= FAILURES =", 1)[1]
    assert "command: starttls/strip-starttls-enforce [phase1]: fail (expected " \
           "not-delivered, observed delivered-plaintext)" in failure
    # the narrated transcript: the stripped capability and swaks's own output
    assert "--- command: starttls/strip-starttls-enforce [phase1] ---" in failure
    assert "STARTTLS" in failure and "SENDER" in failure


def test_bad_file_is_one_collection_error(tmp_path: Path) -> None:
    (tmp_path / "mtasts_lab_bad.yaml").write_text("sender: reference\nscenario: [x]\n")
    done = pytest_in(tmp_path)
    assert done.returncode == 2
    assert "mtasts_lab_bad.yaml: unknown field 'scenario'" in done.stdout
    assert "Traceback" not in done.stdout
