"""The scenario model: expectations, phases, scenarios (what ``lab.scenario`` parses into)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.attacks import Attack
from lab.outcomes import Level
from lab.report_expect import ReportExpectation
from lab.world import World


@dataclass(frozen=True)
class Expectation:
    outcome: tuple[str, ...]
    """Any of these outcomes meets the expectation."""
    level: str = "must"
    status: str | None = None
    """The sender's own status, where the adapter can read it (A2: deferred, not bounced)."""
    sni: str | None = None
    """The server name the sender must send in its ClientHello (T1)."""
    status_level: str = Level.SHOULD
    """The level of ``status``: a deferral is a SHOULD (RFC 8461 5.1); a bounce without a
    ``_mta-sts`` re-check first is judged apart, at must level."""
    stricter: tuple[str, ...] = ()
    """Outcomes the RFC allows that are stricter than required: a pass, noted as advisory."""
    after_fetch: tuple[str, ...] = ()
    """Outcomes allowed only when the sender fetched the policy in this phase (following a
    changed policy it never read would mean it dropped its cached one)."""
    no_fetch: tuple[str, ...] = ()
    """Outcomes allowed only when the sender fetched no policy in this phase (refusing as a
    strict client complies; refusing after fetching a policy that no valid record announced
    means the sender applied it)."""
    needs_fetch: bool = False
    """The phase tests a policy the sender must have fetched (here or in an earlier phase);
    without a fetch it is ``not-exercised``."""
    say: Mapping[str, str] = field(default_factory=dict)
    """Per outcome, what it shows about the sender's choice (reported in the verdict)."""
    fetch_sni: str | None = None
    """The server name the sender must send when it fetches the policy (F4)."""
    report: ReportExpectation | None = None
    """The TLS report the phase must produce, or ``none`` (lab.report_expect)."""
    refreshed: bool = False
    """The sender must have fetched the policy during the phase's ``wait_s``, while no mail
    was sent: a proactive refresh of its cached policy (C4)."""

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*self.outcome, *self.stricter)


@dataclass(frozen=True)
class Phase:
    name: str
    world: World
    attacks: tuple[Attack, ...]
    expect: Expectation
    rcpt: str
    wait_s: float = 0.0
    """Scenario time before this phase starts (e.g. to let a short max_age run out)."""
    exercise: str = "reported"
    """``required``: a ``not-exercised`` verdict fails the run (unless a known failure
    explains it); ``reported``: it is reported only."""
    state_decides: bool = False
    """The sender's own cached state may decide this phase: MTA-STS-only changes it did not
    consult are reported, not required, once a fetch in an earlier phase primed it."""
    primes: bool = False
    """The phase only lets the sender learn the policy (it may carry world-shaping attacks
    such as a CNAME): known failures do not apply to it."""
    edits: tuple[tuple[str, str], ...] = ()
    """What this phase changed in the world against the previous phase: (``policy`` or
    ``sts-txt``, domain). The oracle checks that the sender read each one."""

    @property
    def is_attack(self) -> bool:
        return bool(self.attacks)

    @property
    def bears_known_failures(self) -> bool:
        """An attack phase, or one whose TLS report is judged (its world edit is the test),
        unless it only primes the sender's cache."""
        return (self.is_attack or self.expect.report is not None) and not self.primes


@dataclass(frozen=True)
class Scenario:
    id: str
    path: str
    summary: str
    refs: tuple[str, ...]
    teach: str
    covers: tuple[str, ...]
    world: World
    phases: tuple[Phase, ...]
    known_failures: Mapping[str, str] = field(default_factory=dict)
    baseline: Phase | None = None
    """The same world with no attack; None when the scenario has no attack phase."""
    timeout_s: float = 20.0
    attacker_does: str = ""
    compliant_does: str = ""
    primed: bool = False
    """The first phase (``prime``) lets the sender learn the policy with no attack."""

    @property
    def mode(self) -> str | None:
        policy = self.world.domain.policy
        return policy.mode if policy else None

    def attack_names(self) -> list[str]:
        return sorted({a.name for p in self.phases for a in p.attacks})


def world_edits(before: World | None, after: World) -> tuple[tuple[str, str], ...]:
    """What the world of a phase changed against the previous phase's world."""
    if before is None:
        return ()
    old = {d.name: d for d in before.domains}
    out: list[tuple[str, str]] = []
    for d in after.domains:
        prev = old.get(d.name)
        if prev is None:
            continue
        if prev.policy_body() != d.policy_body():
            out.append(("policy", d.name))
        if prev.sts_records() != d.sts_records():
            out.append(("sts-txt", d.name))
    return tuple(out)
