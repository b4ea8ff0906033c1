"""The catalogue keeps its promises: the lab's controls and the registered attacks."""

from __future__ import annotations

import pytest

from lab.attacks import Attack, load_all
from lab.scenario import Phase, Scenario, load_catalogue

CATALOGUE = load_catalogue()


def _enforced(p: Phase) -> bool:
    return p.world.domain.policy is not None and p.world.domain.policy.mode == "enforce"


def _enforce_refusal(s: Scenario) -> bool:
    """An enforce-mode phase where a breaking attack must make the sender refuse."""
    return any(_enforced(p) and p.expect.outcome == ("not-delivered",)
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
    from lab.checklist import IDS, NOT_YET_COVERED

    covered = {c for s in CATALOGUE for c in s.covers}
    missing = sorted(IDS - NOT_YET_COVERED - covered)
    assert not missing, f"checklist ids no scenario covers: {missing}"


def test_catalogue_has_at_least_forty_scenarios_in_themes() -> None:
    assert len(CATALOGUE) >= 40
    assert len({s.id.split("/")[0] for s in CATALOGUE}) >= 5
