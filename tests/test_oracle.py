"""The verdict rules of docs/ARCHITECTURE.md, on observations made by hand."""

from __future__ import annotations

import dataclasses

from lab.events import DNS, POLICY, PROXY, Event
from lab.oracle import (
    ERROR,
    FAIL,
    INCONCLUSIVE,
    KNOWN_FAILURE,
    NOT_EXERCISED,
    PASS,
    UNEXPECTED_PASS,
    Observation,
    Verdict,
    decide,
)
from lab.scenario import Phase, load_text

STRIP = load_text("""
summary: s
refs: [r]
teach: t
world: {policy: {mode: enforce}}
phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered, status: deferred}
  - name: soft
    expect: {outcome: delivered-tls, level: should, sni: mx1.victim.test}
""", "s.yaml", "s")
ATTACK, SOFT = STRIP.phases


def obs(outcome: str | None, *, fired: bool = True, engaged: bool = True,
        status: str | None = None, sni: tuple[str, ...] = ()) -> Observation:
    return Observation(outcome=outcome, status=status,
                       engaged=["looked up the MX of victim.test"] if engaged else [],
                       fired={"strip-starttls": ["mx1: removed STARTTLS"] if fired else []},
                       sni=list(sni))


def test_pass_needs_engagement_and_a_fired_attack() -> None:
    assert decide(ATTACK, obs("not-delivered"), known_failure=None, baseline_ok=True).verdict \
        == PASS
    silent = decide(ATTACK, obs("not-delivered", fired=False), known_failure=None,
                    baseline_ok=True)
    assert silent.verdict == INCONCLUSIVE and "never fired" in silent.why
    absent = decide(ATTACK, obs("not-delivered", engaged=False), known_failure=None,
                    baseline_ok=True)
    assert absent.verdict == INCONCLUSIVE and "engaged" in absent.why
    assert silent.fails_run and absent.fails_run


def test_a_failed_baseline_makes_a_refusal_worthless() -> None:
    v = decide(ATTACK, obs("not-delivered"), known_failure=None, baseline_ok=False)
    assert v.verdict == INCONCLUSIVE and "baseline" in v.why


def test_known_failures_are_strict() -> None:
    known = decide(ATTACK, obs("delivered-plaintext"), known_failure="no MTA-STS",
                   baseline_ok=True)
    assert known.verdict == KNOWN_FAILURE and not known.fails_run
    surprise = decide(ATTACK, obs("not-delivered"), known_failure="no MTA-STS",
                      baseline_ok=True)
    assert surprise.verdict == UNEXPECTED_PASS and surprise.fails_run


def test_wrong_status_fails() -> None:
    v = decide(ATTACK, obs("not-delivered", status="bounced"), known_failure=None,
               baseline_ok=True)
    assert v.verdict == FAIL and "bounced" in v.why and v.fails_run


def test_should_level_miss_is_advisory() -> None:
    v = decide(SOFT, Observation("delivered-plaintext", engaged=["x"], fired={}),
               known_failure=None, baseline_ok=None)
    assert v.verdict == FAIL and v.advisory and not v.fails_run


def test_sni_expectation() -> None:
    good = Observation("delivered-tls", engaged=["x"], sni=["mx1.victim.test"])
    bad = Observation("delivered-tls", engaged=["x"], sni=[])
    assert decide(SOFT, good, known_failure=None, baseline_ok=None).verdict == PASS
    assert "SNI" in decide(SOFT, bad, known_failure=None, baseline_ok=None).why


def test_no_outcome_is_inconclusive_and_errors_fail_the_run() -> None:
    assert decide(ATTACK, obs(None), known_failure=None, baseline_ok=True).verdict \
        == INCONCLUSIVE
    assert Verdict(ERROR, "boom").fails_run


# ---------------------------------------------------------------- grading by the RFC's words

def _phase(text: str, index: int = -1) -> Phase:
    return load_text(text, "g.yaml", "g").phases[index]


def _ev(source: str, kind: str, t: float, **data: object) -> Event:
    return Event(source, kind, data, t)


GRADED = """
summary: s
refs: [r]
teach: t
prime: true
world: {policy: {mode: enforce}}
phases:
  - name: attack
    attacks: [hide-sts-record, strip-starttls]
    expect: {outcome: not-delivered, status: deferred}
"""


def test_a_silent_mtasts_attack_the_sender_never_consulted_is_not_exercised() -> None:
    phase = _phase(GRADED)
    o = Observation("not-delivered", status="deferred", engaged=["x"],
                    fired={"hide-sts-record": [], "strip-starttls": ["mx1: stripped"]})
    v = decide(phase, o, known_failure=None, baseline_ok=True, primed=True)
    assert v.verdict == NOT_EXERCISED and "no _mta-sts query" in v.why
    assert not v.fails_run  # reported; the phase did not ask for more
    required = dataclasses.replace(phase, exercise="required")
    assert decide(required, o, known_failure=None, baseline_ok=True).fails_run
    # a known failure explains it: reported, not failing
    known = decide(required, o, known_failure="not exercised: grace", baseline_ok=True)
    assert known.verdict == NOT_EXERCISED and not known.fails_run
    # missed anyway: the sender decided from its own state, and the miss stands
    plain = dataclasses.replace(o, outcome="delivered-plaintext", status="sent")
    miss = decide(phase, plain, known_failure=None, baseline_ok=True)
    assert miss.verdict == FAIL and miss.fails_run and any("own state" in n for n in miss.notes)


def test_the_attack_counts_once_the_sender_consulted_the_gate() -> None:
    phase = _phase(GRADED)
    o = Observation("not-delivered", status="deferred", engaged=["x"],
                    fired={"hide-sts-record": [], "strip-starttls": ["mx1: stripped"]},
                    events=[_ev(DNS, "query", 1.0, name="_mta-sts.victim.test", qtype="TXT")])
    assert decide(phase, o, known_failure=None, baseline_ok=True).verdict == INCONCLUSIVE


def test_state_decides_only_after_a_fetch_primed_the_sender() -> None:
    phase = dataclasses.replace(_phase(GRADED), state_decides=True)
    o = Observation("not-delivered", status="deferred", engaged=["x"],
                    fired={"hide-sts-record": [], "strip-starttls": ["mx1: stripped"]})
    assert decide(phase, o, known_failure=None, baseline_ok=True,
                  primed=False).verdict == NOT_EXERCISED
    v = decide(phase, o, known_failure=None, baseline_ok=True, primed=True)
    assert v.verdict == PASS and any("cached state" in n for n in v.notes)


COMPOUND = """
summary: s
refs: [r]
teach: t
world: {policy: {mode: enforce}}
phases:
  - attacks:
      - spoof-mx: {host: mx.attacker.test}
      - swap-certificate: {mx: mx.attacker.test, certificate: valid, identity: mx1.victim.test}
    expect: {outcome: not-delivered}
"""


def test_gates_excuse_later_attacks_only_after_a_refusal_at_an_earlier_fired_gate() -> None:
    phase = _phase(COMPOUND)
    fired = {"spoof-mx": ["served MX victim.test"], "swap-certificate": []}
    refused = decide(phase, Observation("not-delivered", engaged=["x"], fired=fired),
                     known_failure=None, baseline_ok=True)
    assert refused.verdict == PASS
    assert any("mx-selection gate" in n and "swap-certificate" in n for n in refused.notes)
    # delivered without the later attack firing: nothing excuses the silent attack
    delivered = decide(phase, Observation("intercepted", engaged=["x"], fired=fired),
                       known_failure=None, baseline_ok=True)
    assert delivered.verdict == INCONCLUSIVE


LEVELS_TEXT = """
summary: s
refs: [r]
teach: t
world: {policy: {mode: testing}}
phases:
  - name: testing
    attacks: [strip-starttls]
    expect: {outcome: delivered-plaintext, level: may, stricter: [not-delivered]}
"""


def test_stricter_passes_as_advisory_and_may_never_fails_the_run() -> None:
    phase = _phase(LEVELS_TEXT)
    fired = {"strip-starttls": ["mx1: stripped"]}
    strict = decide(phase, Observation("not-delivered", engaged=["x"], fired=fired),
                    known_failure=None, baseline_ok=True)
    assert strict.verdict == PASS and strict.advisory and not strict.fails_run
    assert any(n.startswith("stricter") for n in strict.notes)
    odd = decide(phase, Observation("intercepted", engaged=["x"], fired=fired),
                 known_failure=None, baseline_ok=True)
    assert odd.verdict == FAIL and odd.advisory and not odd.fails_run


def test_a_bounce_needs_a_recheck_of_the_record_first_and_deferral_is_a_should() -> None:
    phase = _phase(GRADED.replace("[hide-sts-record, strip-starttls]", "[strip-starttls]"))
    fired = {"strip-starttls": ["mx1: stripped"]}
    tried = _ev(PROXY, "connect", 1.0, conn="c1", mx="mx1.victim.test")
    no_check = Observation("not-delivered", status="bounced", engaged=["x"], fired=fired,
                           events=[tried], decided_at=3.0)
    v = decide(phase, no_check, known_failure=None, baseline_ok=True)
    assert v.verdict == FAIL and v.fails_run and "MUST NOT" in v.why
    checked = dataclasses.replace(no_check, events=[tried, _ev(
        DNS, "query", 2.0, name="_mta-sts.victim.test", qtype="TXT")])
    soft = decide(phase, checked, known_failure=None, baseline_ok=True)
    assert soft.verdict == FAIL and soft.advisory and not soft.fails_run


REFETCH = """
summary: s
refs: [r]
teach: t
prime: true
world: {policy: {mode: enforce}}
phases:
  - name: same-id
    state_decides: true
    world: {policy: {mode: none}}
    attacks: [strip-starttls]
    expect:
      outcome: [not-delivered, delivered-plaintext]
      after_fetch: [delivered-plaintext]
      say: {not-delivered: kept, delivered-plaintext: refetched}
"""


def test_refetching_is_optional_and_reported_but_plaintext_needs_the_fetch() -> None:
    phase = _phase(REFETCH)
    assert phase.edits == (("policy", "victim.test"),)
    fired = {"strip-starttls": ["mx1: stripped"]}
    fetch = _ev(POLICY, "fetch", 1.0, domain="victim.test", conditional=False)
    kept = decide(phase, Observation("not-delivered", engaged=["x"], fired=fired),
                  known_failure=None, baseline_ok=True, primed=True)
    assert kept.verdict == PASS and "choice: kept" in kept.notes
    followed = decide(phase, Observation("delivered-plaintext", engaged=["x"], fired=fired,
                                         events=[fetch]),
                      known_failure=None, baseline_ok=True, primed=True)
    assert followed.verdict == PASS and "choice: refetched" in followed.notes
    dropped = decide(phase, Observation("delivered-plaintext", engaged=["x"], fired=fired),
                     known_failure=None, baseline_ok=True, primed=True)
    assert dropped.verdict == FAIL and dropped.fails_run and "dropped" in dropped.why
    cached = dataclasses.replace(fetch, data={**fetch.data, "conditional": True})
    revalidated = decide(phase, Observation("delivered-plaintext", engaged=["x"], fired=fired,
                                            events=[cached]),
                         known_failure=None, baseline_ok=True, primed=True)
    assert revalidated.verdict == FAIL and "HTTP caching" in revalidated.why


def test_a_strict_refusal_complies_only_without_fetching_the_unannounced_policy() -> None:
    phase = _phase("""
summary: s
refs: [r]
teach: t
world: {policy: {mode: enforce}, sts_txt: ["v=STSv10; id=x;"]}
phases:
  - attacks: [strip-starttls]
    expect: {outcome: delivered-plaintext, stricter: [not-delivered], no_fetch: [not-delivered]}
""")
    fired = {"strip-starttls": ["mx1: stripped"]}
    strict = decide(phase, Observation("not-delivered", engaged=["x"], fired=fired),
                    known_failure=None, baseline_ok=True)
    assert strict.verdict == PASS and strict.advisory
    fetch = _ev(POLICY, "fetch", 1.0, domain="victim.test", conditional=False)
    applied = decide(phase, Observation("not-delivered", engaged=["x"], fired=fired,
                                        events=[fetch]), known_failure=None, baseline_ok=True)
    assert applied.verdict == FAIL and applied.fails_run and "applied it" in applied.why


def test_every_attack_of_the_catalogue_has_its_gate() -> None:
    from lab.attacks.base import SmtpAttack
    from lab.gates import _SMTP_GATES, gate_of
    from lab.outcomes import Gate
    from lab.scenario import load_catalogue

    seen: dict[str, set[Gate]] = {}
    for s in load_catalogue():
        for p in s.phases:
            for a in p.attacks:
                seen.setdefault(a.name, set()).add(gate_of(a, p.world))
                if isinstance(a, SmtpAttack) and a.name != "passthrough":
                    assert a.name in _SMTP_GATES, a.name
    assert seen["hide-sts-record"] == {Gate.DISCOVERY}
    assert seen["spoof-mx"] == {Gate.MX_SELECTION}
    assert seen["policy-redirect"] == {Gate.FETCH}
    assert seen["strip-starttls"] == {Gate.STARTTLS}
    assert seen["swap-certificate"] == {Gate.TLS}


SMART = """
summary: s
refs: [r]
teach: t
world:
  policy: {mode: enforce}
  smart_host: relay.test
  other_domains: [{domain: relay.test, policy: {mode: enforce}}]
phases:
  - attacks: [strip-starttls]
    expect: {outcome: not-delivered, status: deferred}
"""


def test_a_smart_host_phase_whose_sender_went_elsewhere_is_inconclusive() -> None:
    phase = _phase(SMART)
    relayed = dataclasses.replace(obs("not-delivered"), events=[
        _ev(PROXY, "connect", 1.0, mx="mx1.relay.test")])
    assert decide(phase, relayed, known_failure=None, baseline_ok=True).verdict == PASS
    direct = dataclasses.replace(obs("not-delivered"), events=[
        _ev(PROXY, "connect", 1.0, mx="mx1.victim.test")])
    verdict = decide(phase, direct, known_failure=None, baseline_ok=True)
    assert verdict.verdict == INCONCLUSIVE and "did not relay" in verdict.why


REFRESH = """
summary: s
refs: [r]
teach: t
world: {policy: {mode: enforce, max_age: 4}}
phases:
  - name: learn
    expect: {outcome: delivered-tls}
  - name: later
    wait_s: 4.5
    attacks: [strip-starttls]
    expect: {outcome: not-delivered, level: should, refreshed: true}
"""


def test_a_refresh_is_a_fetch_while_no_mail_was_sent() -> None:
    phase = _phase(REFRESH)
    fetch = _ev(POLICY, "fetch", 1.0, domain="victim.test", host="mta-sts.victim.test",
                status=200)
    quiet = dataclasses.replace(obs("not-delivered"), quiet=[fetch])
    verdict = decide(phase, quiet, known_failure=None, baseline_ok=True)
    assert verdict.verdict == PASS and any("refreshed" in n for n in verdict.notes)
    inside = dataclasses.replace(obs("not-delivered"), events=[fetch])
    verdict = decide(phase, inside, known_failure=None, baseline_ok=True)
    assert verdict.verdict == FAIL and verdict.advisory and "not refreshed" in verdict.why
