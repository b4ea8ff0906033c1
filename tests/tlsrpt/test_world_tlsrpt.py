"""Worlds publish TLS-RPT: the scenario field ``tlsrpt``, the zone, the report domain's MX
slot and which attacks stand on the path to it (pure: no sockets)."""

from __future__ import annotations

import pytest

from lab.scenario import ScenarioError, load_text
from lab.scenario_model import Scenario
from lab.tlsrpt import REPORT_MX, discover
from lab.world import Topology
from lab.world_setup import ServiceConfig, service_config

TOPO = Topology(dns="127.0.0.2", policy="127.0.0.3",
                mx_fronts=tuple(f"127.0.0.{11 + i}" for i in range(4)),
                mx_backs=tuple(f"127.0.0.{21 + i}" for i in range(4)), attacker="127.0.0.30")


def scenario(world: str, attacks: str = "[]") -> Scenario:
    text = (f"summary: s\nrefs: [RFC 8460]\nteach: t\nworld:\n{world}\nphases:\n"
            f"  - attacks: {attacks}\n    expect: {{outcome: [delivered-tls]}}\n")
    return load_text(text, "t.yaml", "t")


def txt(config: ServiceConfig, name: str) -> list[str]:
    return [r.value for r in config.zone.records(name, "TXT")]


def test_no_tlsrpt_field_publishes_nothing_new() -> None:
    phase = scenario("  policy: {mode: enforce}").phases[0]
    assert phase.world.report_domain is None and phase.world.mx_hosts() == ["mx1.victim.test"]
    config = service_config(phase.world, TOPO, phase.attacks)
    assert txt(config, "_smtp._tls.victim.test") == []
    assert not config.collector.enabled and config.accept_domains == ("victim.test",)


@pytest.mark.parametrize(("rua", "uris"), [
    ("[https]", ["https://tlsrpt.reports.test:8443/v1/tlsrpt"]),
    ("[mailto]", ["mailto:tlsrpt@reports.test"]),
    ("[mailto, https]", ["mailto:tlsrpt@reports.test",
                         "https://tlsrpt.reports.test:8443/v1/tlsrpt"]),
])
def test_rua_publishes_one_valid_record_naming_the_collector(rua: str, uris: list[str]) -> None:
    phase = scenario(f"  tlsrpt: {{rua: {rua}}}").phases[0]
    topo = Topology(**{**TOPO.__dict__, "https_port": 8443})
    config = service_config(phase.world, topo, ())
    [record] = txt(config, "_smtp._tls.victim.test")
    parsed = discover([[record]])
    assert parsed is not None and list(parsed.rua) == uris
    assert config.collector.enabled and config.accept_domains == ("victim.test", "reports.test")
    assert [m.name for m in config.mx] == ["mx1.victim.test", REPORT_MX]
    names = {(r.name.rstrip("."), r.rtype, r.value) for r in config.zone.records()}
    assert ("tlsrpt.reports.test", "A", "127.0.0.3") in names
    assert ("reports.test", "MX", "10 mx.reports.test.") in names
    assert ("mx.reports.test", "A", "127.0.0.12") in names


def test_on_port_443_the_uri_names_no_port() -> None:
    phase = scenario("  tlsrpt: {rua: [https]}").phases[0]
    [record] = txt(service_config(phase.world, TOPO, ()), "_smtp._tls.victim.test")
    assert record == "v=TLSRPTv1; rua=https://tlsrpt.reports.test/v1/tlsrpt"


def test_raw_records_with_placeholders_and_the_broken_forms() -> None:
    world = ('  tlsrpt:\n    records: ["v=TLSRPTv1; rua={mailto}", "v=TLSRPTv1; rua={https}",'
             ' "v=TLSRPTv1; rua=not a uri", "v=TLSRPTv1; ext=' + "x" * 300 + '; rua={mailto}"]')
    phase = scenario(world).phases[0]
    records = txt(service_config(phase.world, TOPO, ()), "_smtp._tls.victim.test")
    assert records[0] == "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"
    assert records[1] == "v=TLSRPTv1; rua=https://tlsrpt.reports.test/v1/tlsrpt"
    assert records[2] == "v=TLSRPTv1; rua=not a uri"
    assert len(records[3]) > 255  # DNS carries it as two strings
    assert discover([[r] for r in records]) is None  # more than one: no TLS-RPT


def test_the_report_domain_may_have_its_own_policy_and_a_failing_collector() -> None:
    world = "  tlsrpt: {rua: [https], report_policy: {mode: enforce}, https_fails: 2}"
    phase = scenario(world).phases[0]
    config = service_config(phase.world, TOPO, ())
    assert b"mx: mx.reports.test" in config.policies["reports.test"].body
    assert txt(config, "_mta-sts.reports.test") == ["v=STSv1; id=lab20261129;"]
    assert config.collector.fail_times == 2


def test_untargeted_smtp_attacks_leave_the_report_path_alone() -> None:
    phase = scenario("  tlsrpt: {rua: [mailto]}",
                     "[{strip-starttls: {}}, {reject-starttls: {mx: mx.reports.test}}]").phases[0]
    config = service_config(phase.world, TOPO, phase.attacks)
    armed = {m.name: [a.name for a in m.attacks] for m in config.mx}
    assert armed == {"mx1.victim.test": ["strip-starttls"], REPORT_MX: ["reject-starttls"]}


def test_the_report_mx_takes_a_slot() -> None:
    mx = "[mx1.victim.test, mx2.victim.test, mx3.victim.test]"
    scenario(f"  mx: {mx}")  # three fit without TLS-RPT
    with pytest.raises(ScenarioError, match="at most 4 MX hosts in a world"):
        scenario(f"  mx: {mx}\n  other_domains: [{{domain: b.test, mx: [mx.b.test]}}]\n"
                 "  tlsrpt: {rua: [mailto]}")


@pytest.mark.parametrize(("world", "where", "words"), [
    ("  tlsrpt: {}", "world.tlsrpt", "exactly one of rua"),
    ("  tlsrpt: {rua: [https], records: []}", "world.tlsrpt", "exactly one of rua"),
    ("  tlsrpt: {rua: []}", "world.tlsrpt.rua", "must name https, mailto or both"),
    ("  tlsrpt: {rua: [ftp]}", "world.tlsrpt.rua[0]", "must be one of https, mailto"),
    ("  tlsrpt: {rua: [https, https]}", "world.tlsrpt.rua", "names a scheme twice"),
    ("  tlsrpt: {records: v=TLSRPTv1}", "world.tlsrpt.records", "must be a list"),
    ("  tlsrpt: {records: [[a, b]]}", "world.tlsrpt.records[0]", "must be a string"),
    ('  tlsrpt: {records: ["rua={http}"]}', "world.tlsrpt.records[0]",
     "unknown placeholder {http}"),
    ("  tlsrpt: {rua: [https], https_fails: 11}", "world.tlsrpt.https_fails",
     "between 0 and 10"),
    ("  tlsrpt: {rua: [https], port: 1}", "world.tlsrpt.port", "unknown field"),
    ("  tlsrpt: {rua: [https], report_policy: {mode: x}}", "world.tlsrpt.report_policy.mode",
     ""),
    ("  tlsrpt: [https]", "world.tlsrpt", "must be a mapping"),
])
def test_bad_tlsrpt_fields_name_the_field(world: str, where: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario(world)
    assert info.value.field == where and words in info.value.message


def test_a_phase_can_switch_forms_and_attack_the_report_mx_by_name() -> None:
    text = ("summary: s\nrefs: [RFC 8460]\nteach: t\nworld:\n  tlsrpt: {rua: [https]}\n"
            "phases:\n  - name: p1\n    expect: {outcome: [delivered-tls]}\n"
            "  - name: p2\n    world: {tlsrpt: {rua: null, records: []}}\n"
            "    attacks: [{strip-starttls: {mx: mx.reports.test}}]\n"
            "    expect: {outcome: [delivered-tls]}\n")
    s = load_text(text, "t.yaml", "t")
    second = s.phases[1].world.domain.tlsrpt
    assert second is not None and second.records == ()
