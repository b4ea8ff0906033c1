"""Waiting on evidence: every wait ends on the event itself, never on a guessed duration.

The deadlines here are generous (a loaded machine is slow, not wrong); when one is hit the
wait says so with a ``runner`` event ``wait-timeout`` in the phase's evidence (what was
awaited, for how long, what was still missing), so a record never hides a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from lab.events import POLICY, PROXY, RUNNER, SINK, Event, EventLog

READY_S = 120.0
"""For the services to answer what was just configured (the attacker's mitmproxy)."""
RECEIPT_S = 30.0
"""From a sender's ``sent`` to the sink's receipt (events of containers arrive by polling)."""
SESSION_CLOSE_S = 15.0
"""From the decision to the close of the phase's own SMTP sessions (their transcripts)."""
SYNC_S = 60.0
"""For services that report by another channel than the sender (containers) to catch up."""


class NotReady(Exception):
    """A service did not become ready within its deadline (the phase is an error)."""


async def services_ready(services: Any, events: EventLog, deadline_s: float = READY_S) -> None:
    """Wait until the services answer as configured: the attacker's mitmproxy listens before
    the sender is handed a message, so the sender meets the attack, not a host starting."""
    policy = getattr(services, "policy", None)
    ready: Callable[[], Any] | None = getattr(policy, "ready", None)
    if ready is None:  # services in containers: configured synchronously
        return
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline_s):
            waited = await ready()
    except TimeoutError:
        events.emit(RUNNER, "wait-timeout", {"waited_for": "the attacker's mitmproxy to listen",
                                             "after_s": deadline_s})
        raise NotReady(f"the attacker's mitmproxy did not listen within {deadline_s:g} s") \
            from None
    if waited:
        events.emit(RUNNER, "ready", {"waited_for": "the attacker's mitmproxy to listen",
                                      "after_s": round(time.monotonic() - started, 3)})


async def services_synced(services: Any, events: EventLog,
                          deadline_s: float = SYNC_S) -> None:
    """After the sender's decision, let services whose events travel by another channel (a
    long poll from containers) catch up, so the proxy's evidence is judged, not outrun by the
    sender's status. Services that emit in-process have no ``sync``: nothing to wait for."""
    sync: Callable[[], Any] | None = getattr(services, "sync", None)
    if sync is None:
        return
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline_s):
            await sync()
    except TimeoutError:
        events.emit(RUNNER, "wait-timeout", {"waited_for": "the services' events to catch up",
                                             "after_s": round(time.monotonic() - started, 3)})


async def wait_reported(log: EventLog, predicate: Callable[[list[Event]], Any], mark: int,
                        deadline: float, what: str,
                        missing: Callable[[list[Event]], Any] | None = None) -> Any:
    """``log.wait_for``, and a ``wait-timeout`` event naming ``what`` when the deadline hits."""
    started = time.monotonic()
    value = await log.wait_for(predicate, mark, deadline)
    if not value:
        data: dict[str, Any] = {"waited_for": what,
                                "after_s": round(time.monotonic() - started, 3)}
        if missing is not None:
            data["missing"] = missing(log.since(mark))
        log.emit(RUNNER, "wait-timeout", data)
    return value


def open_sessions(events: Iterable[Event]) -> set[str]:
    """Sessions that opened since the mark and are not over yet: the proxy's SMTP sessions
    (``connect`` .. ``close``) and policy fetches handed to the attacker's mitmproxy
    (``intercept`` .. ``mitm-closed``, whose findings arrive after the sender gave up)."""
    events = list(events)
    opened = {str(e.get("conn")) for e in events if e.source == PROXY and e.kind == "connect"}
    closed = {str(e.get("conn")) for e in events if e.source == PROXY and e.kind == "close"}
    handed = {f"mitm {e.get('via')}" for e in events
              if e.source == POLICY and e.kind == "intercept" and e.get("via")}
    done = {f"mitm {e.get('via')}" for e in events
            if e.source == POLICY and e.kind == "mitm-closed"}
    return (opened - closed) | (handed - done)


async def sessions_closed(log: EventLog, mark: int,
                          deadline_s: float = SESSION_CLOSE_S) -> bool:
    """Wait until the phase's own sessions are over (their transcripts and the attacker's
    findings are evidence)."""
    return bool(await wait_reported(
        log, lambda ev: not open_sessions(ev), mark, time.monotonic() + deadline_s,
        "the phase's sessions to close", lambda ev: sorted(open_sessions(ev))))


async def receipt_after_sent(log: EventLog, mark: int, message_id: str,
                             deadline_s: float = RECEIPT_S) -> bool:
    """The sender said ``sent``: wait for the sink's receipt of that message."""
    def received(events: list[Event]) -> bool:
        return any(e.source == SINK and e.kind == "message"
                   and e.get("message_id") == message_id for e in events)
    return bool(await wait_reported(log, received, mark, time.monotonic() + deadline_s,
                                    f"the sink's receipt of {message_id} (the sender said sent)"))


def lab_side_account(events: Iterable[Event], waited_s: float) -> str:
    """What a sender judged from the lab's side did (it reports no status of its own)."""
    events = list(events)
    connects = [e for e in events if e.source == PROXY and e.kind == "connect"]
    if not connects:
        return (f"no connection to any MX within {waited_s:g} s: the sender deferred, or had "
                "not tried yet (it reports no status of its own)")
    mxs = sorted({str(e.get("mx")) for e in connects})
    closes = [e for e in events if e.source == PROXY and e.kind == "close"]
    last = f"; the last closed: {closes[-1].get('reason')}" if closes else ""
    return (f"{len(connects)} connection(s) to {', '.join(mxs)}{last}; no delivery within "
            f"{waited_s:g} s")


REPORT_S = 30.0
"""From closing a sender's reporting period to its TLS reports reaching the collector
(retries of a failed submission included)."""


def _settled(events: Iterable[Event]) -> bool:
    return any(e.source == "sender" and e.kind == "tlsrpt-settled" for e in events)


async def reports_settled(log: EventLog, mark: int, arrived: Callable[[list[Event]], bool],
                          *, sender_reports: bool, grace_s: float,
                          deadline_s: float = REPORT_S) -> None:
    """After ``flush_reports``: wait until the reports a phase expects arrived, or the sender
    said every submission ended (``tlsrpt-settled``) and a grace for the collector's events
    passed. A sender that does not report gets the grace only."""
    now = time.monotonic()
    if not sender_reports:
        await log.wait_for(arrived, mark, now + grace_s)
        return
    done = await wait_reported(log, lambda ev: arrived(ev) or _settled(ev), mark,
                               now + deadline_s, "the sender's TLS reports")
    if done and not arrived(log.since(mark)):
        await log.wait_for(arrived, mark, time.monotonic() + grace_s)
