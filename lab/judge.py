"""From an observation to a verdict, graded by the RFC's own words.

The rules, in order:
- no verdict without a sender that engaged, a baseline that passed and an outcome
  (``inconclusive``);
- gates: an attack that never fired is excused only when the sender refused at an earlier
  gate whose attack fired (the notes say so);
- evidence: an MTA-STS-only attack that never fired because the sender never consulted its
  gate (no ``_mta-sts`` query, no policy fetch), or a world edit it never read, did not reach
  the sender. Met anyway, the phase is ``not-exercised`` (unless the phase lets the sender's
  primed cache decide); missed, the miss stands: the sender decided from its own state;
- levels: a miss fails the run only at must level; a should- or may-level miss is advisory;
  an outcome stricter than required passes with an advisory note;
- A2: a bounce under an enforce policy needs a ``_mta-sts`` query between the failed
  delivery and the bounce (MUST); the deferral itself is a SHOULD;
- known failures are strict: a listed sender that meets the expectation is an unexpected
  pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.events import DNS, POLICY, PROXY, Event
from lab.gates import before, gate_of, mtasts_only
from lab.outcomes import Gate, Level, Outcome, Status, VerdictName
from lab.scenario import Phase
from lab.world import normalize

if TYPE_CHECKING:
    from lab.oracle import Observation


@dataclass(frozen=True)
class Verdict:
    verdict: str
    why: str
    advisory: bool = False
    """Reported, does not fail the run: a should- or may-level miss, or a pass stricter than
    required."""
    notes: tuple[str, ...] = ()
    """What else the record must say: gates that stopped the sender, changes it never
    consulted, the choice it made where the RFC allows several."""
    required: bool = False
    """For ``not-exercised``: the phase says so, and no known failure explains it."""

    @property
    def fails_run(self) -> bool:
        v = self.verdict
        return v in (VerdictName.UNEXPECTED_PASS, VerdictName.INCONCLUSIVE,
                     VerdictName.ERROR) or (v == VerdictName.FAIL and not self.advisory) or (
            v == VerdictName.NOT_EXERCISED and self.required)


def _domains(phase: Phase) -> list[str]:
    return [d.name for d in phase.world.domains]


def queried_sts(events: Iterable[Event], domain: str) -> list[Event]:
    name = f"_mta-sts.{normalize(domain)}"
    return [e for e in events if e.source == DNS and e.kind == "query"
            and normalize(str(e.get("name", ""))) == name]


def policy_contacts(events: Iterable[Event], domain: str, kinds: tuple[str, ...] = (
        "handshake", "refused", "tls-failed", "fetch", "intercept", "intercept-failed",
        "bad-request")) -> list[Event]:
    host = f"mta-sts.{normalize(domain)}"
    return [e for e in events if e.source == POLICY and e.kind in kinds and (
        normalize(str(e.get("domain") or "")) == normalize(domain)
        or normalize(str(e.get("sni") or e.get("host") or "")) == host)]


def _consulted(events: list[Event], gate: Gate, domains: list[str]) -> bool:
    if gate == Gate.DISCOVERY:
        return any(queried_sts(events, d) for d in domains)
    return any(policy_contacts(events, d) for d in domains)


def _unconsulted(phase: Phase, obs: Observation, silent: list[str],
                 primed: bool = False) -> tuple[list[str], list[str]]:
    """(changes that never reached the sender because it never consulted them, silent
    attacks left that it should have met: those make the phase inconclusive)."""
    domains = _domains(phase)
    by_name = {a.name: a for a in phase.attacks}
    unread: list[str] = []
    left: list[str] = []
    for name in silent:
        gate = gate_of(by_name[name], phase.world)
        if mtasts_only(gate) and not _consulted(obs.events, gate, domains):
            what = "no _mta-sts query" if gate == Gate.DISCOVERY else "no policy fetch"
            unread.append(f"{name} ({gate} gate: {what})")
        else:
            left.append(name)
    for kind, domain in phase.edits:
        if kind == "policy" and not policy_contacts(obs.events, domain):
            unread.append(f"the changed policy of {domain} (no fetch after the edit)")
        elif kind == "sts-txt" and not queried_sts(obs.events, domain):
            unread.append(f"the changed _mta-sts record of {domain} (no query after the edit)")
    if phase.expect.needs_fetch and not primed and not any(
            policy_contacts(obs.events, d, ("fetch",)) for d in domains):
        unread.append("the policy under test (the sender fetched it in no phase)")
    fetch_sni = phase.expect.fetch_sni
    if fetch_sni and not any(policy_contacts(obs.events, d, ("handshake",)) for d in domains) \
            and not any(e.source == POLICY and e.kind == "handshake" and not e.get("sni")
                        for e in obs.events):
        unread.append("the policy fetch whose SNI is checked (no fetch in this phase)")
    return unread, left


def _bounce_without_recheck(phase: Phase, obs: Observation) -> str | None:
    policy = phase.world.policy_domain.policy
    if obs.status != Status.BOUNCED or policy is None or policy.mode != "enforce":
        return None
    tries = [e.t for e in obs.events if e.source == PROXY and e.kind in ("connect",
                                                                        "attack-fired")]
    start = min(tries) if tries else None
    end = obs.decided_at
    domain = phase.world.policy_domain.name
    rechecks = [e for e in queried_sts(obs.events, domain)
                if (start is None or e.t >= start) and (end is None or e.t <= end)]
    if rechecks:
        return None
    return (f"bounced without a _mta-sts.{domain} query between the failed delivery and the "
            "bounce (RFC 8461 5.1: MUST NOT fail permanently before checking for a new "
            "policy)")


def _off_smart_host(phase: Phase, obs: Observation) -> str | None:
    """Where a phase relays through a smart host, a connection to any other MX means the
    sender's smart host setting did not take effect: the phase tested nothing it meant to."""
    smart = phase.world.smart_host
    if not smart:
        return None
    hops = {normalize(h) for h in phase.world.policy_domain.mx}
    off = sorted({str(e.get("mx")) for e in obs.events if e.source == PROXY
                  and e.kind == "connect" and normalize(str(e.get("mx") or "")) not in hops})
    if not off:
        return None
    return (f"the sender did not relay through the smart host {smart}: it connected to "
            f"{', '.join(off)} (its smart host setting did not take effect)")


def _misses(phase: Phase, obs: Observation) -> tuple[list[tuple[str, str]], list[str]]:
    """[(level, what was missed)], [notes]."""
    expect = phase.expect
    misses: list[tuple[str, str]] = []
    notes: list[str] = []
    fetched = any(policy_contacts(obs.events, d, ("fetch",)) for d in _domains(phase))
    if obs.outcome not in expect.allowed:
        misses.append((expect.level,
                       f"expected {' or '.join(expect.allowed)}, observed {obs.outcome}"))
    dropped = obs.outcome in expect.after_fetch and not fetched
    if dropped:
        misses.append((expect.level, f"{obs.outcome} is allowed only after reading the "
                       "changed policy, and the sender fetched none in this phase: it dropped "
                       "its cached policy"))
    applied = obs.outcome in expect.no_fetch and fetched
    if applied:
        misses.append((expect.level, f"{obs.outcome} after fetching a policy that no valid "
                       "record of the recipient domain announced: the sender applied it"))
    if obs.outcome in expect.stricter and not (dropped or applied):
        notes.append(f"stricter than required: observed {obs.outcome} where the RFC asks "
                     f"only for {' or '.join(expect.outcome)} (allowed)")
    if obs.outcome in expect.say and not (dropped or applied):
        notes.append(f"choice: {expect.say[str(obs.outcome)]}")
    if phase.edits and any(k == "policy" for k, _ in phase.edits):
        notes.append("fetched the policy in this phase" if fetched else
                     "did not fetch the policy in this phase")
    if expect.status and obs.status and obs.status != expect.status \
            and obs.outcome == Outcome.NOT_DELIVERED:
        misses.append((expect.status_level, f"expected the sender to report {expect.status}, "
                                            f"it reported {obs.status}"))
    if expect.refreshed:
        refreshed = [e for d in _domains(phase)
                     for e in policy_contacts(obs.quiet, d, ("fetch",))]
        if refreshed:
            notes.append(f"refreshed the policy while no mail was sent ({len(refreshed)} "
                         f"fetch{'es' if len(refreshed) > 1 else ''} in the {phase.wait_s:g} s "
                         "before this phase)")
        else:
            misses.append((expect.level, f"no policy fetch in the {phase.wait_s:g} s without "
                           "mail before this phase: the cached policy was not refreshed "
                           "before it expired"))
    conditional = [e for d in _domains(phase) for e in policy_contacts(obs.events, d, ("fetch",))
                   if e.get("conditional")]
    if conditional:
        misses.append((Level.MUST, "revalidated the policy with a conditional request (HTTP "
                                   "caching; RFC 8461 3.3: MUST NOT be used)"))
    bounce = _bounce_without_recheck(phase, obs)
    if bounce:
        misses.append((Level.MUST, bounce))
    if expect.sni and obs.outcome == Outcome.DELIVERED_TLS \
            and normalize(expect.sni) not in {normalize(s) for s in obs.sni}:
        misses.append((expect.level, f"expected SNI {expect.sni}, saw "
                                     f"{', '.join(obs.sni) or 'none'}"))
    if expect.fetch_sni:
        # a ClientHello without SNI reaches the policy host's fallback name, not the domain's
        nameless = [e for e in obs.events
                    if e.source == POLICY and e.kind == "handshake" and not e.get("sni")]
        seen = sorted({str(e.get("sni") or "no SNI") for d in _domains(phase)
                       for e in [*policy_contacts(obs.events, d, ("handshake",)), *nameless]})
        if seen and normalize(expect.fetch_sni) not in {normalize(s) for s in seen}:
            misses.append((Level.MUST, f"expected SNI {expect.fetch_sni} on the policy fetch, "
                                       f"saw {', '.join(seen)}"))
    return misses, notes


def decide(phase: Phase, obs: Observation, *, known_failure: str | None,
           baseline_ok: bool | None, primed: bool = False) -> Verdict:
    """The verdict for one phase. ``primed``: the sender fetched the policy in an earlier
    phase of this scenario."""
    if not obs.engaged:
        return Verdict(VerdictName.INCONCLUSIVE, "no evidence that the sender engaged "
                       "(no MX lookup, no policy fetch, no connection)")
    if phase.is_attack and baseline_ok is False:
        return Verdict(VerdictName.INCONCLUSIVE, "the baseline (same world, no attack) did "
                       "not meet its expectation: a sender that cannot deliver proves nothing "
                       "by refusing")
    off = _off_smart_host(phase, obs)
    if off:
        return Verdict(VerdictName.INCONCLUSIVE, off)
    notes: list[str] = []
    gates = {a.name: gate_of(a, phase.world) for a in phase.attacks}
    fired = [n for n, ev in obs.fired.items() if ev]
    silent = [n for n, ev in obs.fired.items() if not ev]
    if obs.outcome == Outcome.NOT_DELIVERED:
        for name in list(silent):
            earlier = [f for f in fired if before(gates[f], gates[name])]
            if earlier:
                silent.remove(name)
                notes.append(f"refused at the {gates[earlier[0]]} gate, where {earlier[0]} "
                             f"fired; {name} ({gates[name]} gate) never reached it")
    unread, left = _unconsulted(phase, obs, silent, primed)
    if left:
        return Verdict(VerdictName.INCONCLUSIVE, f"attack {', '.join(left)} never fired: "
                       "the sender was not tested", notes=tuple(notes))
    if obs.outcome is None:
        return Verdict(VerdictName.INCONCLUSIVE, "no outcome before the deadline")
    misses, more = _misses(phase, obs)
    notes += more
    hard = [m for lv, m in misses if lv == Level.MUST]
    soft = [f"{lv}-level: {m}" for lv, m in misses if lv != Level.MUST]
    if unread:
        if hard:
            notes.append("never consulted " + "; ".join(unread) + ": it decided from its own "
                         "state, and that decision misses the expectation")
        elif phase.primes:
            notes.append("a learning phase; never consulted " + "; ".join(unread))
        elif phase.state_decides and primed:
            notes.append("decided by its own cached state; it did not consult "
                         + "; ".join(unread))
        else:
            why = ("what the phase changes never reached the sender: " + "; ".join(unread)
                   + f" (observed {obs.outcome})")
            if known_failure is not None:
                why += f"; known: {known_failure}"
            return Verdict(VerdictName.NOT_EXERCISED, why, notes=tuple(notes),
                           required=phase.exercise == "required" and known_failure is None)
    if known_failure is not None:
        if not (hard or soft):
            return Verdict(VerdictName.UNEXPECTED_PASS, "listed as a known failure "
                           f"({known_failure}) but met the expectation", notes=tuple(notes))
        return Verdict(VerdictName.KNOWN_FAILURE, f"{known_failure}; " + "; ".join(hard + soft),
                       notes=tuple(notes))
    if hard:
        return Verdict(VerdictName.FAIL, "; ".join(hard + soft), notes=tuple(notes))
    if soft:
        return Verdict(VerdictName.FAIL, "; ".join(soft), advisory=True, notes=tuple(notes))
    stricter = any(n.startswith("stricter") for n in notes)
    return Verdict(VerdictName.PASS, f"observed {obs.outcome}", advisory=stricter,
                   notes=tuple(notes))
