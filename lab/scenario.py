"""Scenario files: load, validate, and turn into worlds, phases and expectations.

One YAML file per scenario; its id is the path under the catalogue folder without ``.yaml``.
Every error names the file and the field, and is raised as ``ScenarioError``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from lab import known_failures, yaml_input
from lab.attack_options import parse_attack
from lab.attacks import load_all
from lab.checklist import IDS as CHECKLIST_IDS
from lab.outcomes import LEVELS, OUTCOMES, STATUSES, Level, Status
from lab.scenario_fields import Fields, ScenarioError
from lab.scenario_model import Expectation, Phase, Scenario, world_edits
from lab.tlsrpt.names import REPORT_MX
from lab.world import (
    DEFAULT_DOMAIN,
    DEFAULT_POLICY_ID,
    MAX_HTTPS_FAILS,
    MAX_MX,
    MODES,
    TLSA_ANCHORS,
    Domain,
    Policy,
    Tlsa,
    Tlsrpt,
    World,
    is_test_name,
    normalize,
)

MAX_AGE_LIMIT = 31557600
EXERCISE = ("reported", "required")


# ---------------------------------------------------------------- world

_DOMAIN_FIELDS = ("domain", "mx", "policy", "sts_txt", "policy_text", "tlsa", "tlsrpt")
_TLSRPT_FIELDS = ("rua", "records", "report_policy", "https_fails")
_RUA_SCHEMES = ("https", "mailto")
_TLSA_FIELDS = ("mx", "usage", "selector", "mtype", "matches", "signed")
_WORLD_FIELDS = (*_DOMAIN_FIELDS, "other_domains", "smart_host")
_POLICY_FIELDS = ("mode", "mx", "max_age", "id")


def _merge(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """Phase world changes: mappings merge key by key; anything else replaces."""
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_name(path: str, where: str, name: str, *, wildcard: bool = False) -> str:
    plain = name[2:] if wildcard and name.startswith("*.") else name
    if not is_test_name(plain) or "*" in plain:
        raise ScenarioError(path, where, f"{name!r} is not a reserved .test name "
                                         "(the lab only ever uses .test names)")
    return name


def _domain(f: Fields) -> Domain:
    path = f.path
    domain = normalize(_check_name(path, f.sub("domain"), f.text("domain", DEFAULT_DOMAIN)))
    mx = f.str_list("mx") if f.has("mx") else (f"mx1.{domain}",)
    for i, host in enumerate(mx):
        _check_name(path, f"{f.sub('mx')}[{i}]", host)
    policy = _policy(f, "policy", mx)
    sts_txt = f.str_list("sts_txt") if f.has("sts_txt") else None
    policy_text = f.text("policy_text") if f.has("policy_text") else None
    return Domain(domain, tuple(normalize(h) for h in mx), policy, sts_txt, policy_text,
                  _tlsa(f, mx), _tlsrpt(f))


def _policy(f: Fields, key: str, mx: tuple[str, ...]) -> Policy | None:
    if f.data.get(key) is None:
        return None
    path = f.path
    p = Fields(path, f.sub(key), f.data[key], _POLICY_FIELDS)
    patterns = p.str_list("mx") or tuple(normalize(h) for h in mx)
    for i, pattern in enumerate(patterns):
        _check_name(path, f"{p.sub('mx')}[{i}]", pattern, wildcard=True)
    policy_id = p.text("id", DEFAULT_POLICY_ID)
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", policy_id):
        raise p.error("id", "must be 1 to 32 letters and digits (RFC 8461 3.1); "
                            "write a malformed record with sts_txt instead")
    return Policy(mode=p.choice("mode", MODES, "enforce"),  # type: ignore[arg-type]
                  mx=patterns, max_age=p.whole("max_age", 86400, 0, MAX_AGE_LIMIT),
                  id=policy_id)


def _tlsrpt(f: Fields) -> Tlsrpt | None:
    """``tlsrpt: {rua: [https, mailto]}`` (one valid record naming the lab's collector) or
    ``tlsrpt: {records: [TXT, ...]}`` (raw values with ``{https}``/``{mailto}``), plus
    ``report_policy`` (the report domain's MTA-STS policy) and ``https_fails``."""
    if f.data.get("tlsrpt") is None:
        return None
    t = Fields(f.path, f.sub("tlsrpt"), f.data["tlsrpt"], _TLSRPT_FIELDS)
    has_rua, has_records = t.data.get("rua") is not None, t.data.get("records") is not None
    if has_rua == has_records:
        raise ScenarioError(f.path, t.where, "give exactly one of rua (a valid record naming "
                            "the lab's collector) or records (raw TXT values); a phase that "
                            "switches sets the other to null")
    if has_rua:
        schemes = t.str_list("rua")
        if not schemes:
            raise t.error("rua", "must name https, mailto or both")
        for i, scheme in enumerate(schemes):
            if scheme not in _RUA_SCHEMES:
                raise ScenarioError(f.path, f"{t.sub('rua')}[{i}]", "must be one of "
                                    f"{', '.join(_RUA_SCHEMES)}, not {scheme!r}")
        if len(set(schemes)) != len(schemes):
            raise t.error("rua", "names a scheme twice")
        records = Tlsrpt.for_rua(schemes)
    else:
        raw = t.data["records"]
        if not isinstance(raw, list):
            raise t.error("records", "must be a list of TXT values (strings)")
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                raise ScenarioError(f.path, f"{t.sub('records')}[{i}]",
                                    "must be a string (DNS splits values over 255 bytes)")
            for name in re.findall(r"\{([A-Za-z_]*)\}", item):
                if name not in _RUA_SCHEMES:
                    raise ScenarioError(f.path, f"{t.sub('records')}[{i}]",
                                        f"unknown placeholder {{{name}}} (known: {{https}}, "
                                        "{mailto})")
        records = tuple(raw)
    return Tlsrpt(records, _policy(t, "report_policy", (REPORT_MX,)),
                  int(t.whole("https_fails", 0, 0, MAX_HTTPS_FAILS)))


def _tlsa(f: Fields, mx: tuple[str, ...]) -> tuple[Tlsa, ...]:
    """``tlsa: [{mx, usage, selector, mtype, matches, signed}]``: DANE records (X1)."""
    raw = f.data.get("tlsa") or []
    if not isinstance(raw, list):
        raise f.error("tlsa", "must be a list of TLSA records")
    out = []
    for i, item in enumerate(raw):
        t = Fields(f.path, f"{f.sub('tlsa')}[{i}]", item, _TLSA_FIELDS)
        host = normalize(_check_name(f.path, t.sub("mx"), t.text("mx", mx[0] if mx else "")))
        signed = t.data.get("signed", True)
        if not isinstance(signed, bool):
            raise t.error("signed", f"must be true or false, not {signed!r}")
        out.append(Tlsa(host, int(t.whole("usage", 2, 0, 255)),
                        int(t.whole("selector", 1, 0, 255)), int(t.whole("mtype", 0, 0, 255)),
                        t.choice("matches", TLSA_ANCHORS, "lab-ca"), signed))
    return tuple(out)


def _world(path: str, where: str, raw: Any) -> World:
    """The recipient domain at the top level, more domains under ``other_domains``."""
    f = Fields(path, where, raw if raw is not None else {}, _WORLD_FIELDS)
    top = {k: v for k, v in f.data.items() if k not in ("other_domains", "smart_host")}
    domains = [_domain(Fields(path, where, top, _DOMAIN_FIELDS))]
    others = f.data.get("other_domains") or []
    if not isinstance(others, list):
        raise f.error("other_domains", "must be a list of domains")
    for i, other in enumerate(others):
        domains.append(_domain(Fields(path, f"{f.sub('other_domains')}[{i}]", other,
                                       _DOMAIN_FIELDS)))
    names = [d.name for d in domains]
    if len(set(names)) != len(names):
        raise f.error("other_domains", "each domain may appear once")
    smart_host = f.text("smart_host") or None
    if smart_host is not None:
        smart_host = normalize(_check_name(path, f.sub("smart_host"), smart_host))
        if smart_host not in names[1:]:
            raise f.error("smart_host", f"{smart_host!r} must name one of other_domains "
                                        "(the smart host's own domain, with its MX hosts)")
    world = World(tuple(domains), smart_host)
    if len(world.mx_hosts()) > MAX_MX:
        raise f.error("mx", f"at most {MAX_MX} MX hosts in a world"
                      + (" (the TLS-RPT report domain's MX takes one)"
                         if world.report_domain else ""))
    return world


# ---------------------------------------------------------------- scenario

_TOP_FIELDS = ("summary", "refs", "teach", "covers", "world", "phases", "known_failures",
               "baseline", "timeout", "attacker_does", "compliant_does", "prime")
_PHASE_FIELDS = ("name", "world", "attacks", "expect", "rcpt", "wait_s", "exercise",
                 "state_decides", "primes")
_EXPECT_FIELDS = ("outcome", "level", "status", "sni", "status_level", "stricter",
                  "after_fetch", "say", "fetch_sni", "no_fetch", "needs_fetch", "refreshed")
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
                       e.text("fetch_sni") or None, _flag(e, "refreshed"))


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
    world = _world(path, "world", raw_world)
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
            current = _merge(current, change)
        phase_world = _world(path, pf.sub("world") if pf.has("world") else "world", current)
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

    for sender, reason in kf.data.items():
        if not senders.is_known(str(sender)):
            raise kf.error(str(sender), "unknown sender "
                           f"(known: {', '.join(senders.known_names())})")
        if not isinstance(reason, str) or not reason.strip():
            raise kf.error(str(sender), "must give the reason as a non-empty string")

    baseline: Phase | None = None
    if any(p.is_attack for p in phases):
        raw_base = top.data.get("baseline") or {}
        bf = Fields(path, "baseline", raw_base, ("world", "expect"))
        base_world = world
        if bf.has("world"):
            base_world = _world(path, "baseline.world",
                                _merge(raw_world if isinstance(raw_world, Mapping) else {},
                                       bf.data["world"]))
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
        scenario = dataclasses.replace(scenario, known_failures={**extra,
                                                                 **scenario.known_failures})
    return scenario


def catalogue_root() -> Path:
    """The catalogue that ships inside the package."""
    return Path(str(resources.files("lab") / "scenarios"))


def load_catalogue(root: Path | None = None) -> list[Scenario]:
    root = root or catalogue_root()
    return [load_file(p, root) for p in sorted(root.rglob("*.yaml"))]


def select(names: Iterable[str], root: Path | None = None) -> list[Scenario]:
    """Scenarios by id, id prefix (a theme folder), or file path."""
    root = root or catalogue_root()
    catalogue: list[Scenario] | None = None
    chosen: list[Scenario] = []
    for name in names:
        as_path = Path(name)
        if as_path.suffix in (".yaml", ".yml") and as_path.exists():
            chosen.append(load_file(as_path))
            continue
        catalogue = load_catalogue(root) if catalogue is None else catalogue
        key = name.rstrip("/")
        hits = [s for s in catalogue if s.id == key or s.id.startswith(key + "/")]
        if not hits:
            raise ScenarioError(name, "", "no such scenario or theme in the catalogue "
                                          f"({root})")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
