"""The README, --help and the catalogue tables are generated from the code: keep them in step."""

from __future__ import annotations

import re
from pathlib import Path

from lab.docs import render

ROOT = Path(__file__).resolve().parent.parent


def test_generated_blocks_are_in_step() -> None:
    text = (ROOT / "README.md").read_text()
    assert render(text) == text, "run: python -m lab.docs --write README.md"


def test_readme_opens_with_two_commands_and_ci_runs_the_test_command() -> None:
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"^    (\S.*)$", text.split("## The story")[0], re.M)
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.endswith("mtasts-lab run") and tests.endswith("pytest")
    assert tests in (ROOT / ".ci" / "run").read_text()
