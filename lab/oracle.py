"""The oracle: from events to an outcome, from an outcome to a verdict.

Refusal is judged from the sender's own status where the adapter reads it, otherwise from
the lab's side with a grace window for fallback retries; no fixed sleeps. The verdict rules
(evidence, gates, levels, known failures) are in ``lab.judge``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from lab.attacks.base import Attack, DnsAttack, PolicyAttack, SmtpAttack
from lab.events import DNS, POLICY, PROXY, SENDER, SINK, Event, EventLog
from lab.judge import Verdict, decide
from lab.outcomes import VERDICTS, Outcome, VerdictName
from lab.scenario import Phase
from lab.waits import lab_side_account, receipt_after_sent, sessions_closed, wait_reported
from lab.world import normalize

__all__ = ["VERDICTS", "Observation", "Verdict", "attack_evidence", "decide", "observe",
           "observe_message"]

# the old names, kept importable from here
DELIVERED_TLS = Outcome.DELIVERED_TLS
DELIVERED_PLAINTEXT = Outcome.DELIVERED_PLAINTEXT
INTERCEPTED = Outcome.INTERCEPTED
NOT_DELIVERED = Outcome.NOT_DELIVERED

PASS = VerdictName.PASS
FAIL = VerdictName.FAIL
KNOWN_FAILURE = VerdictName.KNOWN_FAILURE
UNEXPECTED_PASS = VerdictName.UNEXPECTED_PASS
INCONCLUSIVE = VerdictName.INCONCLUSIVE
NOT_EXERCISED = VerdictName.NOT_EXERCISED
ERROR = VerdictName.ERROR
SKIPPED = VerdictName.SKIPPED


@dataclass
class Observation:
    outcome: str | None
    """None when nothing could be decided (the sender never acted before the deadline)."""
    status: str | None = None
    reason: str = ""
    engaged: list[str] = field(default_factory=list)
    """What shows the sender took part (MX lookup, policy fetch, connection)."""
    fired: dict[str, list[str]] = field(default_factory=dict)
    """Per attack name, what shows it fired (empty list: it never did)."""
    sni: list[str] = field(default_factory=list)
    decided_at: float | None = None
    """Monotonic time of the sender's own decision (status event) or the sink receipt."""
    events: list[Event] = field(default_factory=list)
    quiet: list[Event] = field(default_factory=list)
    """What happened while the runner waited before this phase (``wait_s``) and no mail was
    sent: a proactive policy refresh shows here (C4)."""


def _for_message(events: Iterable[Event], source: str, kind: str,
                 message_id: str) -> list[Event]:
    return [e for e in events if e.source == source and e.kind == kind
            and e.get("message_id") == message_id]


def _receipts(events: Iterable[Event], message_id: str) -> list[Event]:
    return _for_message(events, SINK, "message", message_id)


def _status(events: Iterable[Event], message_id: str) -> Event | None:
    found = _for_message(events, SENDER, "status", message_id)
    return found[0] if found else None


async def observe(log: EventLog, mark: int, phase: Phase, message_id: str, *,
                  own_status: bool, timeout_s: float, grace_s: float,
                  sync: Callable[[], Awaitable[None]] | None = None) -> Observation:
    """Wait until the outcome of one message is decided, then gather the evidence
    (``sync``: let events that travel by another channel catch up first)."""
    deadline = time.monotonic() + timeout_s

    def decided(events: list[Event]) -> bool:
        if own_status:
            return _status(events, message_id) is not None
        # a foreign program that was the sender has exited: only the grace window is left
        return bool(_receipts(events, message_id)
                    or _for_message(events, SENDER, "finished", message_id))

    if own_status:
        in_time = await wait_reported(log, decided, mark, deadline, "the sender's status")
    else:  # no receipt by the deadline is how a refusal looks from the lab's side
        in_time = await log.wait_for(decided, mark, deadline)
    if sync is not None:
        await sync()
    events = log.since(mark)
    status = _status(events, message_id)
    if own_status and status is not None and status.get("status") == "sent":
        await receipt_after_sent(log, mark, message_id)
    elif not own_status and not _receipts(events, message_id):
        # judged from the lab's side: after the last connection closed, allow a grace window
        # for fallback retries (some senders retry in plaintext after a failed handshake)
        closes = [e for e in log.since(mark) if (e.source == PROXY and e.kind == "close")
                  or (e.source == SENDER and e.kind == "finished"
                      and e.get("message_id") == message_id)]
        if closes:
            await log.wait_for(lambda ev: _receipts(ev, message_id), mark,
                               min(deadline, max(e.t for e in closes) + grace_s))
    if not own_status and _for_message(log.since(mark), SENDER, "started", message_id):
        # a program the lab started for this message: its output and exit code belong to
        # the evidence even when the sink had the message first (it ends by its own timeout)
        await log.wait_for(lambda ev: bool(_for_message(ev, SENDER, "exit", message_id)),
                           mark, deadline)
    # the phase's own SMTP sessions end with their transcripts: wait for them
    await sessions_closed(log, mark)
    events = _own_sessions(log.since(mark))
    obs = _judge_outcome(events, phase, message_id, status, own_status)
    if not obs.reason:  # say what the sender did, never leave a timeout unexplained
        obs.reason = (lab_side_account(events, timeout_s) if not own_status else
                      "" if in_time else f"no status from the sender within {timeout_s:g} s")
    return obs


def observe_message(events: list[Event], phase: Phase, message_id: str) -> Observation:
    """The observation of one message (``""``: a session that carried none) from events
    already gathered, judged from the lab's side (``serve``, where a person drives the
    sender and nothing waits for a status)."""
    return _judge_outcome(events, phase, message_id, None, own_status=False)


def _own_sessions(events: list[Event]) -> list[Event]:
    """Drop proxy events of sessions a previous phase opened (late close events)."""
    ours = {str(e.get("conn")) for e in events if e.source == PROXY and e.kind == "connect"}
    return [e for e in events if e.source != PROXY or str(e.get("conn")) in ours]


def _judge_outcome(events: list[Event], phase: Phase, message_id: str,
                   status: Event | None, own_status: bool) -> Observation:
    receipts = _receipts(events, message_id)
    relayed = _for_message(events, PROXY, "message", message_id)
    attacker = {normalize(h) for a in phase.attacks if isinstance(a, DnsAttack)
                for h in a.attacker_mx(phase.world)}
    outcome: str | None
    if receipts:
        if any(normalize(str(r.get("mx", ""))) in attacker for r in receipts) or any(
                m.get("client_leg") == "intercepted" for m in relayed):
            outcome = INTERCEPTED
        elif all(r.get("tls") for r in receipts):
            outcome = DELIVERED_TLS
        else:
            outcome = DELIVERED_PLAINTEXT
    elif status is not None or (not own_status and _engaged(events, phase)):
        outcome = NOT_DELIVERED
    else:
        outcome = None
    reason = str(status.get("reason", "")) if status else ""
    if not reason and receipts:
        r = receipts[0]
        reason = (f"received by {r.get('mx')} over "
                  f"{r.get('tls_version') or 'plaintext'}")
    decided_at = status.t if status is not None else (receipts[0].t if receipts else None)
    sni = sorted({str(e.get("sni")) for e in events
                  if e.source in (SINK, PROXY) and e.kind == "tls" and e.get("sni")})
    return Observation(
        outcome=outcome,
        status=str(status.get("status")) if status else None,
        reason=reason,
        engaged=_engaged(events, phase),
        fired={a.name: attack_evidence(a, events, phase) for a in phase.attacks},
        sni=sni,
        decided_at=decided_at,
        events=events,
    )


def _engaged(events: Iterable[Event], phase: Phase) -> list[str]:
    # the next hop: the smart host's domain when the sender relays (RFC 8461 3.4)
    domain = normalize(phase.world.smart_host or phase.rcpt.rsplit("@", 1)[1])
    found: list[str] = []
    for e in events:
        if e.source == DNS and e.kind == "query" and normalize(str(e.get("name", ""))) == domain \
                and e.get("qtype") == "MX":
            found.append(f"looked up the MX of {domain}")
        elif e.source == POLICY and e.kind in ("fetch", "handshake"):
            found.append(f"contacted the policy host ({e.get('sni') or e.get('host')})")
        elif e.source == PROXY and e.kind == "connect":
            found.append(f"connected to {e.get('mx')}")
    return sorted(set(found))


def attack_evidence(attack: Attack, events: Iterable[Event], phase: Phase) -> list[str]:
    """What shows that ``attack`` did something during this phase (rule 1)."""
    out: list[str] = []
    if isinstance(attack, SmtpAttack):
        out = [f"{e.get('mx')}: {e.get('detail')}" for e in events
               if e.source == PROXY and e.kind == "attack-fired"
               and e.get("attack") == attack.name]
    elif isinstance(attack, DnsAttack):
        watched = {(normalize(n), t) for n, t in attack.watched(phase.world)}
        out = [f"served {e.get('qtype')} {e.get('name')} ({e.get('rcode')})" for e in events
               if e.source == DNS and e.kind == "query"
               and (normalize(str(e.get("name", ""))), e.get("qtype")) in watched]
    elif isinstance(attack, PolicyAttack):
        out = [f"policy host {e.kind}: {e.get('sni') or e.get('host')}" for e in events
               if e.source == POLICY and attack.name in (e.get("applied") or ())]
    return sorted(set(out))
