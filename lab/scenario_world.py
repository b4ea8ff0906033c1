"""The ``world`` block of a scenario file: the recipient domain, its MX hosts, MTA-STS
policy, TLSA and TLS-RPT records, more domains and a smart host, each field checked.

Every name must be a reserved ``.test`` name; every error is a ``ScenarioError`` that names
the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lab.scenario_fields import Fields, ScenarioError
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

_DOMAIN_FIELDS = ("domain", "mx", "policy", "sts_txt", "policy_text", "tlsa", "tlsrpt")
_TLSRPT_FIELDS = ("rua", "records", "report_policy", "https_fails")
_RUA_SCHEMES = ("https", "mailto")
_TLSA_FIELDS = ("mx", "usage", "selector", "mtype", "matches", "signed")
_WORLD_FIELDS = (*_DOMAIN_FIELDS, "other_domains", "smart_host")
_POLICY_FIELDS = ("mode", "mx", "max_age", "id")


def merge_world(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """Phase world changes: mappings merge key by key; anything else replaces."""
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_world(out[key], value)
        else:
            out[key] = value
    return out


def check_test_name(path: str, where: str, name: str, *, wildcard: bool = False) -> str:
    """``name`` when it is a reserved ``.test`` name (``*.`` allowed with ``wildcard``)."""
    plain = name[2:] if wildcard and name.startswith("*.") else name
    if not is_test_name(plain) or "*" in plain:
        raise ScenarioError(path, where, f"{name!r} is not a reserved .test name "
                                         "(the lab only ever uses .test names)")
    return name


def _domain(f: Fields) -> Domain:
    path = f.path
    domain = normalize(check_test_name(path, f.sub("domain"),
                                       f.text("domain", DEFAULT_DOMAIN)))
    mx = f.str_list("mx") if f.has("mx") else (f"mx1.{domain}",)
    for i, host in enumerate(mx):
        check_test_name(path, f"{f.sub('mx')}[{i}]", host)
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
        check_test_name(path, f"{p.sub('mx')}[{i}]", pattern, wildcard=True)
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
        host = normalize(check_test_name(f.path, t.sub("mx"),
                                         t.text("mx", mx[0] if mx else "")))
        signed = t.data.get("signed", True)
        if not isinstance(signed, bool):
            raise t.error("signed", f"must be true or false, not {signed!r}")
        out.append(Tlsa(host, int(t.whole("usage", 2, 0, 255)),
                        int(t.whole("selector", 1, 0, 255)), int(t.whole("mtype", 0, 0, 255)),
                        t.choice("matches", TLSA_ANCHORS, "lab-ca"), signed))
    return tuple(out)


def parse_world(path: str, where: str, raw: Any) -> World:
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
        smart_host = normalize(check_test_name(path, f.sub("smart_host"), smart_host))
        if smart_host not in names[1:]:
            raise f.error("smart_host", f"{smart_host!r} must name one of other_domains "
                                        "(the smart host's own domain, with its MX hosts)")
    world = World(tuple(domains), smart_host)
    if len(world.mx_hosts()) > MAX_MX:
        raise f.error("mx", f"at most {MAX_MX} MX hosts in a world"
                      + (" (the TLS-RPT report domain's MX takes one)"
                         if world.report_domain else ""))
    return world
