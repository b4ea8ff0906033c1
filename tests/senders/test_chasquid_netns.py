"""chasquid end to end inside network namespaces: its own MTA-STS client, its own reset.

Needs root, network namespaces and ``apt-get install chasquid``; skips saying what is missing.
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
from lab.senders.base import OutgoingMessage
from lab.senders.chasquid import ChasquidSender
from lab.world import Domain, Policy, World

pytestmark = pytest.mark.netns
WORLD = World((Domain("victim.test", ("mx1.victim.test",),
                      Policy("enforce", ("mx1.victim.test",))),))
STATUS_DEADLINE_S = 30.0


def _status(mid: str) -> Callable[[list[Event]], Event | None]:
    def pick(events: list[Event]) -> Event | None:
        return next((e for e in events if e.source == "sender" and e.kind == "status"
                     and e.get("message_id") == mid), None)
    return pick


def test_chasquid_delivers_verified_then_refuses_a_stripped_starttls_by_mta_sts() -> None:
    missing = NetnsBackend.check() + ChasquidSender.check()
    if missing:
        pytest.skip("chasquid on netns unavailable: " + "; ".join(missing))

    async def scenario() -> tuple[list[str], Path | None, dict[str, list[float]]]:
        events = EventLog()
        with tempfile.TemporaryDirectory(prefix="mtasts-lab-test-") as d:
            run_dir = Path(d)
            backend = NetnsBackend()
            sender = ChasquidSender()
            root: Path | None = None
            namespaces: list[str] = []
            try:
                topology = await backend.up(run_dir, LabPKI(run_dir / "pki"), events)
                assert backend.net is not None
                namespaces = backend.net.namespaces
                await sender.start(backend.sender_env(run_dir / "sender"))
                root = sender.root
                assert root is not None
                # Phase 1: the valid world: delivered.
                await sender.reset()
                configure_world(backend, topology, WORLD, [])
                probe = OutgoingMessage.probe("rcpt@victim.test", "test", "valid")
                mark = events.mark()
                await sender.inject(probe)
                status = await events.wait_for(_status(probe.message_id), mark,
                                               time.monotonic() + STATUS_DEADLINE_S)
                assert isinstance(status, Event), "no status from chasquid"
                assert status.get("status") == "sent", status.data
                received = [e for e in events.since(mark)
                            if e.source == "sink" and e.kind == "message"]
                assert len(received) == 1 and received[0].get("tls") is True
                assert list((root / "data" / "sts-cache").iterdir())
                assert list((root / "data" / "domaininfo").iterdir())
                # The reset forgets the policy and the domain's security level.
                await sender.reset()
                assert not (root / "data" / "domaininfo").exists() or not list(
                    (root / "data" / "domaininfo").iterdir())
                assert not (root / "data" / "sts-cache").exists() or not list(
                    (root / "data" / "sts-cache").iterdir())
                # Phase 2 (fresh state): strip-starttls under enforce: deferred by MTA-STS.
                configure_world(backend, topology, WORLD, [StripStarttls()])
                probe2 = OutgoingMessage.probe("rcpt@victim.test", "test", "strip")
                mark = events.mark()
                await sender.inject(probe2)
                status = await events.wait_for(_status(probe2.message_id), mark,
                                               time.monotonic() + STATUS_DEADLINE_S)
                assert isinstance(status, Event), "no status from chasquid"
                assert status.get("status") == "deferred", status.data
                assert status.get("mechanism") == "mta-sts", status.data
                assert "PLAIN" in str(status.get("reason"))
                assert not [e for e in events.since(mark)
                            if e.source == "sink" and e.kind == "message"]
            finally:
                await sender.close()
                await backend.down()
        return namespaces, root, sender.timings

    namespaces, root, timings = asyncio.run(scenario())
    assert namespaces and not set(namespaces) & existing_namespaces()
    assert root is not None and not root.exists()
    assert len(timings["reset"]) == 2
