"""One real run of the starttls and certificates themes, shared by the report tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.cli import main


@dataclass(frozen=True)
class Outputs:
    code: int
    json: Path
    junit: Path
    html: Path

    def doc(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.json.read_text())
        return loaded


def run_cli(folder: Path, *args: str) -> Outputs:
    out = Outputs(0, folder / "results.json", folder / "results.xml", folder / "results.html")
    code = main(["run", *args, "-q", "--json", str(out.json), "--junit", str(out.junit),
                 "--html", str(out.html)])
    return Outputs(code, out.json, out.junit, out.html)


@pytest.fixture(scope="session")
def themes_run(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    """``mtasts-lab run starttls certificates`` with every output (about 35 s)."""
    return run_cli(tmp_path_factory.mktemp("themes"), "starttls", "certificates")


FAILING = """
summary: STARTTLS stripped under enforce, with no known failure listed
refs: ["RFC 8461 5"]
teach: The opportunistic sender fails this one for real.
attacker_does: Deletes STARTTLS from the EHLO reply.
compliant_does: Defers the message.
world: {policy: {mode: enforce}}
phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered, status: deferred, level: must}
"""


@pytest.fixture(scope="session")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    """A run with a real failure: the opportunistic sender under an enforce policy."""
    folder = tmp_path_factory.mktemp("failing")
    (folder / "scn" / "own").mkdir(parents=True)
    (folder / "scn" / "own" / "strip-unlisted.yaml").write_text(FAILING)
    return run_cli(folder, "--scenarios-dir", str(folder / "scn"))
