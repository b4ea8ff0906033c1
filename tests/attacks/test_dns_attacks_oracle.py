"""How the oracle judges DNS attacks: evidence from the DNS query log, and the rule for
attacks on MTA-STS discovery that never reach a sender that does not look (not-exercised)."""

from __future__ import annotations

from lab.events import DNS, POLICY, PROXY, Event
from lab.oracle import (
    INCONCLUSIVE,
    KNOWN_FAILURE,
    NOT_EXERCISED,
    Observation,
    attack_evidence,
    decide,
)
from lab.scenario import Phase, load_text


def phase(attacks: str, outcome: str) -> Phase:
    return load_text(f"""
summary: s
refs: [r]
teach: t
world: {{policy: {{mode: enforce}}}}
phases:
  - attacks: {attacks}
    expect: {{outcome: {outcome}}}
""", "s.yaml", "s").phases[0]


MX_QUERY = Event(DNS, "query", {"name": "victim.test", "qtype": "MX", "rcode": "NOERROR"})
TXT_QUERY = Event(DNS, "query", {"name": "_mta-sts.victim.test", "qtype": "TXT",
                                 "rcode": "NXDOMAIN"})
STRIPPED = Event(PROXY, "attack-fired", {"attack": "strip-starttls", "mx": "mx1.victim.test",
                                         "detail": "removed STARTTLS"})
FETCH = Event(POLICY, "fetch", {"host": "mta-sts.victim.test"})


def observe(p: Phase, outcome: str, *events: Event) -> Observation:
    return Observation(outcome=outcome, engaged=["looked up the MX of victim.test"],
                       fired={a.name: attack_evidence(a, events, p) for a in p.attacks},
                       events=list(events))


def test_dns_evidence_is_the_watched_query() -> None:
    p = phase("[hide-sts-record, {spoof-mx: {keep_genuine: true}}]", "delivered-tls")
    hide, spoof = p.attacks
    assert attack_evidence(hide, [MX_QUERY], p) == []
    assert attack_evidence(hide, [TXT_QUERY], p) == [
        "served TXT _mta-sts.victim.test (NXDOMAIN)"]
    assert attack_evidence(spoof, [MX_QUERY, TXT_QUERY], p) == [
        "served MX victim.test (NOERROR)"]


def test_sender_without_mtasts_is_not_exercised_by_discovery_attacks() -> None:
    # the negative control never asks for _mta-sts: hide-sts-record never reached it, so
    # meeting the expectation proves nothing (no blanket excuse: not-exercised, reported)
    p = phase("[hide-sts-record, strip-starttls]", "delivered-plaintext")
    obs = observe(p, "delivered-plaintext", MX_QUERY, STRIPPED)
    verdict = decide(p, obs, known_failure=None, baseline_ok=True)
    assert verdict.verdict == NOT_EXERCISED and "no _mta-sts query" in verdict.why
    # and a miss is its known failure, not an inconclusive
    p = phase("[cname-sts-record, strip-starttls]", "not-delivered")
    obs = observe(p, "delivered-plaintext", MX_QUERY, STRIPPED)
    verdict = decide(p, obs, known_failure="no MTA-STS", baseline_ok=True)
    assert verdict.verdict == KNOWN_FAILURE


def test_sender_that_looked_for_a_policy_must_be_served_the_attack() -> None:
    p = phase("[{dns-failure: {qname: 'mta-sts.{domain}', failure: nxdomain}}, strip-starttls]",
              "delivered-plaintext")
    # it asked for the TXT (NXDOMAIN, so no policy to fetch) and never for the policy host:
    # the attack on the policy host's name never reached it
    obs = observe(p, "delivered-plaintext", MX_QUERY, TXT_QUERY, STRIPPED)
    assert decide(p, obs, known_failure=None, baseline_ok=True).verdict == NOT_EXERCISED
    # contact with the policy host counts as looking too
    obs = observe(p, "delivered-plaintext", MX_QUERY, FETCH, STRIPPED)
    assert decide(p, obs, known_failure=None, baseline_ok=True).verdict == INCONCLUSIVE


def test_no_attack_fired_is_never_a_pass() -> None:
    p = phase("[hide-sts-record]", "delivered-tls")
    obs = observe(p, "delivered-tls", MX_QUERY)
    assert decide(p, obs, known_failure=None, baseline_ok=True).verdict == NOT_EXERCISED
    assert not decide(p, obs, known_failure=None, baseline_ok=True).fails_run  # reported


def test_attacks_outside_discovery_are_never_excused() -> None:
    # spoof-mx acts on the MX answer every sender needs: silent means not tested
    p = phase("[spoof-mx, strip-starttls]", "not-delivered")
    obs = observe(p, "not-delivered", STRIPPED, Event(PROXY, "connect", {"mx": "x"}))
    verdict = decide(p, obs, known_failure=None, baseline_ok=True)
    assert verdict.verdict == INCONCLUSIVE and "spoof-mx never fired" in verdict.why
    # a dns-failure on an MX host's name is not a discovery attack either
    p = phase("[{dns-failure: {qname: mx1.victim.test}}, strip-starttls]", "not-delivered")
    obs = observe(p, "not-delivered", MX_QUERY, STRIPPED)
    assert decide(p, obs, known_failure=None, baseline_ok=True).verdict == INCONCLUSIVE
