"""The verdict rules of docs/ARCHITECTURE.md, on observations made by hand."""

from __future__ import annotations

from lab.oracle import (
    ERROR,
    FAIL,
    INCONCLUSIVE,
    KNOWN_FAILURE,
    PASS,
    UNEXPECTED_PASS,
    Observation,
    Verdict,
    decide,
)
from lab.scenario import load_text

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
