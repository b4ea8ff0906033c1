"""The opportunistic sender (negative control) end to end on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from lab.pki import CertKind
from lab.senders import load_all
from lab.senders.base import Sender
from lab.senders.opportunistic import OpportunisticSender

from .lab_servers import ScriptedMx
from .mini_world import MX1, MX1_ADDR, MiniWorld, run_sender

pytestmark = pytest.mark.integration


def run(tmp_path: Path, body: Callable[[MiniWorld, OpportunisticSender], Awaitable[None]]
        ) -> None:
    run_sender(tmp_path, OpportunisticSender, body)


def test_registered_as_negative_control() -> None:
    load_all()
    assert Sender.registry.get("opportunistic") is OpportunisticSender
    assert OpportunisticSender.control == "negative"


def test_plaintext_when_starttls_missing(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: OpportunisticSender) -> None:
        world.cert(MX1, None)
        status = await world.send(sender)
        assert status["status"] == "sent" and "plaintext" in str(status["reason"])
        assert not world.mx1.received[0].tls
        assert world.policy.requests == []  # no MTA-STS at all
    run(tmp_path, body)


@pytest.mark.parametrize("kind", [CertKind.SELF_SIGNED, CertKind.WRONG_NAME,
                                  CertKind.EXPIRED, CertKind.ROGUE_CA])
def test_tls_with_a_bad_certificate(tmp_path: Path, kind: CertKind) -> None:
    async def body(world: MiniWorld, sender: OpportunisticSender) -> None:
        world.cert(MX1, kind)
        status = await world.send(sender)
        assert status["status"] == "sent"
        assert world.mx1.received[0].tls
        assert [a.get("tls") for a in world.events.of("attempt")] == ["unverified"]
    run(tmp_path, body)


def test_plaintext_retry_after_a_failed_handshake(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: OpportunisticSender) -> None:
        broken = ScriptedMx(world.pki.server_context(MX1), break_handshake=True)
        await world.mx1.close()
        await broken.start(MX1_ADDR, world.env.smtp_port)
        try:
            status = await world.send(sender)
        finally:
            await broken.close()
        assert status["status"] == "sent"
        assert [tls for _, tls in broken.received] == [False]
        assert [a.get("result") for a in world.events.of("attempt")] == ["failed", "delivered"]
        assert any("reconnecting in plaintext" in line for line in world.events.lines())
    run(tmp_path, body)


def test_deferred_when_no_mx_answers(tmp_path: Path) -> None:
    async def body(world: MiniWorld, sender: OpportunisticSender) -> None:
        await world.mx1.close()
        status = await world.send(sender)
        assert status["status"] == "deferred" and "cannot connect" in str(status["reason"])
    run(tmp_path, body)
