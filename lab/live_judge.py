"""``serve``'s live verdicts: each SMTP session a hand-driven sender opens is judged when it
ends, by the oracle and the judge the runner uses (``lab.oracle.observe_message``,
``lab.judge.decide``); this module only gathers the session's events and says in words what
they show.

A session is one connection to an MX front. What a verdict sees: the sender's DNS queries and
policy fetches since the phase began (its discovery may be cached from an earlier message),
this session's proxy events, and what the genuine (or the attacker's) MX received in it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from lab.attacks.base import DnsAttack
from lab.events import DNS, POLICY, PROXY, SINK, Event
from lab.judge import Verdict
from lab.oracle import Observation, decide, observe_message
from lab.outcomes import Outcome
from lab.scenario import Phase
from lab.world import normalize


@dataclass(frozen=True)
class LiveVerdict:
    mx: str
    message_id: str
    """Empty for a session that carried no message."""
    outcome: str | None
    what: str
    """What the session shows, in words a student can follow."""
    verdict: Verdict

    def lines(self, phase: Phase) -> list[str]:
        head = f"[{phase.name}] {self.message_id or 'session'} via {self.mx}:"
        expected = " or ".join(phase.expect.outcome)
        out = [f"{head} {self.what}",
               f"    VERDICT {self.verdict.verdict}"
               + (" (advisory)" if self.verdict.advisory else "")
               + f": expected {expected} ({phase.expect.level}); {self.verdict.why}"]
        out += [f"    note: {n}" for n in self.verdict.notes]
        return out


def session_events(events: Sequence[Event], close: Event,
                   claimed: Collection[str] = ()) -> list[Event]:
    """The phase's DNS and policy events, this session's proxy events, and the receipts of
    the messages it relayed (``events``: everything since the phase began; ``claimed``:
    messages an earlier session carried)."""
    key = (close.get("conn"), close.get("mx"))
    own = [e for e in events if e.source == PROXY and (e.get("conn"), e.get("mx")) == key]
    ids = {str(e.get("message_id")) for e in own if e.kind == "message"}
    opened = min((e.t for e in own if e.kind == "connect"), default=close.t)
    mx = normalize(str(close.get("mx", "")))

    def received_here(e: Event) -> bool:
        # a tunnelled session hides its message from the proxy: the MX behind this front
        # received it after the session opened (events from containers may arrive after the
        # close: no upper bound)
        return e.source == SINK and e.kind == "message" and (
            str(e.get("message_id")) in ids
            or (normalize(str(e.get("mx", ""))) == mx and opened <= e.t
                and str(e.get("message_id")) not in claimed))

    return [e for e in events if e.source in (DNS, POLICY) or e in own or received_here(e)]


def judge_session(events: Sequence[Event], close: Event, phase: Phase,
                  primed: bool, claimed: Collection[str] = ()) -> list[LiveVerdict]:
    """One verdict per message the session carried, or one for the session if it carried
    none (the sender refused, or the attacker cut it)."""
    mine = session_events(events, close, claimed)
    ids = list(dict.fromkeys(str(e.get("message_id")) for e in mine
                             if e.kind == "message" and e.source in (PROXY, SINK)))
    out = []
    for message_id in ids or [""]:
        obs = observe_message(mine, phase, message_id)
        verdict = decide(phase, obs, known_failure=None, baseline_ok=None, primed=primed)
        out.append(LiveVerdict(str(close.get("mx")), message_id, obs.outcome,
                               account(obs, mine, close, phase, message_id), verdict))
    return out


def _client_tls(events: Sequence[Event]) -> Event | None:
    found = [e for e in events if e.source == PROXY and e.kind == "tls"
             and e.get("leg") == "client"]
    return found[-1] if found else None


def _fired(events: Sequence[Event]) -> list[str]:
    return [f"{e.get('attack')} ({e.get('detail')})" for e in events
            if e.source == PROXY and e.kind == "attack-fired"]


def _certificate(tls: Event) -> str:
    kind = str(tls.get("cert") or "")
    name = tls.get("cert_name")
    if kind == "valid":  # from the lab CA: the attacker holds a genuine-looking one
        return f"a trusted certificate for {name} that the attacker holds"
    return f"the attacker's {kind} certificate for {name}"


def account(obs: Observation, events: Sequence[Event], close: Event, phase: Phase,
            message_id: str) -> str:
    """What this session shows, in words: not how it was carried, what it means."""
    receipts = [e for e in events if e.source == SINK and e.kind == "message"
                and e.get("message_id") == message_id] if message_id else []
    tls = _client_tls(events)
    fired = _fired(events)
    after = f" after {'; '.join(fired)}" if fired else ""
    if obs.outcome == Outcome.INTERCEPTED:
        attacker = {normalize(h) for a in phase.attacks if isinstance(a, DnsAttack)
                    for h in a.attacker_mx(phase.world)}
        if receipts and normalize(str(receipts[0].get("mx", ""))) in attacker:
            over = receipts[0].get("tls_version") or "plaintext"
            return (f"intercepted: the message went to {receipts[0].get('mx')}, a host the "
                    f"attacker runs (over {over}): the sender followed the attacker's MX")
        if tls is not None and tls.get("ok"):
            return (f"intercepted: the attacker decrypted this session (the sender accepted "
                    f"{_certificate(tls)})")
        return f"intercepted: the attacker read this message{after}"
    if obs.outcome == Outcome.DELIVERED_PLAINTEXT:
        return ("delivered in plaintext: anyone on the path could read and change it"
                + (f"; the sender carried on{after}" if fired else
                   " (the sender did not use STARTTLS)"))
    if obs.outcome == Outcome.DELIVERED_TLS:
        version = receipts[0].get("tls_version") if receipts else None
        return (f"delivered over {version or 'TLS'} to the genuine {close.get('mx')}: the "
                "attacker could not read it" + (f"{after}" if fired else ""))
    if obs.outcome == Outcome.NOT_DELIVERED:
        if tls is not None and not tls.get("ok"):
            forged = tls.get("cert") != "valid"
            what = (f"the forged certificate ({tls.get('cert')} for {tls.get('cert_name')})"
                    if forged else f"the certificate for {tls.get('cert_name')}")
            return f"refused: the sender hung up after {what}: {tls.get('error')}"
        if fired:
            return f"refused: the sender sent no message{after}"
        return (f"refused: the sender ended the session without a message "
                f"({close.get('reason') or 'it quit'})")
    return "no outcome: the session shows nothing the sender decided"


Printer = Callable[[str], None]


class LiveJudge:
    """Holds the served phase; judges each session when the proxy reports its end."""

    def __init__(self, printer: Printer) -> None:
        self.printer = printer
        self.phase: Phase | None = None
        self.mark = 0
        self.primed = False
        self.verdicts: list[LiveVerdict] = []
        self.claimed: set[str] = set()

    def start_phase(self, phase: Phase, mark: int, earlier: Sequence[Event]) -> None:
        """Serve ``phase`` from event ``mark`` on; ``earlier``: the events of the phases
        before (a policy fetched there primes the sender's cache, as in the runner)."""
        self.primed = self.primed or any(e.source == POLICY and e.kind == "fetch"
                                         for e in earlier)
        self.phase, self.mark = phase, mark

    def session_ended(self, events: Sequence[Event], close: Event) -> list[LiveVerdict]:
        """Judge the session ``close`` ended (``events``: the log since the phase began)."""
        if self.phase is None:
            return []
        if (close.get("conn"), close.get("mx")) not in {
                (e.get("conn"), e.get("mx")) for e in events
                if e.source == PROXY and e.kind == "connect"}:
            return []  # a session of an earlier phase that ended late
        verdicts = judge_session(events, close, self.phase, self.primed, self.claimed)
        self.claimed.update(v.message_id for v in verdicts if v.message_id)
        for v in verdicts:
            for line in v.lines(self.phase):
                self.printer(line)
        self.verdicts += verdicts
        return verdicts
