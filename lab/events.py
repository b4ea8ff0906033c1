"""The event log: every service reports what it saw here, the oracle waits on it.

Waiting is on events with deadlines, never on fixed sleeps. Every (source, kind) a service
may emit is declared once, in ``KINDS`` below, with the payload fields it carries;
``EventLog(check=True)`` lists anything else in ``undeclared`` (the tests run the lab so).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Sources
DNS = "dns"
POLICY = "policy"
PROXY = "proxy"
SINK = "sink"
SENDER = "sender"
RUNNER = "runner"
COLLECTOR = "collector"


@dataclass(frozen=True)
class Event:
    source: str
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.monotonic)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "source": self.source, "kind": self.kind, **self.data}


Emit = Callable[[str, str, Mapping[str, Any]], None]
"""How a service reports: ``emit(source, kind, data)``."""


class EventLog:
    """Append-only, bound to the running event loop. ``mark()`` then ``since(mark)``.

    ``check``: add a line to ``undeclared`` for each event that ``KINDS`` does not declare
    (the event is kept all the same: a check must not change what the oracle sees).
    """

    def __init__(self, *, check: bool = False) -> None:
        self.check = check
        self.undeclared: list[str] = []
        self._events: list[Event] = []
        self._changed: asyncio.Event | None = None
        self._listeners: list[Callable[[Event], None]] = []

    def emit(self, source: str, kind: str, data: Mapping[str, Any] | None = None) -> None:
        self.append(Event(source, kind, dict(data or {})))

    def append(self, event: Event) -> None:
        if self.check:
            why = problem(event.source, event.kind, event.data)
            if why:
                self.undeclared.append(why)
        self._events.append(event)
        for listener in self._listeners:
            listener(event)
        if self._changed is not None:
            self._changed.set()

    def listen(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def mark(self) -> int:
        return len(self._events)

    def since(self, mark: int = 0) -> list[Event]:
        return self._events[mark:]

    def select(self, mark: int = 0, source: str | None = None,
               kind: str | None = None) -> list[Event]:
        return [e for e in self._events[mark:]
                if (source is None or e.source == source) and (kind is None or e.kind == kind)]

    async def wait_for(self, predicate: Callable[[list[Event]], Any], mark: int,
                       deadline: float) -> Any:
        """Wait until ``predicate(events since mark)`` is truthy or ``deadline`` (monotonic).

        Returns the predicate's last value (falsy on timeout).
        """
        while True:
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            value = predicate(self._events[mark:])
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return value
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate(self._events[mark:])


# ---------------------------------------------------------------- the kinds, in one place
# The oracle, the narrative (lab.narrate) and the reports read events by these names. A service
# that emits a kind or a field missing here fails the tests (tests/test_event_kinds.py). Add a
# row when you add an event.


@dataclass(frozen=True)
class EventKind:
    source: str
    kind: str
    fields: frozenset[str]
    """The payload keys this kind may carry (a key may be absent)."""
    doc: str


ANY_SOURCE_FIELDS = frozenset({"container"})
"""Added to every event by the compose backend: the container that saw it."""

_CONN = "conn mx"  # every proxy event names its connection and MX slot
_LEG = "sni cert peer applied"

_TABLE: tuple[tuple[str, str, str, str], ...] = (
    (DNS, "query", "client transport name qtype rcode answers failure ad truncated",
     "one question the fake DNS server answered (failure: the attack's injected rcode)"),
    (POLICY, "connect", "peer via", "a TCP connection to the policy host (via: attacker)"),
    (POLICY, "handshake", f"{_LEG} host", "TLS done; cert is the kind presented"),
    (POLICY, "tls-failed", f"{_LEG} error", "the client (or the host) ended the handshake"),
    (POLICY, "refused", "sni domain peer applied", "reset before any TLS answer (unreachable)"),
    (POLICY, "fetch", f"{_LEG} domain host method path status bytes chunks complete aborted "
     "content_type conditional error served", "one HTTP request answered"),
    (POLICY, "bad-request", f"{_LEG} domain host method path status bytes chunks complete "
     "aborted content_type conditional error served", "a request that was not valid HTTP"),
    (POLICY, "intercept", "peer attacks to via",
     "a connection handed to the attacker's mitmproxy (via: the policy host's end of it)"),
    (POLICY, "intercept-failed", "peer attacks error", "the attacker's mitmproxy is not there"),
    (POLICY, "mitm-handshake", "sni applied", "mitmproxy's certificate was accepted"),
    (POLICY, "mitm-handshake-failed", "sni error applied", "mitmproxy's certificate refused"),
    (POLICY, "mitm-rewrite", "sni path genuine_status bytes applied",
     "mitmproxy replaced the policy body"),
    (POLICY, "mitm-closed", "via", "mitmproxy is done with a handed connection: its last event"),
    (PROXY, "connect", f"{_CONN} peer", "a sender connected to the MX front"),
    (PROXY, "upstream-failed", f"{_CONN} error", "the genuine MX did not answer"),
    (PROXY, "tls", f"{_CONN} leg mode ok sni version cipher cert cert_name error",
     "a TLS handshake on one leg (client: the sender's, server: the genuine MX's)"),
    (PROXY, "attack-fired", f"{_CONN} attack detail", "an SMTP attack changed the session"),
    (PROXY, "message", f"{_CONN} message_id client_leg mail_from rcpt_to",
     "the genuine MX accepted a message the proxy relayed"),
    (PROXY, "cut", f"{_CONN} reason tls", "the attack ended the session"),
    (PROXY, "incomplete", f"{_CONN} leg bytes", "a leg closed in the middle of a line"),
    (PROXY, "timeout", f"{_CONN} seconds state", "the sender was idle too long"),
    (PROXY, "trailing-data-dropped", f"{_CONN} leg bytes text",
     "bytes pipelined after STARTTLS (never relayed)"),
    (PROXY, "protocol-error", f"{_CONN} leg error", "a leg broke the SMTP grammar"),
    (PROXY, "internal-error", "mx error", "a proxy connection task died of an exception"),
    (PROXY, "close", f"{_CONN} reason transcript tunnel_bytes",
     "the session ended: both legs' transcript"),
    (SINK, "connect", "peer mx", "a connection reached the genuine MX"),
    (SINK, "tls", "sni version cipher mx peer", "STARTTLS done at the genuine MX"),
    (SINK, "tls-failed", "sni mx error peer", "STARTTLS failed at the genuine MX"),
    (SINK, "message", "message_id mail_from rcpt_tos tls sni tls_version cipher mx peer size",
     "the genuine MX accepted a message"),
    (SINK, "error", "error peer", "the sink's SMTP server hit an error"),
    (SENDER, "status", "message_id status reason mx dsn relay queue_id log_line sender",
     "the sender's own verdict on a message (delivered, deferred, bounced)"),
    (SENDER, "log", "line message_id queue_id sender", "one line of the sender's log"),
    (SENDER, "attempt", "mx address tls result reason", "the reference sender tried one MX"),
    (SENDER, "policy", "domain source id mode error",
     "the reference sender's policy decision (source: fetched, cached, none)"),
    (SENDER, "tlsrpt", "domain action report_id rua reason",
     "the reference sender closed a TLS-RPT period for a policy domain (action: report, or "
     "none when the domain has no valid _smtp._tls record)"),
    (SENDER, "tlsrpt-submit", "domain uri transport attempt ok error report_id",
     "one attempt to deliver a TLS report to one rua destination"),
    (SENDER, "tlsrpt-settled", "pending",
     "every TLS report submission of the last flush has ended (delivered or given up)"),
    (SENDER, "submitted", "message_id reply to sender", "a message handed over by SMTP"),
    (SENDER, "started", "message_id argv pid sender", "a command sender's program started"),
    (SENDER, "exit", "message_id returncode sender duration_s", "that program ended"),
    (SENDER, "finished", "message_id returncode sender",
     "a program that was the sender (done=exit) ended: only the grace window is left"),
    (SENDER, "lab", "sender ca_file dns_host dns_port mx_host mx_hosts mx_port mx https_port "
     "workdir", "what a foreign sender is told about the lab (its placeholders)"),
    (COLLECTOR, "tlsrpt-report", "transport content_type size policy_domains report findings "
     "status path peer failed_on_purpose filename tls_report_domain tls_report_submitter "
     "mail_from rcpt_tos message_id tls mx",
     "a TLS report arrived (https: POSTed to the collector, status: the answer; mailto: "
     "a message to the report mailbox); findings: what breaks RFC 8460, empty when valid"),
    (RUNNER, "inject", "scenario phase message_id", "the runner handed the sender a message"),
    (RUNNER, "backend-up", "backend runid reused bringup_s", "the backend is up"),
    (RUNNER, "backend-error", "service error", "a compose service stopped answering"),
    (RUNNER, "sender-error", "sender error", "the sender under test did not start"),
    (RUNNER, "retry", "scenario sender attempt why",
     "a scenario runs again because a phase was inconclusive"),
    (RUNNER, "ready", "waited_for after_s", "a service the phase needs became ready"),
    (RUNNER, "wait-timeout", "waited_for after_s missing",
     "a wait for evidence hit its (generous) deadline"),
)

KINDS: Mapping[tuple[str, str], EventKind] = {
    (source, kind): EventKind(source, kind, frozenset(fields.split()), doc)
    for source, kind, fields, doc in _TABLE
}


def problem(source: str, kind: str, data: Mapping[str, Any]) -> str | None:
    """Why this event is not declared, or None."""
    declared = KINDS.get((source, kind))
    if declared is None:
        return f"event kind ({source!r}, {kind!r}) is not declared in lab.events.KINDS"
    extra = sorted(set(data) - declared.fields - ANY_SOURCE_FIELDS)
    if extra:
        return f"event ({source!r}, {kind!r}) carries undeclared fields {extra}"
    return None


def kinds_of(source: str) -> list[str]:
    """The kinds a source emits, in declaration order."""
    return [k for s, k in KINDS if s == source]
