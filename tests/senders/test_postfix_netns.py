"""Postfix + postfix-mta-sts-resolver end to end inside network namespaces.

Needs root, network namespaces and ``scripts/install-postfix``; skips saying what is missing.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.attacks.strip_starttls import StripStarttls
from lab.backends.netns import NetnsBackend
from lab.backends.netns_state import existing_namespaces
from lab.events import Event, EventLog
from lab.pki import LabPKI
from lab.runner import configure_world
from lab.senders.base import OutgoingMessage, Sender
from lab.senders.postfix import PostfixPypiSender, PostfixSender
from lab.world import Domain, Policy, World

pytestmark = pytest.mark.netns
WORLD = World((Domain("victim.test", ("mx1.victim.test",),
                      Policy("enforce", ("mx1.victim.test",))),))
STATUS_DEADLINE_S = 30.0


def _missing(cls: type[PostfixSender]) -> list[str]:
    return NetnsBackend.check() + cls.check()


def _status(mid: str) -> Callable[[list[Event]], Event | None]:
    def pick(events: list[Event]) -> Event | None:
        return next((e for e in events if e.source == "sender" and e.kind == "status"
                     and e.get("message_id") == mid), None)
    return pick


@pytest.mark.parametrize("cls", [PostfixSender, PostfixPypiSender], ids=lambda c: c.name)
def test_valid_enforce_delivers_verified_and_strip_starttls_is_deferred(
        cls: type[PostfixSender]) -> None:
    missing = _missing(cls)
    if missing:
        pytest.skip(f"{cls.name} on netns unavailable: " + "; ".join(missing))
    assert issubclass(cls, Sender) and cls.own_status

    async def scenario() -> tuple[list[str], Path | None]:
        events = EventLog()
        with tempfile.TemporaryDirectory(prefix="mtasts-lab-test-") as d:
            run_dir = Path(d)
            backend = NetnsBackend()
            sender = cls()
            inst: Path | None = None
            namespaces: list[str] = []
            try:
                topology = await backend.up(run_dir, LabPKI(run_dir / "pki"), events)
                assert backend.net is not None
                namespaces = backend.net.namespaces
                await sender.start(backend.sender_env(run_dir / "sender"))
                inst = sender.inst
                # Phase 1: the valid world: delivered over verified TLS.
                await sender.reset()
                configure_world(backend, topology, WORLD, [])
                probe = OutgoingMessage.probe("rcpt@victim.test", "test", "valid")
                mark = events.mark()
                await sender.inject(probe)
                status = await events.wait_for(_status(probe.message_id), mark,
                                               time.monotonic() + STATUS_DEADLINE_S)
                assert isinstance(status, Event), "no status from Postfix"
                assert status.get("status") == "sent", status.data
                assert status.get("mx") == "mx1.victim.test"
                lines = [e.get("line") for e in events.since(mark)
                         if e.source == "sender" and e.kind == "log"
                         and e.get("message_id") == probe.message_id]
                assert any("Verified TLS connection established to mx1.victim.test" in ln
                           for ln in lines), lines
                assert any("Lookup PERFORMED: domain = victim.test" in ln for ln in lines)
                received = [e for e in events.since(mark)
                            if e.source == "sink" and e.kind == "message"]
                assert len(received) == 1 and received[0].get("tls") is True
                # Phase 2: strip-starttls under enforce: Postfix defers, 4.7.x.
                configure_world(backend, topology, WORLD, [StripStarttls()])
                probe2 = OutgoingMessage.probe("rcpt@victim.test", "test", "strip")
                mark = events.mark()
                await sender.inject(probe2)
                status = await events.wait_for(_status(probe2.message_id), mark,
                                               time.monotonic() + STATUS_DEADLINE_S)
                assert isinstance(status, Event), "no status from Postfix"
                assert status.get("status") == "deferred", status.data
                assert str(status.get("dsn")).startswith("4.7."), status.data
                assert "TLS is required" in str(status.get("reason"))
                fired = [e for e in events.since(mark)
                         if e.source == "proxy" and e.kind == "attack-fired"]
                assert fired and fired[0].get("attack") == "strip-starttls"
                assert not [e for e in events.since(mark)
                            if e.source == "sink" and e.kind == "message"]
            finally:
                await sender.close()
                await backend.down()
        return namespaces, inst

    namespaces, inst = asyncio.run(scenario())
    assert namespaces and not set(namespaces) & existing_namespaces()
    assert inst is not None and not inst.exists()
