"""The DNS attacks: pure zone transforms (zone in, zone out), their options and evidence."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_dns.zone import CNAME_DEPTH, RECORD_TYPES, Failure, Zone, ZoneRecord
from lab.attacks.add_sts_record import AddStsRecord
from lab.attacks.base import Attack, DnsAttack
from lab.attacks.cname_sts_record import CnameStsRecord
from lab.attacks.dns_failure import DnsFailure
from lab.attacks.hide_sts_record import HideStsRecord
from lab.attacks.spoof_mx import SpoofMx
from lab.scenario import ScenarioError, load_text
from lab.senders.mtasts import discover
from lab.world import Domain, Policy, Topology, World, build_zone
from lab.world_setup import attacker_hosts

TOPOLOGY = Topology(dns="127.0.0.53", policy="127.0.0.80",
                    mx_fronts=tuple(f"127.0.1.{i}" for i in range(1, 5)),
                    mx_backs=tuple(f"127.0.2.{i}" for i in range(1, 5)),
                    attacker="127.0.0.66")
ENFORCE = Policy(mode="enforce", mx=("mx1.victim.test", "mx2.victim.test"))
WORLD = World((Domain("victim.test", ("mx1.victim.test", "mx2.victim.test"), ENFORCE),
               Domain("other.test", ("mx.other.test",), None)))
DNS_ATTACKS: list[type[DnsAttack]] = [SpoofMx, HideStsRecord, AddStsRecord, CnameStsRecord,
                                      DnsFailure]


def zone_for(world: World, attack: DnsAttack) -> Zone:
    """The zone the runner publishes before the attack transforms it."""
    return build_zone(world, TOPOLOGY, attacker_hosts(world, [attack]))


def apply(attack: DnsAttack, world: World = WORLD) -> tuple[Zone, Zone]:
    before = zone_for(world, attack)
    frozen = before.copy()
    after = attack.transform(before, world, TOPOLOGY)
    assert before == frozen, "a transform must not change its input"
    assert after is not before
    return before, after


def values(zone: Zone, name: str, rtype: str) -> list[str]:
    return sorted(r.value for r in zone.records(name, rtype))


def untouched(before: Zone, after: Zone, *names: str) -> None:
    """Every record outside ``names`` is the same before and after."""
    def rest(zone: Zone) -> set[ZoneRecord]:
        return {r for r in zone.records() if r.name not in names}
    assert rest(before) == rest(after)


def sts_txt(zone: Zone, domain: str = "victim.test") -> list[str]:
    """What a resolver following CNAMEs gets for the TXT query (the in-zone chase)."""
    answer = zone.answer(f"_mta-sts.{domain}", "TXT")
    return [r.value for r in answer.records if r.rtype == "TXT"]


# ------------------------------------------------------------------ registration, options

@pytest.mark.parametrize("cls", DNS_ATTACKS, ids=lambda c: c.name)
def test_registered_with_plain_typed_options(cls: type[DnsAttack]) -> None:
    assert Attack.registry.get(cls.name) is cls
    assert cls.place == "dns" and cls.summary
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        assert hints[f.name] in (str, int, bool, Failure, str | None)
        assert f.default is not dataclasses.MISSING


def test_only_spoof_mx_makes_a_compliant_enforce_sender_refuse() -> None:
    assert [c.name for c in DNS_ATTACKS if c.enforce_breaking] == ["spoof-mx"]


SCENARIO = """
summary: s
refs: [r]
teach: t
world: {{policy: {{mode: enforce}}}}
phases:
  - attacks: [{attack}]
    expect: {{outcome: not-delivered}}
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("spoof-mx", SpoofMx()),
    ("{spoof-mx: {host: A.B.Victim.TEST, keep_genuine: true}}",
     SpoofMx(host="a.b.victim.test", keep_genuine=True)),
    ("hide-sts-record", HideStsRecord()),
    ('{add-sts-record: {text: "v=STSv10; id=x;", replace: true}}',
     AddStsRecord(text="v=STSv10; id=x;", replace=True)),
    ("{cname-sts-record: {hops: 3, target: t.provider.test}}",
     CnameStsRecord(target="t.provider.test", hops=3)),
    ('{dns-failure: {qname: "mta-sts.{domain}", failure: nxdomain, qtype: a}}',
     DnsFailure(qname="mta-sts.{domain}", failure=Failure.NXDOMAIN, qtype="A")),
])
def test_yaml_options_map_onto_fields(text: str, expected: DnsAttack) -> None:
    scenario = load_text(SCENARIO.format(attack=text), "s.yaml", "s")
    assert scenario.phases[0].attacks == (expected,)


@pytest.mark.parametrize(("text", "field"), [
    ("{spoof-mx: {host: mx.attacker.example}}", "spoof-mx"),
    ("{spoof-mx: {keep_genuine: yes please}}", "keep_genuine"),
    ("{hide-sts-record: {domain: victim.com}}", "hide-sts-record"),
    ("{cname-sts-record: {hops: 0}}", "cname-sts-record"),
    ("{cname-sts-record: {hops: 9}}", "cname-sts-record"),
    ("{dns-failure: {failure: timeout}}", "failure"),
    ('{dns-failure: {qname: "_mta-sts.{recipient}"}}', "dns-failure"),
    ('{dns-failure: {qname: "{domain}.example"}}', "dns-failure"),
    ("{dns-failure: {qtype: SPF}}", "dns-failure"),
    ("{add-sts-record: {texts: x}}", "add-sts-record"),
])
def test_bad_options_are_scenario_errors_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(SCENARIO.format(attack=text), "s.yaml", "s")
    assert field in info.value.field and info.value.path == "s.yaml"


# ------------------------------------------------------------------ spoof-mx

def test_spoof_mx_replaces_the_mx_records_with_the_attackers_host() -> None:
    attack = SpoofMx()
    before, after = apply(attack)
    assert values(before, "victim.test", "MX") == ["10 mx1.victim.test.", "20 mx2.victim.test."]
    assert values(after, "victim.test", "MX") == ["10 mx.attacker.test."]
    assert values(after, "mx.attacker.test", "A") == [TOPOLOGY.mx_fronts[3]]  # after 3 MX
    untouched(before, after, "victim.test")
    assert attack.attacker_mx(WORLD) == ["mx.attacker.test"]
    assert attack.watched(WORLD) == {("victim.test", "MX")}
    answer = after.answer("victim.test", "MX")
    assert [r.value for r in answer.records] == ["10 mx.attacker.test."]


def test_spoof_mx_keep_genuine_adds_the_attacker_ahead() -> None:
    before, after = apply(SpoofMx(keep_genuine=True))
    assert values(after, "victim.test", "MX") == ["10 mx1.victim.test.", "20 mx2.victim.test.",
                                                  "9 mx.attacker.test."]
    best = min(after.records("victim.test", "MX"), key=lambda r: int(r.value.split()[0]))
    assert best.value == "9 mx.attacker.test."
    untouched(before, after, "victim.test")


def test_spoof_mx_of_another_domain_and_preference_floor() -> None:
    zone = zone_for(WORLD, SpoofMx(domain="other.test"))
    zone.remove("other.test", "MX")
    zone.add("other.test", "MX", "0 mx.other.test")
    after = SpoofMx(domain="Other.Test.", keep_genuine=True).transform(zone, WORLD, TOPOLOGY)
    assert values(after, "other.test", "MX") == ["0 mx.attacker.test.", "0 mx.other.test."]
    assert values(after, "victim.test", "MX") == values(zone, "victim.test", "MX")
    assert SpoofMx(domain="other.test").watched(WORLD) == {("other.test", "MX")}


def test_spoof_mx_refuses_a_world_host_or_a_host_without_an_address() -> None:
    with pytest.raises(ValueError, match="is an MX host of the world"):
        SpoofMx(host="mx2.victim.test").transform(zone_for(WORLD, SpoofMx()), WORLD, TOPOLOGY)
    bare = build_zone(WORLD, TOPOLOGY)  # the runner did not give the attacker a slot
    with pytest.raises(ValueError, match="no address"):
        SpoofMx().transform(bare, WORLD, TOPOLOGY)
    with pytest.raises(ValueError, match=r"\.test"):
        SpoofMx(host="mx.attacker.com")
    with pytest.raises(ValueError, match=r"\.test"):
        SpoofMx(host="*.attacker.test")


HOSTS = st.lists(st.sampled_from(["mx1.victim.test", "mx2.victim.test", "a.b.victim.test",
                                  "mail.provider.test"]), min_size=1, max_size=3, unique=True)


@settings(max_examples=50, deadline=None)
@given(hosts=HOSTS, keep=st.booleans(), host=st.sampled_from(
    ["mx.attacker.test", "victim.test", "evil.victim.test"]))
def test_spoof_mx_property(hosts: list[str], keep: bool, host: str) -> None:
    world = World((Domain("victim.test", tuple(hosts), ENFORCE),))
    attack = SpoofMx(host=host, keep_genuine=keep)
    before, after = apply(attack, world)
    mx = after.answer("victim.test", "MX").records
    targets = [r.value.split()[1].rstrip(".") for r in sorted(
        mx, key=lambda r: int(r.value.split()[0]))]
    assert targets[0] == host  # the attacker's MX always comes first
    assert sorted(targets[1:]) == (sorted(hosts) if keep else [])
    assert after.records(host, "A")
    untouched(before, after, "victim.test")


# ------------------------------------------------------------------ hide-sts-record

def test_hide_sts_record_removes_the_name() -> None:
    before, after = apply(HideStsRecord())
    assert sts_txt(before) == ["v=STSv1; id=lab20261129;"]
    assert after.answer("_mta-sts.victim.test", "TXT").rcode == "NXDOMAIN"
    untouched(before, after, "_mta-sts.victim.test")
    assert HideStsRecord().watched(WORLD) == {("_mta-sts.victim.test", "TXT")}


def test_hide_sts_record_also_removes_a_cname() -> None:
    cnamed = CnameStsRecord().transform(zone_for(WORLD, HideStsRecord()), WORLD, TOPOLOGY)
    assert discover(sts_txt(cnamed)) == "lab20261129"
    hidden = HideStsRecord().transform(cnamed, WORLD, TOPOLOGY)
    assert sts_txt(hidden) == []
    assert discover(sts_txt(hidden)) is None


def test_hide_sts_record_refuses_to_hide_nothing() -> None:
    with pytest.raises(ValueError, match="nothing to hide"):
        HideStsRecord(domain="other.test").transform(zone_for(WORLD, HideStsRecord()), WORLD,
                                                     TOPOLOGY)


# ------------------------------------------------------------------ add-sts-record

def test_add_sts_record_second_record_means_no_policy() -> None:
    before, after = apply(AddStsRecord())
    assert discover(sts_txt(before)) == "lab20261129"
    assert sorted(sts_txt(after)) == ["v=STSv1; id=attacker1;", "v=STSv1; id=lab20261129;"]
    assert discover(sts_txt(after)) is None
    untouched(before, after, "_mta-sts.victim.test")


def test_add_sts_record_unrelated_text_leaves_the_policy() -> None:
    _, after = apply(AddStsRecord(text="site-verification=abc"))
    assert len(sts_txt(after)) == 2
    assert discover(sts_txt(after)) == "lab20261129"


def test_add_sts_record_replace() -> None:
    _, after = apply(AddStsRecord(text="v=STSv1; id=new2;", replace=True))
    assert sts_txt(after) == ["v=STSv1; id=new2;"]
    assert discover(sts_txt(after)) == "new2"


def test_add_sts_record_refuses_a_no_op_and_a_cname_neighbour() -> None:
    with pytest.raises(ValueError, match="change nothing"):
        apply(AddStsRecord(text="v=STSv1; id=lab20261129;"))
    cnamed = CnameStsRecord().transform(zone_for(WORLD, AddStsRecord()), WORLD, TOPOLOGY)
    with pytest.raises(ValueError, match="CNAME"):
        AddStsRecord().transform(cnamed, WORLD, TOPOLOGY)


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60))
def test_add_sts_record_property(text: str) -> None:
    if text == "v=STSv1; id=lab20261129;":
        return
    _, after = apply(AddStsRecord(text=text))
    records = sts_txt(after)
    assert sorted(records) == sorted(["v=STSv1; id=lab20261129;", text])
    # an added record that is itself an STS record (valid or not) leaves two: no policy;
    # anything else is discarded and the genuine record still counts (RFC 8461 3.1)
    is_sts = text.startswith("v=STSv1") and text[7:].lstrip(" \t").startswith(";")
    assert discover(records) == (None if is_sts else "lab20261129")


# ------------------------------------------------------------------ cname-sts-record

def test_cname_sts_record_moves_the_txt_behind_a_cname() -> None:
    attack = CnameStsRecord()
    before, after = apply(attack)
    assert values(after, "_mta-sts.victim.test", "CNAME") == ["_mta-sts.sts-provider.test."]
    assert values(after, "_mta-sts.victim.test", "TXT") == []
    assert values(after, "_mta-sts.sts-provider.test", "TXT") == ["v=STSv1; id=lab20261129;"]
    answer = after.answer("_mta-sts.victim.test", "TXT")
    assert [r.rtype for r in answer.records] == ["CNAME", "TXT"]
    assert discover(sts_txt(after)) == "lab20261129"
    untouched(before, after, "_mta-sts.victim.test", "_mta-sts.sts-provider.test")
    assert attack.watched(WORLD) == {("_mta-sts.victim.test", "TXT")}


@pytest.mark.parametrize("hops", range(1, CNAME_DEPTH + 1))
def test_cname_sts_record_chain(hops: int) -> None:
    attack = CnameStsRecord(hops=hops)
    _, after = apply(attack)
    chain = attack.chain("victim.test")
    assert len(chain) == hops + 1 and chain[-1] == "_mta-sts.sts-provider.test"
    answer = after.answer("_mta-sts.victim.test", "TXT")
    assert [r.rtype for r in answer.records] == ["CNAME"] * hops + ["TXT"]
    assert discover(sts_txt(after)) == "lab20261129"


def test_cname_sts_record_keeps_every_txt_and_refuses_odd_zones() -> None:
    zone = zone_for(WORLD, CnameStsRecord())
    zone.add("_mta-sts.victim.test", "TXT", "note=unrelated")
    after = CnameStsRecord().transform(zone, WORLD, TOPOLOGY)
    assert sorted(sts_txt(after)) == ["note=unrelated", "v=STSv1; id=lab20261129;"]
    with pytest.raises(ValueError, match="TXT records only"):
        CnameStsRecord(domain="other.test").transform(zone, WORLD, TOPOLOGY)
    with pytest.raises(ValueError, match="hold nothing"):
        CnameStsRecord(target="mx1.victim.test").transform(zone, WORLD, TOPOLOGY)


# ------------------------------------------------------------------ dns-failure

@pytest.mark.parametrize("failure", list(Failure))
def test_dns_failure_sets_the_failure_on_the_expanded_name(failure: Failure) -> None:
    attack = DnsFailure(failure=failure)
    before, after = apply(attack)
    assert after.failure_for("_mta-sts.victim.test", "TXT") is failure
    assert after.records() == before.records() and not before.failures()
    assert attack.watched(WORLD) == {("_mta-sts.victim.test", t) for t in RECORD_TYPES}


def test_dns_failure_qname_template_qtype_and_domain() -> None:
    attack = DnsFailure(qname="mta-sts.{domain}", qtype="a", failure=Failure.NXDOMAIN,
                        domain="other.test")
    _, after = apply(attack)
    assert after.failure_for("mta-sts.other.test", "A") is Failure.NXDOMAIN
    assert after.failure_for("mta-sts.other.test", "AAAA") is None
    assert after.answer("mta-sts.other.test", "A").rcode == "NXDOMAIN"
    assert attack.watched(WORLD) == {("mta-sts.other.test", "A")}
    literal = DnsFailure(qname="MX1.victim.test.", failure=Failure.SERVFAIL)
    _, after = apply(literal)
    assert after.answer("mx1.victim.test", "A").rcode == "SERVFAIL"
    assert after.answer("mx2.victim.test", "A").rcode == "NOERROR"


@settings(max_examples=60, deadline=None)
@given(failure=st.sampled_from(list(Failure)),
       qname=st.sampled_from(["_mta-sts.{domain}", "mta-sts.{domain}", "{domain}",
                              "mx2.victim.test"]),
       qtype=st.none() | st.sampled_from(list(RECORD_TYPES)),
       domain=st.sampled_from([None, "victim.test", "other.test"]))
def test_dns_failure_property(failure: Failure, qname: str, qtype: str | None,
                              domain: str | None) -> None:
    attack = DnsFailure(failure=failure, qname=qname, qtype=qtype, domain=domain)
    before, after = apply(attack)
    name = qname.format(domain=domain or "victim.test")
    assert after.records() == before.records()
    assert after.failures() == {(name, qtype): failure}
    for rtype in RECORD_TYPES:
        expected = failure if qtype in (None, rtype) else None
        assert after.failure_for(name, rtype) is expected
        assert ((name, rtype) in attack.watched(WORLD)) is (expected is not None)
