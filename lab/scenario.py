"""Scenario files: load, validate, and turn into worlds, phases and expectations.

One YAML file per scenario; its id is the path under the catalogue folder without ``.yaml``.
Every error names the file and the field, and is raised as ``ScenarioError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from lab import known_failures, yaml_input
from lab.attack_options import parse_attack
from lab.attacks import load_all
from lab.checklist import IDS as CHECKLIST_IDS
from lab.outcomes import LEVELS, OUTCOMES, STATUSES, Level, Status
from lab.report_expect import POLICY_TYPES, RESULT_TYPES, TRANSPORTS, ReportExpectation
from lab.scenario_fields import Fields, ScenarioError
from lab.scenario_model import Expectation, Phase, Scenario, world_edits
from lab.scenario_world import check_test_name, merge_world, parse_world
from lab.world import is_test_name, normalize

EXERCISE = ("reported", "required")


_TOP_FIELDS = ("summary", "refs", "teach", "covers", "world", "phases", "known_failures",
               "baseline", "timeout", "attacker_does", "compliant_does", "prime")
_PHASE_FIELDS = ("name", "world", "attacks", "expect", "rcpt", "wait_s", "exercise",
                 "state_decides", "primes")
_EXPECT_FIELDS = ("outcome", "level", "status", "sni", "status_level", "stricter",
                  "after_fetch", "say", "fetch_sni", "no_fetch", "needs_fetch", "report",
                  "refreshed")
_REPORT_FIELDS = ("policy_type", "result_type", "failures", "successes", "mx_host",
                  "transport", "level", "reporter_level")
PRIME = "prime"


def _outcomes(f: Fields, key: str, *, required: bool = False) -> tuple[str, ...]:
    outcomes = f.str_list(key, required=required)
    for i, outcome in enumerate(outcomes):
        if outcome not in OUTCOMES:
            raise ScenarioError(f.path, f"{f.sub(key)}[{i}]",
                                f"must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    return outcomes


def _expect(f: Fields, key: str, default: Mapping[str, Any] | None = None) -> Expectation:
    raw = f.data.get(key, default)
    if raw is None:
        raise f.error(key, "is required")
    e = Fields(f.path, f.sub(key), raw, _EXPECT_FIELDS)
    outcomes = _outcomes(e, "outcome", required=True)
    stricter = _outcomes(e, "stricter")
    after_fetch = _outcomes(e, "after_fetch")
    no_fetch = _outcomes(e, "no_fetch")
    for name, group in (("stricter", stricter), ("after_fetch", after_fetch),
                        ("no_fetch", no_fetch)):
        if name == "stricter" and set(group) & set(outcomes):
            raise e.error(name, "lists an outcome that is already in outcome")
        if name != "stricter" and not set(group) <= set(outcomes) | set(stricter):
            raise e.error(name, "may only name outcomes that outcome or stricter allows")
    say = e.data.get("say") or {}
    sf = Fields(f.path, e.sub("say"), say, OUTCOMES)
    for outcome, text in sf.data.items():
        if not isinstance(text, str) or not text.strip():
            raise sf.error(str(outcome), "must be a non-empty string")
    status = e.choice("status", (*STATUSES, ""), "") or None
    if status == Status.BOUNCED:
        raise e.error("status", "a bounce is never what a scenario asks for")
    sni = e.text("sni") or None
    return Expectation(outcomes, e.choice("level", LEVELS, "must"), status, sni,
                       e.choice("status_level", LEVELS, Level.SHOULD), stricter, after_fetch,
                       no_fetch, _flag(e, "needs_fetch"), dict(sf.data),
                       e.text("fetch_sni") or None, _report(e), _flag(e, "refreshed"))


def _report(e: Fields) -> ReportExpectation | None:
    """``report: none`` or ``report: {policy_type, result_type, failures, ...}``."""
    if not e.has("report") or e.data["report"] is None:
        return None
    raw = e.data["report"]
    if raw == "none":
        return ReportExpectation(none=True)
    if isinstance(raw, str):
        raise e.error("report", f"must be none or a mapping of {', '.join(_REPORT_FIELDS)}, "
                                f"not {raw!r}")
    r = Fields(e.path, e.sub("report"), raw, _REPORT_FIELDS)
    transport = r.str_list("transport") if r.has("transport") else TRANSPORTS
    _each_one_of(r, "transport", transport, TRANSPORTS)
    if not transport:
        raise r.error("transport", "must name https, mailto or both")
    mx_host = r.text("mx_host") or None
    if mx_host is not None:
        check_test_name(e.path, r.sub("mx_host"), mx_host, wildcard=True)
    counts = {k: (r.whole(k, 0, 0, 10000) if r.has(k) else None)
              for k in ("failures", "successes")}
    return ReportExpectation(
        policy_type=r.choice("policy_type", POLICY_TYPES) if r.has("policy_type") else None,
        result_type=_result_types(r),
        failures=counts["failures"], successes=counts["successes"], mx_host=mx_host,
        transport=tuple(dict.fromkeys(transport)),
        level=r.choice("level", LEVELS, Level.SHOULD),
        reporter_level=r.choice("reporter_level", LEVELS) if r.has("reporter_level")
        else None)


def _each_one_of(r: Fields, key: str, values: Iterable[str], choices: Iterable[str]) -> None:
    """Every item of the list ``key`` is one of ``choices`` (the error names its index)."""
    allowed = tuple(choices)
    for i, value in enumerate(values):
        if value not in allowed:
            raise ScenarioError(r.path, f"{r.sub(key)}[{i}]",
                                f"must be one of {', '.join(allowed)}, not {value!r}")


def _result_types(r: Fields) -> tuple[str, ...]:
    """``result_type``: one result type, or a list of them where the RFC allows each."""
    if not r.has("result_type"):
        return ()
    raw = r.data["result_type"]
    if not isinstance(raw, list):
        return (r.choice("result_type", RESULT_TYPES),)
    names = r.str_list("result_type")
    _each_one_of(r, "result_type", names, RESULT_TYPES)
    if not names:
        raise r.error("result_type", "must name at least one result type")
    return tuple(dict.fromkeys(names))


def _flag(f: Fields, key: str) -> bool:
    value = f.data.get(key, False)
    if not isinstance(value, bool):
        raise f.error(key, f"must be true or false, not {value!r}")
    return value




def parse(data: Any, path: str, scenario_id: str) -> Scenario:
    """Build a scenario from parsed YAML; every problem is a ScenarioError."""
    load_all()
    top = Fields(path, "", data, _TOP_FIELDS)
    summary = top.text("summary", required=True)
    refs = top.str_list("refs", required=True)
    teach = top.text("teach", required=True)
    covers = top.str_list("covers")
    for i, item in enumerate(covers):
        if item not in CHECKLIST_IDS:
            raise ScenarioError(path, f"covers[{i}]", f"unknown checklist id {item!r} "
                                f"(known: {', '.join(sorted(CHECKLIST_IDS))})")
    raw_world = top.data.get("world") or {}
    world = parse_world(path, "world", raw_world)
    rcpt_default = f"user@{world.domain.name}"

    raw_phases = top.data.get("phases")
    if not isinstance(raw_phases, list) or not raw_phases:
        raise top.error("phases", "must be a non-empty list")
    primed = top.data.get("prime", False)
    if not isinstance(primed, bool):
        raise top.error("prime", f"must be true or false, not {primed!r}")
    if primed and world.domain.policy is None:
        raise top.error("prime", "priming needs a policy in the world")
    phases: list[Phase] = []
    if primed:
        phases.append(Phase(PRIME, world, (), Expectation(("delivered-tls",)), rcpt_default,
                            primes=True))
    current = dict(raw_world) if isinstance(raw_world, Mapping) else {}
    for i, raw in enumerate(raw_phases):
        pf = Fields(path, top.sub("phases") + f"[{i}]", raw, _PHASE_FIELDS)
        if pf.has("world"):
            change = pf.data["world"]
            if not isinstance(change, Mapping):
                raise pf.error("world", "must be a mapping of world changes")
            current = merge_world(current, change)
        phase_world = parse_world(path, pf.sub("world") if pf.has("world") else "world",
                                  current)
        raw_attacks = pf.data.get("attacks") or []
        if not isinstance(raw_attacks, list):
            raise pf.error("attacks", "must be a list")
        attacks = tuple(parse_attack(path, f"{pf.sub('attacks')}[{j}]", a)
                        for j, a in enumerate(raw_attacks))
        attacker_run = {normalize(h) for a in attacks
                        for h in getattr(a, "attacker_mx", lambda _w: [])(phase_world)}
        for j, attack in enumerate(attacks):
            target = getattr(attack, "mx", None)
            if target and normalize(target) not in {*phase_world.mx_hosts(), *attacker_run}:
                raise ScenarioError(path, f"{pf.sub('attacks')}[{j}].{attack.name}.mx",
                                    f"{target!r} is not an MX host of the world "
                                    "(nor one an attack of the phase runs)")
        rcpt = pf.text("rcpt", rcpt_default)
        if "@" not in rcpt or not is_test_name(rcpt.rsplit("@", 1)[1]):
            raise pf.error("rcpt", f"{rcpt!r} must be an address at a .test domain")
        flags = {}
        for key in ("state_decides", "primes"):
            flags[key] = pf.data.get(key, False)
            if not isinstance(flags[key], bool):
                raise pf.error(key, f"must be true or false, not {flags[key]!r}")
        expect = _expect(pf, "expect")
        wait_s = pf.number("wait_s", 0.0, 0.0, 120.0)
        if expect.refreshed and not wait_s:
            raise ScenarioError(path, f"{pf.sub('expect')}.refreshed", "needs the phase's "
                                "wait_s: a refresh is looked for while the lab sends no mail")
        phases.append(Phase(pf.text("name", f"phase{i + 1}"), phase_world, attacks,
                            expect, rcpt, wait_s,
                            pf.choice("exercise", EXERCISE, "reported"), flags["state_decides"],
                            flags["primes"],
                            world_edits(phases[-1].world if phases else None, phase_world)))
    names = [p.name for p in phases]
    if len(set(names)) != len(names) or "baseline" in names:
        raise top.error("phases", "phase names must be unique and not 'baseline'"
                        + (" or 'prime' (prime: true adds it)" if primed else ""))

    known = top.data.get("known_failures") or {}
    kf = Fields(path, "known_failures", known, known.keys() if isinstance(known, Mapping)
                 else ())
    from lab import senders  # here: sender modules may one day import the scenario model

    bearing = [p.name for p in phases if p.bears_known_failures]
    for key, reason in kf.data.items():
        sender, phase_name = known_failures.split_key(str(key))
        if not senders.is_known(sender):
            raise kf.error(str(key), "unknown sender "
                           f"(known: {', '.join(senders.known_names())})")
        if phase_name is not None and phase_name not in bearing:
            raise kf.error(str(key), f"no phase {phase_name!r} that known failures apply to "
                           f"(attack or report phases: {', '.join(bearing) or 'none'})")
        if not isinstance(reason, str) or not reason.strip():
            raise kf.error(str(key), "must give the reason as a non-empty string")

    baseline: Phase | None = None
    if any(p.is_attack for p in phases):
        raw_base = top.data.get("baseline") or {}
        bf = Fields(path, "baseline", raw_base, ("world", "expect"))
        base_world = world
        if bf.has("world"):
            base_world = parse_world(path, "baseline.world",
                                     merge_world(raw_world if isinstance(raw_world, Mapping)
                                                 else {}, bf.data["world"]))
        baseline = Phase("baseline", base_world, (),
                         _expect(bf, "expect", {"outcome": "delivered-tls"}), rcpt_default)
    elif top.has("baseline"):
        raise top.error("baseline", "only scenarios with an attack phase have a baseline")

    return Scenario(
        id=scenario_id, path=path, summary=summary, refs=refs, teach=teach, covers=covers,
        world=world, phases=tuple(phases), known_failures=dict(kf.data), baseline=baseline,
        timeout_s=top.number("timeout", 20.0, 1.0, 600.0),
        attacker_does=top.text("attacker_does"), compliant_does=top.text("compliant_does"),
        primed=primed,
    )


def load_text(text: str, path: str, scenario_id: str) -> Scenario:
    try:
        data = yaml_input.load_text(text, path)
    except yaml_input.InputError as exc:
        raise ScenarioError(path, exc.field, exc.message) from None
    return parse(data, path, scenario_id)


def load_file(path: Path, root: Path | None = None) -> Scenario:
    scenario_id = path.stem
    if root is not None:
        scenario_id = path.relative_to(root).with_suffix("").as_posix()
    try:
        data = yaml_input.read(path)
    except yaml_input.InputError as exc:
        raise ScenarioError(str(path), exc.field, exc.message) from None
    scenario = parse(data, str(path), scenario_id)
    extra = known_failures.by_scenario().get(scenario_id) if root is not None else None
    if extra:  # lab/known_failures/<sender>.yaml; the scenario's own entries win
        bearing = {p.name for p in scenario.phases if p.bears_known_failures}
        for key in extra:
            sender, phase = known_failures.split_key(key)
            if phase is not None and phase not in bearing:
                raise ScenarioError(f"lab/known_failures/{sender}.yaml", f"{scenario_id} [{phase}]",
                                    "no such attack or report phase in the scenario")
        scenario = dataclasses.replace(scenario, known_failures={**extra,
                                                                 **scenario.known_failures})
    return scenario


def catalogue_root() -> Path:
    """The scenario catalogue: the top-level ``scenarios/`` folder of a source checkout, or
    ``lab/scenarios/`` inside an installed package (setup.py maps the one to the other)."""
    package = Path(str(resources.files("lab")))
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "scenarios").is_dir():
        return checkout / "scenarios"
    return package / "scenarios"


def load_catalogue(root: Path | None = None) -> list[Scenario]:
    root = root or catalogue_root()
    return [load_file(p, root) for p in sorted(root.rglob("*.yaml"))]


def select(names: Iterable[str], root: Path | None = None) -> list[Scenario]:
    """Scenarios by id, id prefix (a theme folder), or file path. An id is the file's path
    under the catalogue, so only the files named are read."""
    root = root or catalogue_root()
    chosen: list[Scenario] = []
    for name in names:
        as_path = Path(name)
        if as_path.suffix in (".yaml", ".yml") and as_path.exists():
            chosen.append(load_file(as_path))
            continue
        hits = [load_file(p, root) for p in _catalogue_files(root, name.rstrip("/"))]
        if not hits:
            raise ScenarioError(name, "", "no such scenario or theme in the catalogue "
                                          f"({root})")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _catalogue_files(root: Path, key: str) -> list[Path]:
    """The catalogue's files whose id is ``key`` or starts with ``key/``, in catalogue order."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        return []
    target = root.joinpath(*parts)
    file = target.with_name(target.name + ".yaml")
    files = [file] if file.is_file() else []
    if target.is_dir():
        files += sorted(target.rglob("*.yaml"))
    return files
