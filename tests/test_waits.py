"""The evidence waits end on the event itself; a deadline that is hit is reported."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lab.events import POLICY, PROXY, RUNNER, SINK, EventLog
from lab.waits import (
    NotReady,
    lab_side_account,
    open_sessions,
    receipt_after_sent,
    services_ready,
    services_synced,
    sessions_closed,
    wait_reported,
)


def timeouts(log: EventLog) -> list[dict[str, Any]]:
    return [dict(e.data) for e in log.select(source=RUNNER, kind="wait-timeout")]


def test_sessions_closed_ends_on_the_close_event_not_the_deadline() -> None:
    async def main() -> float:
        log = EventLog()
        log.emit(PROXY, "connect", {"conn": "mx1/1"})
        asyncio.get_running_loop().call_later(0.05, log.emit, PROXY, "close", {"conn": "mx1/1"})
        started = time.monotonic()
        assert await sessions_closed(log, 0, deadline_s=60)
        assert timeouts(log) == []
        return time.monotonic() - started

    assert asyncio.run(main()) < 30  # far below the deadline: the event ended it


def test_a_session_left_open_is_reported_by_name() -> None:
    async def main() -> None:
        log = EventLog()
        log.emit(PROXY, "connect", {"conn": "mx1/1"})
        log.emit(PROXY, "connect", {"conn": "mx1/2"})
        log.emit(PROXY, "close", {"conn": "mx1/1"})
        assert not await sessions_closed(log, 0, deadline_s=0.01)
        [report] = timeouts(log)
        assert report["missing"] == ["mx1/2"]
        assert "sessions to close" in report["waited_for"]

    asyncio.run(main())


def test_a_fetch_handed_to_mitmproxy_is_open_until_mitmproxy_is_done_with_it() -> None:
    """The soak's flip: the sender gave up on the attacker's certificate and reported its
    status before mitmproxy's ``mitm-handshake-failed`` arrived; the phase's evidence must
    wait for mitmproxy's last event of that connection."""
    async def main() -> None:
        log = EventLog()
        log.emit(POLICY, "intercept", {"peer": "127.0.0.1:5", "via": "127.0.0.1:7"})
        log.emit(POLICY, "mitm-closed", {"via": "127.0.0.1:9"})  # another connection's end
        assert open_sessions(log.since(0)) == {"mitm 127.0.0.1:7"}
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, log.emit, POLICY, "mitm-handshake-failed", {"sni": "mta-sts.x"})
        loop.call_later(0.06, log.emit, POLICY, "mitm-closed", {"via": "127.0.0.1:7"})
        assert await sessions_closed(log, 0, deadline_s=60)
        assert timeouts(log) == []
        assert [e.kind for e in log.since(0)][-2:] == ["mitm-handshake-failed", "mitm-closed"]

    asyncio.run(main())


def test_receipt_after_sent_waits_for_a_late_receipt() -> None:
    async def main() -> None:
        log = EventLog()
        log.emit(SINK, "message", {"message_id": "<other@x.test>"})
        asyncio.get_running_loop().call_later(
            0.05, log.emit, SINK, "message", {"message_id": "<m@x.test>"})
        assert await receipt_after_sent(log, 0, "<m@x.test>", deadline_s=60)
        assert timeouts(log) == []
        assert not await receipt_after_sent(log, 0, "<never@x.test>", deadline_s=0.01)
        assert "<never@x.test>" in timeouts(log)[0]["waited_for"]

    asyncio.run(main())


def test_wait_reported_returns_the_value_and_reports_only_on_timeout() -> None:
    async def main() -> None:
        log = EventLog()
        log.emit(SINK, "message", {})
        assert await wait_reported(log, lambda ev: len(ev), 0, time.monotonic() + 5, "x") == 1
        assert timeouts(log) == []
        assert await wait_reported(log, lambda ev: [], 0, time.monotonic(), "nothing") == []
        assert [t["waited_for"] for t in timeouts(log)] == ["nothing"]

    asyncio.run(main())


class _Policy:
    def __init__(self) -> None:
        self.up = asyncio.Event()

    async def ready(self) -> bool:
        await self.up.wait()
        return True


class _Services:
    def __init__(self) -> None:
        self.policy = _Policy()


def test_services_ready_waits_for_the_signal_and_says_how_long() -> None:
    async def main() -> None:
        log, services = EventLog(), _Services()
        asyncio.get_running_loop().call_later(0.05, services.policy.up.set)
        await services_ready(services, log, deadline_s=60)
        [ready] = log.select(source=RUNNER, kind="ready")
        assert ready.get("after_s") >= 0.04
        await services_ready(object(), log)  # no policy host of its own: nothing to wait for

    asyncio.run(main())


def test_services_ready_deadline_is_an_error_that_names_it() -> None:
    async def main() -> None:
        log = EventLog()
        with pytest.raises(NotReady, match=r"mitmproxy did not listen within 0\.01 s"):
            await services_ready(_Services(), log, deadline_s=0.01)
        assert timeouts(log)[0]["waited_for"] == "the attacker's mitmproxy to listen"

    asyncio.run(main())


def test_lab_side_account_says_what_the_sender_did() -> None:
    log = EventLog()
    assert lab_side_account(log.since(0), 20).startswith("no connection to any MX within 20 s")
    log.emit(PROXY, "connect", {"conn": "mx1/1", "mx": "mx1.victim.test"})
    assert open_sessions(log.since(0)) == {"mx1/1"}
    log.emit(PROXY, "close", {"conn": "mx1/1", "mx": "mx1.victim.test",
                              "reason": "client closed"})
    assert lab_side_account(log.since(0), 20) == (
        "1 connection(s) to mx1.victim.test; the last closed: client closed; "
        "no delivery within 20 s")


class _Remote:
    """Services whose events arrive by another channel: ``sync`` ends when they caught up."""

    def __init__(self, log: EventLog, hang: bool = False) -> None:
        self.log, self.hang = log, hang

    async def sync(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.log.emit(PROXY, "attack-fired", {"attack": "strip-starttls"})


def test_services_synced_lets_late_evidence_in_and_reports_a_hang() -> None:
    async def main() -> None:
        log = EventLog()
        await services_synced(object(), log)  # in-process services: nothing to wait for
        assert log.since(0) == []
        await services_synced(_Remote(log), log, deadline_s=60)
        assert [e.kind for e in log.since(0)] == ["attack-fired"]
        await services_synced(_Remote(log, hang=True), log, deadline_s=0.01)
        assert timeouts(log)[0]["waited_for"] == "the services' events to catch up"

    asyncio.run(main())
