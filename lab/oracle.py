"""The oracle: from events to an outcome, from an outcome to a verdict.

DESIGN rules it enforces: no verdict without evidence that the sender engaged and that the
attack fired (else ``inconclusive``); refusal is judged from the sender's own status where
the adapter reads it, otherwise from the lab's side with a grace window for fallback
retries; no fixed sleeps; known failures are strict.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from lab.attacks.base import Attack, DnsAttack, PolicyAttack, SmtpAttack
from lab.events import DNS, POLICY, PROXY, SENDER, SINK, Event, EventLog
from lab.scenario import Phase
from lab.world import normalize

DELIVERED_TLS = "delivered-tls"
DELIVERED_PLAINTEXT = "delivered-plaintext"
INTERCEPTED = "intercepted"
NOT_DELIVERED = "not-delivered"

PASS = "pass"
FAIL = "fail"
KNOWN_FAILURE = "known-failure"
UNEXPECTED_PASS = "unexpected-pass"
INCONCLUSIVE = "inconclusive"
ERROR = "error"
SKIPPED = "skipped"
"""The phase could not run here (an optional extra is missing): reported, never a pass."""
VERDICTS = (PASS, FAIL, KNOWN_FAILURE, UNEXPECTED_PASS, INCONCLUSIVE, ERROR, SKIPPED)


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
                  own_status: bool, timeout_s: float, grace_s: float) -> Observation:
    """Wait until the outcome of one message is decided, then gather the evidence."""
    deadline = time.monotonic() + timeout_s

    def decided(events: list[Event]) -> bool:
        if own_status:
            return _status(events, message_id) is not None
        # a foreign program that was the sender has exited: only the grace window is left
        return bool(_receipts(events, message_id)
                    or _for_message(events, SENDER, "finished", message_id))

    await log.wait_for(decided, mark, deadline)
    events = log.since(mark)
    status = _status(events, message_id)
    if own_status and status is not None and status.get("status") == "sent":
        # the sink records before it answers 250, so this is normally already there
        await log.wait_for(lambda ev: _receipts(ev, message_id), mark,
                           min(deadline, time.monotonic() + 2.0))
    elif not own_status and not _receipts(events, message_id):
        # judged from the lab's side: after the last connection closed, allow a grace window
        # for fallback retries (some senders retry in plaintext after a failed handshake)
        closes = [e for e in log.since(mark) if (e.source == PROXY and e.kind == "close")
                  or (e.source == SENDER and e.kind == "finished"
                      and e.get("message_id") == message_id)]
        if closes:
            await log.wait_for(lambda ev: _receipts(ev, message_id), mark,
                               min(deadline, max(e.t for e in closes) + grace_s))
    # the phase's own SMTP sessions end with their transcripts: wait for them (bounded)
    await log.wait_for(lambda ev: _open_sessions(ev) == set(), mark,
                       min(deadline, time.monotonic() + SESSION_CLOSE_S))
    events = _own_sessions(log.since(mark))
    return _judge_outcome(events, phase, message_id, status, own_status)


SESSION_CLOSE_S = 2.0


def _open_sessions(events: Iterable[Event]) -> set[str]:
    opened = {str(e.get("conn")) for e in events if e.source == PROXY and e.kind == "connect"}
    closed = {str(e.get("conn")) for e in events if e.source == PROXY and e.kind == "close"}
    return opened - closed


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
    domain = normalize(phase.rcpt.rsplit("@", 1)[1])
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


@dataclass(frozen=True)
class Verdict:
    verdict: str
    why: str
    advisory: bool = False
    """A should-level miss: reported, does not fail the run."""

    @property
    def fails_run(self) -> bool:
        return self.verdict in (UNEXPECTED_PASS, INCONCLUSIVE, ERROR) or (
            self.verdict == FAIL and not self.advisory)


def decide(phase: Phase, obs: Observation, *, known_failure: str | None,
           baseline_ok: bool | None) -> Verdict:
    """The verdict for one phase, by the rules in DESIGN.md."""
    if not obs.engaged:
        return Verdict(INCONCLUSIVE, "no evidence that the sender engaged "
                                     "(no MX lookup, no policy fetch, no connection)")
    silent = [name for name, evidence in obs.fired.items() if not evidence]
    unreachable = _unreachable(phase, obs, silent)
    silent = [name for name in silent if name not in unreachable]
    if silent:
        return Verdict(INCONCLUSIVE, f"attack {', '.join(silent)} never fired: "
                                     "the sender was not tested")
    note = (f" (judged on the other attacks: {', '.join(unreachable)} cannot reach a sender "
            "that never looked for an MTA-STS policy)" if unreachable else "")
    if phase.is_attack and baseline_ok is False:
        return Verdict(INCONCLUSIVE, "the baseline (same world, no attack) did not meet its "
                                     "expectation: a sender that cannot deliver proves "
                                     "nothing by refusing")
    if obs.outcome is None:
        return Verdict(INCONCLUSIVE, "no outcome before the deadline")
    misses = _misses(phase, obs)
    met = not misses
    if known_failure is not None:
        if met:
            return Verdict(UNEXPECTED_PASS, "listed as a known failure "
                                            f"({known_failure}) but met the expectation")
        return Verdict(KNOWN_FAILURE, f"{known_failure}; {'; '.join(misses)}{note}")
    if met:
        return Verdict(PASS, f"observed {obs.outcome}{note}")
    return Verdict(FAIL, "; ".join(misses) + note, advisory=phase.expect.level == "should")


def _mtasts_only(attack: Attack, phase: Phase) -> bool:
    """An attack that acts only on MTA-STS discovery (``_mta-sts.`` / ``mta-sts.`` names)
    or on the policy fetch."""
    if isinstance(attack, PolicyAttack):
        return True
    if isinstance(attack, DnsAttack):
        names = {normalize(n) for n, _ in attack.watched(phase.world)}
        return bool(names) and all(n.startswith(("_mta-sts.", "mta-sts.")) for n in names)
    return False


def _unreachable(phase: Phase, obs: Observation, silent: list[str]) -> list[str]:
    """Silent attacks that could not reach this sender at all.

    They act only on MTA-STS discovery or the fetch, the sender never looked for a policy in
    this phase (no ``_mta-sts.`` query, no contact with the policy host: a sender without
    MTA-STS, like the negative control), and another attack of the phase did fire. The phase
    is then judged on the attacks that fired; if none did, it stays inconclusive.
    """
    if not silent or len(silent) == len(obs.fired):
        return []
    looked = any(e.source == POLICY or (
        e.source == DNS and e.kind == "query"
        and normalize(str(e.get("name", ""))).startswith("_mta-sts.")) for e in obs.events)
    by_name = {a.name: a for a in phase.attacks}
    if looked or not all(_mtasts_only(by_name[name], phase) for name in silent):
        return []
    return silent


def _misses(phase: Phase, obs: Observation) -> list[str]:
    expect = phase.expect
    misses = []
    if obs.outcome not in expect.outcome:
        misses.append(f"expected {' or '.join(expect.outcome)}, observed {obs.outcome}")
    if expect.status and obs.status and obs.status != expect.status:
        misses.append(f"expected the sender to report {expect.status}, it reported "
                      f"{obs.status}")
    if expect.sni and normalize(expect.sni) not in {normalize(s) for s in obs.sni}:
        misses.append(f"expected SNI {expect.sni}, saw {', '.join(obs.sni) or 'none'}")
    return misses
