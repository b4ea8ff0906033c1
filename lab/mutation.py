"""The catalogue's own test: compliant variants must pass, mutants must be killed.

A *variant* of the reference sender makes one RFC-allowed choice; it is clean when no
must-level phase fails for it (or errors). A *mutant* breaks one MUST; it is killed when at
least one must-level phase fails for it, or is listed as a known failure for it. A mutant of
a SHOULD rule (C4) is killed by a should-level miss of a scenario covering that rule: the
miss is advisory for the run, but it must be seen. Both are
judged from the scenarios' own levels and known_failures, never from lists of names here.

Mutants run against the scenarios that cover the checklist id they break (``covers``);
``full=True`` runs them against the whole catalogue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.checklist import BY_ID, CHECKLIST, NOT_YET_COVERED
from lab.oracle import ERROR, FAIL, INCONCLUSIVE, KNOWN_FAILURE, UNEXPECTED_PASS
from lab.run_record import Record
from lab.runner import RunOptions, run_catalogue
from lab.scenario import Scenario
from lab.senders.profiles import MUTANTS, PROFILES, VARIANTS, ProfileSpec

BASE = "reference"


def sender_name(spec: ProfileSpec) -> str:
    return f"{BASE}:{spec.name}"


def kills(record: Record, level: str = "must") -> bool:
    """A phase at ``level`` (the broken rule's level) that this sender fails, or is a listed
    known failure for. A must-level fail is never advisory; a should-level one always is."""
    if record.level != level:
        return False
    if record.verdict == KNOWN_FAILURE:
        return True
    return record.verdict == FAIL and (level != "must" or not record.advisory)


def breaks_variant(record: Record) -> bool:
    """A must-level phase a compliant variant must not fail."""
    return record.level == "must" and (
        (record.verdict == FAIL and not record.advisory)
        or record.verdict in (ERROR, UNEXPECTED_PASS, KNOWN_FAILURE))


@dataclass
class Score:
    killed: dict[str, list[str]] = field(default_factory=dict)
    """Mutant -> the ``scenario [phase]`` that killed it (empty: it survived)."""
    variant_failures: dict[str, list[str]] = field(default_factory=dict)
    """Variant -> the must-level phases it failed (empty: clean)."""
    unmutated: list[str] = field(default_factory=list)
    """Checklist MUST ids that no mutant breaks."""
    variant_untested: dict[str, list[str]] = field(default_factory=dict)
    """Variant -> must-level phases left inconclusive (not a failure, not a pass either)."""

    @property
    def survivors(self) -> list[str]:
        return [m for m, why in self.killed.items() if not why]

    @property
    def dirty_variants(self) -> list[str]:
        return [v for v, why in self.variant_failures.items() if why]

    def summary(self) -> str:
        k = len(self.killed) - len(self.survivors)
        c = len(self.variant_failures) - len(self.dirty_variants)
        return (f"mutants killed {k}/{len(self.killed)}, "
                f"variants clean {c}/{len(self.variant_failures)}")

    def lines(self) -> list[str]:
        out = [self.summary()]
        out += [f"  surviving mutant {m}" for m in self.survivors]
        for v in self.dirty_variants:
            out += [f"  variant {v} fails {w}" for w in self.variant_failures[v]]
        out += [f"  checklist MUST {i} has no mutant" for i in self.unmutated]
        for v, where in self.variant_untested.items():
            out += [f"  variant {v} untested by {w}" for w in where]
        return out


def must_ids() -> list[str]:
    return [o.id for o in CHECKLIST if o.level == "must"]


def unmutated_ids() -> list[str]:
    """MUST ids with no mutant; ids the catalogue does not cover yet (with the reason in
    ``lab.checklist.NOT_YET_COVERED_WHY``) are left to the work that covers them."""
    broken = {m.rule for m in MUTANTS}
    return [i for i in must_ids() if i not in broken and i not in NOT_YET_COVERED]


def covering(spec: ProfileSpec, scenarios: Sequence[Scenario]) -> list[Scenario]:
    return [s for s in scenarios if spec.rule in s.covers]


def _where(record: Record) -> str:
    return f"{record.scenario} [{record.phase}]: {record.verdict}"


async def score(scenarios: Sequence[Scenario], *, jobs: int = 2, grace_s: float = 0.3,
                full: bool = False, variants: Sequence[ProfileSpec] = VARIANTS,
                mutants: Sequence[ProfileSpec] = MUTANTS) -> Score:
    """Run the variants over every scenario and each mutant over its scenarios."""
    result = Score(unmutated=unmutated_ids())
    if variants:
        options = RunOptions(senders=[sender_name(v) for v in variants], grace_s=grace_s)
        records = await run_catalogue(scenarios, options, jobs=jobs)
        for spec in variants:
            name = sender_name(spec)
            result.variant_failures[name] = [_where(r) for r in records
                                             if r.sender == name and breaks_variant(r)]
            untested = [_where(r) for r in records if r.sender == name
                        and r.level == "must" and r.verdict == INCONCLUSIVE]
            if untested:
                result.variant_untested[name] = untested
    gate = asyncio.Semaphore(max(1, jobs))

    async def one(spec: ProfileSpec) -> tuple[str, list[str]]:
        subset = list(scenarios) if full else covering(spec, scenarios)
        if not subset:
            return sender_name(spec), []
        async with gate:
            recs = await run_catalogue(subset, RunOptions(senders=[sender_name(spec)],
                                                          grace_s=grace_s))
        level = BY_ID[spec.rule].level if spec.rule in BY_ID else "must"
        return sender_name(spec), [_where(r) for r in recs if kills(r, level)]

    for name, why in await asyncio.gather(*(one(m) for m in mutants)):
        result.killed[name] = why
    return result


def variants_doc() -> str:
    """docs/VARIANTS.md, generated from ``lab.senders.profiles.PROFILES``."""
    out = ["# Compliant variants and mutants of the reference sender", "",
           "Generated by `python -m lab.mutation --write docs/VARIANTS.md` from",
           "`lab/senders/profiles.py`; a test keeps it in step with the code.", "",
           "Each profile of the reference sender turns on one switch of `Profile`, read at the",
           "one place its rule is enforced. Run one with `mtasts-lab run --sender "
           "reference:<name>`;",
           "`python bench/mutation_score.py` runs them all and prints the mutation score.", "",
           "- A **variant** makes one choice the RFC allows. It must pass every must-level",
           "  expectation of the catalogue: a failure is a catalogue stricter than the RFC.",
           "- A **mutant** breaks one MUST. It must be killed: fail (or be a listed known",
           "  failure in) at least one must-level phase of the scenarios that cover the rule.",
           "  A mutant of a SHOULD rule (C4) is killed by a should-level miss there instead",
           "  (advisory in a run, but it must show).",
           ""]
    for kind, title in (("variant", "Compliant variants"), ("mutant", "Mutants")):
        out += [f"## {title}", "", "| profile | switch | rule | section | what the RFC says |",
                "| --- | --- | --- | --- | --- |"]
        out += [f"| `reference:{p.name}` | `{p.switch}` | {p.rule} | {p.section} | {p.says} |"
                for p in PROFILES if p.kind == kind]
        out.append("")
    out += ["## Limits", "",
            "- DANE: the reference sender looks only at the AD bit of the TLSA answer (not of",
            "  the MX and address lookups), ignores TLSA records that are unusable, and treats",
            "  a failed TLSA lookup as no DANE. World TLSA records name a CA of the run",
            "  (DANE-TA), because leaf certificates differ between the lab's processes.",
            "- Mutants run against the scenarios whose `covers` holds the rule they break;",
            "  `--full` runs them against the whole catalogue.", ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m lab.mutation")
    parser.add_argument("--write", metavar="FILE", help="write docs/VARIANTS.md")
    args = parser.parse_args(argv)
    text = variants_doc()
    if args.write:
        Path(args.write).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
