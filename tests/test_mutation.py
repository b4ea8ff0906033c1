"""The catalogue tested by the reference sender's own profiles: variants pass, mutants die.

Expectations come from the scenarios' levels and known_failures (``lab.mutation``), never
from lists of scenario names. ``AWAITING`` names the profiles whose verdict today depends on
catalogue work of issue 9 not in this branch; each is a strict xfail, so it turns into an
error (remove the entry) as soon as the catalogue gets it right.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import fields
from pathlib import Path

import pytest

from lab import mutation
from lab.checklist import BY_ID, CHECKLIST
from lab.run_record import Record
from lab.runner import RunOptions, run_catalogue
from lab.scenario import load_catalogue
from lab.senders import load_all
from lab.senders.base import Sender
from lab.senders.profiles import COMPLIANT, MUTANTS, PROFILES, VARIANTS, Profile, ProfileSpec
from lab.senders.reference import ReferenceSender

CATALOGUE = load_catalogue()
DOC = Path(__file__).resolve().parents[1] / "docs" / "VARIANTS.md"

AWAITING: dict[str, str] = {}
"""Profile -> what the catalogue lacks today (see the module docstring)."""

def _mark(spec: ProfileSpec) -> list[pytest.MarkDecorator]:
    why = AWAITING.get(mutation.sender_name(spec))
    return [pytest.mark.xfail(reason=why, strict=True)] if why else []


def _params(specs: tuple[ProfileSpec, ...]) -> list[object]:
    return [pytest.param(s, id=s.name, marks=_mark(s)) for s in specs]


def test_the_doc_is_generated_from_the_profiles() -> None:
    assert DOC.read_text() == mutation.variants_doc(), \
        "docs/VARIANTS.md is stale: python -m lab.mutation --write docs/VARIANTS.md"


def test_each_profile_turns_on_exactly_one_switch_and_each_switch_has_a_profile() -> None:
    for spec in PROFILES:
        changed = [f.name for f in fields(Profile)
                   if getattr(spec.profile, f.name) != getattr(COMPLIANT, f.name)]
        assert changed == [spec.switch], spec.name
    assert sorted(s.switch for s in PROFILES) == sorted(f.name for f in fields(Profile))
    assert len({s.name for s in PROFILES}) == len(PROFILES)


def test_mutants_name_checklist_ids_and_variants_name_choices() -> None:
    ids = {o.id for o in CHECKLIST}
    for spec in MUTANTS:
        assert spec.rule in ids, spec.name


def test_the_registry_resolves_profiles() -> None:
    load_all()
    for spec in PROFILES:
        name = mutation.sender_name(spec)
        assert name in Sender.registry
        cls = Sender.registry.get(name)
        assert issubclass(cls, ReferenceSender)
        assert cls.name == name and cls.profile == spec.profile
        assert Sender.registry.get(name) is cls
    assert "reference:no-such-profile" not in Sender.registry
    assert "reference:background-fetch" not in Sender.registry.names()
    with pytest.raises(KeyError):
        Sender.registry.get("opportunistic:background-fetch")


def test_every_checklist_must_has_a_mutant() -> None:
    assert mutation.unmutated_ids() == []


def _run(scenarios: list[object], senders: list[str]) -> list[Record]:
    options = RunOptions(senders=senders, grace_s=0.3)
    return asyncio.run(run_catalogue(scenarios, options, jobs=2))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def variant_records() -> list[Record]:
    return _run(list(CATALOGUE), [mutation.sender_name(v) for v in VARIANTS])


@pytest.mark.integration
@pytest.mark.parametrize("spec", _params(VARIANTS))
def test_compliant_variant_passes_every_must(spec: ProfileSpec,
                                             variant_records: list[Record]) -> None:
    name = mutation.sender_name(spec)
    mine = [r for r in variant_records if r.sender == name]
    assert len(mine) >= len(CATALOGUE)
    failed = [f"{r.scenario} [{r.phase}] {r.verdict}: {r.why}" for r in mine
              if mutation.breaks_variant(r)]
    assert not failed, "\n".join(failed)


@pytest.mark.integration
@pytest.mark.parametrize("spec", _params(MUTANTS))
def test_mutant_is_killed_by_a_scenario_at_its_rules_level(spec: ProfileSpec) -> None:
    scenarios = mutation.covering(spec, list(CATALOGUE))
    assert scenarios, f"no scenario covers {spec.rule}"
    level = BY_ID[spec.rule].level
    records = _run(list(scenarios), [mutation.sender_name(spec)])
    assert any(mutation.kills(r, level) for r in records), (
        f"{spec.name} survives every {level}-level phase of: "
        + ", ".join(sorted({r.scenario for r in records})))


def test_a_should_level_kill_is_an_advisory_miss_and_never_a_must_pass() -> None:
    base = Record("s", "p", "reference:x", "loopback", ["not-delivered"], "delivered-plaintext",
                  "fail", "should", True, 0.1, "r", [], advisory=True)
    assert mutation.kills(base, "should") and not mutation.kills(base, "must")
    passed = dataclasses.replace(base, verdict="pass", advisory=False)
    assert not mutation.kills(passed, "should")


def test_list_senders_shows_every_profile(capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    assert main(["list", "senders"]) == 0
    listed = {line.strip() for line in capsys.readouterr().out.splitlines()}
    assert {mutation.sender_name(p) for p in PROFILES} <= listed
