"""TLSA records in the world: what a scenario's ``tlsa`` becomes in the fake DNS zone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lab.dane_world import anchors
from lab.pki import LabPKI
from lab.scenario import load_catalogue
from lab.world import Domain, Policy, Tlsa, Topology, World, build_zone

TOPOLOGY = Topology(dns="127.0.0.53", policy="127.0.0.3", mx_fronts=("127.0.0.11",),
                    mx_backs=("127.0.0.21",), attacker="127.0.0.66")


def test_signed_tlsa_is_published_with_the_ca_key_and_the_chain_authenticated(
        tmp_path: Path) -> None:
    pki = LabPKI(tmp_path / "pki")
    topology = Topology(**{**TOPOLOGY.__dict__, "extra": anchors(pki)})
    world = World((Domain("victim.test", ("mx1.victim.test",), Policy(),
                          tlsa=(Tlsa("mx1.victim.test", 2, 1, 1, "rogue-ca", True),
                                Tlsa("mx1.victim.test", 3, 1, 1, "nothing", True))),))
    zone = build_zone(world, topology)
    rdata = [r.value for r in zone.records("_25._tcp.mx1.victim.test", "TLSA")]
    spki = bytes.fromhex(anchors(pki)["tlsa:rogue-ca:1"])
    assert rdata[0] == f"2 1 1 {hashlib.sha256(spki).hexdigest()}"
    assert rdata[1].startswith("3 1 1 ") and rdata[1] != rdata[0]
    assert {"victim.test", "mx1.victim.test", "_25._tcp.mx1.victim.test"} <= \
        zone.authenticated()


def test_unsigned_tlsa_is_published_without_the_ad_mark(tmp_path: Path) -> None:
    topology = Topology(**{**TOPOLOGY.__dict__, "extra": anchors(LabPKI(tmp_path / "pki"))})
    world = World((Domain("victim.test", ("mx1.victim.test",), Policy(),
                          tlsa=(Tlsa("mx1.victim.test", signed=False),)),))
    zone = build_zone(world, topology)
    assert zone.records("_25._tcp.mx1.victim.test", "TLSA")
    assert not zone.authenticated()


def test_the_dane_scenarios_load_their_tlsa_records() -> None:
    dane = {s.id: s for s in load_catalogue() if s.id.startswith("dane/")}
    assert len(dane) == 3
    for scenario in dane.values():
        assert all(p.world.domain.tlsa for p in scenario.phases)
    unsigned = dane["dane/unsigned-tlsa-ignored"].phases[0].world.domain.tlsa
    assert [t.signed for t in unsigned] == [False]
