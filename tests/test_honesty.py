"""The oracle cannot be fooled: no verdict without a sender that engaged and an attack that
fired (honesty rule 1 in docs/ARCHITECTURE.md). Both cases must end inconclusive, and the
run must exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from lab.cli import main
from lab.senders.base import OutgoingMessage, Sender, SenderEnv

pytestmark = pytest.mark.integration


class NeverConnects(Sender):
    """Accepts every message and does nothing at all: refuses everything, proves nothing."""

    name = "test-never-connects"
    summary = "test double: a sender that never connects"
    own_status: ClassVar[bool] = False

    async def start(self, env: SenderEnv) -> None:
        self.env = env

    async def reset(self) -> None:
        return None

    async def inject(self, message: OutgoingMessage) -> None:
        return None

    async def close(self) -> None:
        return None


SILENT_ATTACK = """
summary: an attack that silently does nothing, expected to stop delivery
refs: ["RFC 8461 5"]
teach: the passthrough attack never fires, so a refusal would prove nothing
timeout: 3
world: {policy: {mode: enforce}}
phases:
  - attacks: [passthrough]
    expect: {outcome: not-delivered}
"""

PLAIN = """
summary: a plain world
refs: ["RFC 8461 5"]
teach: t
timeout: 1
world: {policy: {mode: enforce}}
phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered}
"""


def run(tmp_path: Path, text: str, sender: str) -> tuple[int, list[dict[str, object]]]:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "case.yaml").write_text(text)
    out = tmp_path / "out.json"
    code = main(["run", "-q", "--scenarios-dir", str(tmp_path / "s"), "--sender", sender,
                 "--json", str(out)])
    return code, json.loads(out.read_text())["runs"]


def test_an_attack_that_never_fires_is_inconclusive(tmp_path: Path) -> None:
    code, runs = run(tmp_path, SILENT_ATTACK, "reference")
    attack = next(r for r in runs if r["phase"] == "phase1")
    # the reference sender delivered: without rule 1 this would read as a plain "fail";
    # had it refused for another reason, as a "pass"
    assert attack["verdict"] == "inconclusive"
    assert "never fired" in str(attack["why"])
    assert attack["attack_fired"] is False
    assert code == 1


def test_a_sender_that_never_connects_is_inconclusive(tmp_path: Path) -> None:
    code, runs = run(tmp_path, PLAIN, NeverConnects.name)
    assert {r["verdict"] for r in runs} == {"inconclusive"}
    assert all("engaged" in str(r["why"]) for r in runs)
    assert code == 1
