"""The catalogue keeps its promises: the lab's controls and the registered attacks."""

from __future__ import annotations

import pytest

from lab.attacks import Attack, load_all
from lab.scenario import Phase, Scenario, load_catalogue

CATALOGUE = load_catalogue()


def _enforced(p: Phase) -> bool:
    return p.world.domain.policy is not None and p.world.domain.policy.mode == "enforce"


def _enforce_refusal(s: Scenario) -> bool:
    """An enforce-mode phase where a breaking attack must make the sender refuse (must)."""
    return any(_enforced(p) and p.expect.allowed == ("not-delivered",)
               and p.expect.level == "must"
               and any(a.enforce_breaking for a in p.attacks) for p in s.phases)


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.id)
def test_negative_control_fails_the_enforce_attacks(scenario: Scenario) -> None:
    # Honesty rule 7 (docs/ARCHITECTURE.md): the opportunistic sender must fail every
    # enforce-mode attack; it is a known failure nowhere else (the run itself proves the
    # rest: known failures are strict)
    if _enforce_refusal(scenario):
        assert "opportunistic" in scenario.known_failures
    if "opportunistic" in scenario.known_failures:
        assert any(_enforced(p) for p in scenario.phases)


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.id)
def test_reference_sender_has_no_known_failure(scenario: Scenario) -> None:
    assert "reference" not in scenario.known_failures


def test_every_attack_is_used_by_a_scenario() -> None:
    load_all()
    used = {a.name for s in CATALOGUE for p in s.phases for a in p.attacks}
    unused = set(Attack.registry.names()) - used - {"passthrough"}
    assert not unused, f"attacks no scenario uses: {sorted(unused)}"


def test_every_theme_has_a_sanity_case() -> None:
    themes = {s.id.split("/")[0] for s in CATALOGUE}
    assert "baseline" in themes
    for theme in themes:
        members = [s for s in CATALOGUE if s.id.startswith(theme + "/")]
        assert any(s.baseline is not None or not any(p.attacks for p in s.phases)
                   for s in members), theme


def test_every_checklist_obligation_has_a_scenario() -> None:
    from lab.checklist import IDS, NOT_YET_COVERED, NOT_YET_COVERED_WHY

    covered = {c for s in CATALOGUE for c in s.covers}
    missing = sorted(IDS - NOT_YET_COVERED - covered)
    assert not missing, f"checklist ids no scenario covers: {missing}"
    # the ids allowed to wait are listed with their reason, and only while uncovered
    assert set(NOT_YET_COVERED_WHY) == NOT_YET_COVERED <= IDS
    assert all(NOT_YET_COVERED_WHY[i].strip() for i in NOT_YET_COVERED)
    assert {"R1", "R2", "R3", "R4", "R5", "R6"} == NOT_YET_COVERED


def test_checklist_levels_are_the_rfc_keywords() -> None:
    from lab.checklist import CHECKLIST
    from lab.outcomes import LEVELS

    assert all(o.level in LEVELS and o.section.startswith("RFC ") for o in CHECKLIST)
    levels = {o.id: o.level for o in CHECKLIST}
    # the audit: 8.4 is a lowercase "recommended", 3.3's bound a MAY, 3.2's media type SHOULD
    assert (levels["A3"], levels["F3"], levels["P2"], levels["FC"]) == (
        "should", "may", "should", "may")


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.id)
def test_enforce_refusals_at_must_level_come_after_priming(scenario: Scenario) -> None:
    # RFC 8461 5.1 / Appendix B: with nothing cached a sender may deliver while it fetches,
    # so a must-level enforce refusal is asked for only once the sender could learn the policy
    # (a signed TLSA record makes DANE decide, and DANE needs no cached state: X1)
    for i, p in enumerate(scenario.phases):
        dane = any(t.signed for t in p.world.domain.tlsa)
        if _enforced(p) and p.expect.level == "must" and p.expect.allowed == ("not-delivered",) \
                and any(a.enforce_breaking for a in p.attacks) and not dane:
            assert i > 0, f"{scenario.id} [{p.name}]: unprimed must-level enforce refusal"


@pytest.mark.parametrize("scenario", CATALOGUE, ids=lambda s: s.id)
def test_refs_name_rfc_sections(scenario: Scenario) -> None:
    assert scenario.refs and scenario.refs[0].startswith("RFC ")
    if any(a.name == "legacy-tls-only" for p in scenario.phases for a in p.attacks):
        assert any(r.startswith("RFC 8996") for r in scenario.refs)
    if "not-yet-valid" in scenario.id:
        assert "RFC 5280 4.1.2.5" in scenario.refs
    if any(a.name == "policy-media-type" for p in scenario.phases for a in p.attacks):
        assert "RFC 8461 3.2" in scenario.refs


def test_catalogue_has_at_least_forty_scenarios_in_themes() -> None:
    assert len(CATALOGUE) >= 40
    assert len({s.id.split("/")[0] for s in CATALOGUE}) >= 5
