"""Zone: normalization, editing and the pure ``answer`` lookup."""

from __future__ import annotations

import pytest
from dns_helpers import victim_zone
from hypothesis import given
from hypothesis import strategies as st

from fake_dns import Failure, Zone, ZoneError, ZoneRecord
from fake_dns.zone import CNAME_DEPTH


def test_add_normalizes_names_types_and_values() -> None:
    zone = Zone()
    rec = zone.add("Victim.TEST.", "mx", "10 MX1.Victim.Test", ttl=60)
    assert rec == ZoneRecord("victim.test", "MX", "10 mx1.victim.test.", 60)
    assert zone.add("h.test", "aaaa", "0:0:0:0:0:0:0:1").value == "::1"
    assert zone.add("h.test", "TLSA", "3 1 1 ABCD ef01").value == "3 1 1 abcdef01"
    assert zone.add("h.test", "CNAME", "T.test").value == "t.test."
    assert zone.records() == [rec, *zone.records()[1:]]


def test_identical_record_is_kept_once_with_the_new_ttl() -> None:
    zone = Zone()
    zone.add("a.test", "A", "127.0.0.1", ttl=10)
    zone.add("A.test.", "A", "127.0.0.1", ttl=20)
    assert zone.records() == [ZoneRecord("a.test", "A", "127.0.0.1", 20)]


@pytest.mark.parametrize(("name", "rtype", "value", "fragment"), [
    ("a.test", "A", "127.0.0.300", "bad A address"),
    ("a.test", "A", "::1", "bad A address"),
    ("a.test", "AAAA", "127.0.0.1", "bad AAAA address"),
    ("a.test", "MX", "mx.test", "bad MX value"),
    ("a.test", "MX", "70000 mx.test", "MX preference"),
    ("a.test", "MX", "10 bad..test", "bad label"),
    ("a.test", "TLSA", "3 1 1 abc", "hex digits"),
    ("a.test", "TLSA", "3 1 1 zz", "hex digits"),
    ("a.test", "SOA", "ns.test. h.test. 1 2 3", "bad SOA value"),
    ("a.test", "SRV", "0 0 25 mx.test", "unsupported record type"),
    ("a.test", "BOGUS", "x", "unknown record type"),
    ("", "A", "127.0.0.1", "empty name"),
    ("a b.test", "A", "127.0.0.1", "bad label"),
    ("ä.test", "A", "127.0.0.1", "ASCII"),
    ("x" * 64 + ".test", "A", "127.0.0.1", "bad label"),
    ("a.test", "TXT", "x" * 60001, "limit"),
    ("a.test", "TXT", "\udc80", "UTF-8"),
])
def test_add_rejects_bad_input(name: str, rtype: str, value: str, fragment: str) -> None:
    with pytest.raises(ZoneError, match=fragment):
        Zone().add(name, rtype, value)


def test_bad_ttl_is_refused() -> None:
    with pytest.raises(ZoneError, match="TTL"):
        Zone().add("a.test", "A", "127.0.0.1", ttl=-1)


def test_exact_answer_is_authoritative() -> None:
    ans = victim_zone().answer("VICTIM.test.", "MX")
    assert ans.rcode == "NOERROR" and ans.aa and ans.failure is None and not ans.ad
    assert [r.value for r in ans.records] == ["10 mx1.victim.test.", "20 mx2.victim.test."]


def test_nodata_for_an_existing_name_without_that_type() -> None:
    ans = victim_zone().answer("victim.test", "A")
    assert (ans.rcode, ans.records) == ("NOERROR", ())


def test_empty_non_terminal_is_nodata_not_nxdomain() -> None:
    zone = Zone()
    zone.add("_25._tcp.mx1.victim.test", "TLSA", "3 1 1 00ff")
    for name in ("_tcp.mx1.victim.test", "mx1.victim.test", "victim.test", "test"):
        assert zone.answer(name, "A").rcode == "NOERROR", name


def test_unknown_name_is_nxdomain() -> None:
    zone = victim_zone()
    assert zone.answer("nope.victim.test", "A").rcode == "NXDOMAIN"
    assert zone.answer("ictim.test", "MX").rcode == "NXDOMAIN"  # a suffix is not an ancestor


def test_negative_answers_carry_the_closest_soa() -> None:
    zone = victim_zone()
    zone.add("victim.test", "SOA", "ns.victim.test. host.victim.test. 1 3600 600 86400 60")
    nx = zone.answer("nope.victim.test", "A")
    assert nx.rcode == "NXDOMAIN" and [r.rtype for r in nx.authority] == ["SOA"]
    assert [r.rtype for r in zone.answer("victim.test", "A").authority] == ["SOA"]
    assert zone.answer("victim.test", "MX").authority == ()


def test_cname_is_chased_in_zone_for_other_types() -> None:
    zone = victim_zone()
    zone.add("alias.test", "CNAME", "alias2.test.")
    zone.add("alias2.test", "CNAME", "mx1.victim.test.")
    ans = zone.answer("alias.test", "A")
    assert ans.rcode == "NOERROR"
    assert [str(r) for r in ans.records] == [
        "CNAME alias2.test.", "CNAME mx1.victim.test.", "A 127.0.0.11"]
    # asking for the CNAME itself does not chase
    assert [str(r) for r in zone.answer("alias.test", "CNAME").records] == ["CNAME alias2.test."]


def test_cname_wins_over_other_records_at_the_same_name() -> None:
    zone = victim_zone()
    zone.add("both.test", "A", "127.0.0.99")
    zone.add("both.test", "CNAME", "mx2.victim.test.")
    assert [str(r) for r in zone.answer("both.test", "A").records] == [
        "CNAME mx2.victim.test.", "A 127.0.0.12"]


def test_cname_to_a_missing_name_is_nxdomain_with_the_chain() -> None:
    zone = Zone()
    zone.add("alias.test", "CNAME", "gone.test.")
    ans = zone.answer("alias.test", "TXT")
    assert ans.rcode == "NXDOMAIN" and [r.rtype for r in ans.records] == ["CNAME"]


def test_cname_to_nodata_keeps_the_chain() -> None:
    zone = victim_zone()
    zone.add("alias.test", "CNAME", "mx1.victim.test.")
    ans = zone.answer("alias.test", "TXT")
    assert ans.rcode == "NOERROR" and [r.rtype for r in ans.records] == ["CNAME"]


@pytest.mark.parametrize("links", [
    [("a.test", "a.test")],
    [("a.test", "b.test"), ("b.test", "a.test")],
    [("a.test", "b.test"), ("b.test", "c.test"), ("c.test", "b.test")],
])
def test_cname_loops_are_servfail(links: list[tuple[str, str]]) -> None:
    zone = Zone()
    for owner, target in links:
        zone.add(owner, "CNAME", target)
    ans = zone.answer("a.test", "A")
    assert (ans.rcode, ans.records, ans.aa) == ("SERVFAIL", (), False)


def test_cname_chain_longer_than_the_limit_is_servfail() -> None:
    def chain(length: int) -> Zone:
        zone = Zone()
        for i in range(length):
            zone.add(f"c{i}.test", "CNAME", f"c{i + 1}.test.")
        zone.add(f"c{length}.test", "A", "127.0.0.1")
        return zone

    assert chain(CNAME_DEPTH).answer("c0.test", "A").rcode == "NOERROR"
    assert chain(CNAME_DEPTH + 1).answer("c0.test", "A").rcode == "SERVFAIL"


def test_any_returns_every_record_of_the_name() -> None:
    zone = victim_zone()
    zone.add("victim.test", "TXT", "hello")
    assert {r.rtype for r in zone.answer("victim.test", "ANY").records} == {"MX", "TXT"}


@pytest.mark.parametrize(("failure", "rcode"), [
    (Failure.NXDOMAIN, "NXDOMAIN"), (Failure.SERVFAIL, "SERVFAIL"), (Failure.REFUSED, "REFUSED"),
])
def test_rcode_failures_replace_the_answer(failure: Failure, rcode: str) -> None:
    zone = victim_zone()
    zone.fail("mx1.victim.test", failure)
    for qtype in ("A", "AAAA", "TXT"):
        ans = zone.answer("mx1.victim.test", qtype)
        assert (ans.rcode, ans.records, ans.failure) == (rcode, (), failure)
    assert zone.answer("mx2.victim.test", "A").failure is None


@pytest.mark.parametrize("failure", [Failure.NO_ANSWER, Failure.TRUNCATE])
def test_transport_failures_keep_the_answer_for_the_server(failure: Failure) -> None:
    zone = victim_zone()
    zone.fail("victim.test", failure.value)
    ans = zone.answer("victim.test", "MX")
    assert ans.failure is failure and ans.rcode == "NOERROR" and len(ans.records) == 2


def test_failure_for_one_type_only() -> None:
    zone = victim_zone()
    zone.fail("_mta-sts.victim.test", Failure.SERVFAIL, rtype="txt")
    assert zone.answer("_mta-sts.victim.test", "TXT").rcode == "SERVFAIL"
    assert zone.answer("_mta-sts.victim.test", "A").rcode == "NOERROR"
    assert zone.failures() == {("_mta-sts.victim.test", "TXT"): Failure.SERVFAIL}


def test_per_type_failure_wins_over_the_name_wide_one() -> None:
    zone = victim_zone()
    zone.fail("victim.test", Failure.SERVFAIL)
    zone.fail("victim.test", Failure.TRUNCATE, "MX")
    assert zone.answer("victim.test", "MX").failure is Failure.TRUNCATE
    assert zone.answer("victim.test", "TXT").failure is Failure.SERVFAIL


def test_failure_on_a_name_without_records() -> None:
    zone = Zone()
    zone.fail("ghost.test", Failure.SERVFAIL)
    assert zone.answer("ghost.test", "A").rcode == "SERVFAIL"
    assert zone.answer("ghost.test", "A").failure is Failure.SERVFAIL


def test_failure_met_along_the_cname_chase_applies() -> None:
    zone = victim_zone()
    zone.add("alias.test", "CNAME", "mx1.victim.test.")
    zone.fail("mx1.victim.test", Failure.NXDOMAIN)
    ans = zone.answer("alias.test", "A")
    assert ans.rcode == "NXDOMAIN" and [r.rtype for r in ans.records] == ["CNAME"]
    zone.fail("mx1.victim.test", Failure.TRUNCATE)
    assert zone.answer("alias.test", "A").failure is Failure.TRUNCATE
    assert len(zone.answer("alias.test", "A").records) == 2


def test_clear_failure_all_or_one_type() -> None:
    zone = victim_zone()
    zone.fail("victim.test", Failure.SERVFAIL)
    zone.fail("victim.test", Failure.REFUSED, "MX")
    zone.clear_failure("VICTIM.test.", "MX")
    assert zone.failures() == {("victim.test", None): Failure.SERVFAIL}
    zone.clear_failure("victim.test")
    assert zone.failures() == {}
    assert zone.answer("victim.test", "MX").rcode == "NOERROR"


def test_unknown_failure_is_a_zone_error() -> None:
    with pytest.raises(ZoneError, match="unknown failure"):
        Zone().fail("a.test", "explode")


def test_authenticated_names_set_ad() -> None:
    zone = victim_zone()
    zone.add("_25._tcp.mx1.victim.test", "TLSA", "3 1 1 00ff")
    zone.authenticate("_25._tcp.mx1.victim.test")
    assert zone.answer("_25._tcp.mx1.victim.test", "TLSA").ad
    assert zone.answer("_25._tcp.mx1.victim.test", "A").ad  # authenticated denial
    assert not zone.answer("mx1.victim.test", "A").ad
    zone.authenticate("_25._tcp.mx1.victim.test", False)
    assert not zone.answer("_25._tcp.mx1.victim.test", "TLSA").ad


def test_ad_needs_every_name_of_the_chase() -> None:
    zone = victim_zone()
    zone.add("alias.test", "CNAME", "mx1.victim.test.")
    zone.authenticate("alias.test")
    assert not zone.answer("alias.test", "A").ad
    zone.authenticate("mx1.victim.test")
    assert zone.answer("alias.test", "A").ad


def test_remove_by_name_or_type() -> None:
    zone = victim_zone()
    zone.add("victim.test", "TXT", "x")
    assert zone.remove("victim.test", "MX") == 2
    assert [r.rtype for r in zone.records("victim.test")] == ["TXT"]
    assert zone.remove("Victim.Test.") == 1
    # still an empty non-terminal (mx1.victim.test lives below it)
    assert (zone.answer("victim.test", "TXT").rcode, zone.records("victim.test")) == ("NOERROR", [])
    assert zone.remove("victim.test") == 0
    zone.remove("mx1.victim.test")
    zone.remove("mx2.victim.test")
    zone.remove("mta-sts.victim.test")
    zone.remove("_mta-sts.victim.test")
    assert zone.answer("victim.test", "TXT").rcode == "NXDOMAIN"


def test_copy_is_deep_and_independent() -> None:
    zone = victim_zone()
    zone.fail("victim.test", Failure.SERVFAIL)
    clone = zone.copy()
    assert clone == zone
    clone.add("evil.test", "A", "127.6.6.6")
    clone.clear_failure("victim.test")
    clone.authenticate("victim.test")
    assert clone != zone
    assert zone.records("evil.test") == [] and zone.failures() and not zone.authenticated()


def test_equality_ignores_insertion_order_but_not_content() -> None:
    a, b = Zone(), Zone()
    a.add("x.test", "A", "127.0.0.1")
    a.add("y.test", "A", "127.0.0.2")
    b.add("y.test", "A", "127.0.0.2")
    b.add("x.test", "A", "127.0.0.1")
    assert a == b
    b.add("x.test", "A", "127.0.0.1", ttl=1)
    assert a != b
    assert a != "not a zone"


_names = st.from_regex(r"[a-c]{1,2}(\.[a-c]{1,2}){0,2}\.test", fullmatch=True)
_types = st.sampled_from(["A", "MX", "TXT", "CNAME"])


def _value(rtype: str, i: int) -> str:
    return {"A": f"127.0.0.{i % 250}", "MX": f"{i} m{i}.test.",
            "TXT": f"t{i}", "CNAME": f"c{i % 3}.a.test."}[rtype]


@given(st.lists(st.tuples(_names, _types), max_size=12), _names, st.sampled_from(
    ["A", "MX", "TXT", "CNAME", "AAAA", "ANY", "TYPE65000"]))
def test_answer_is_total_and_consistent(entries: list[tuple[str, str]], qname: str,
                                        qtype: str) -> None:
    zone = Zone()
    for i, (name, rtype) in enumerate(entries):
        zone.add(name, rtype, _value(rtype, i))
    ans = zone.answer(qname, qtype)
    assert ans.rcode in ("NOERROR", "NXDOMAIN", "SERVFAIL")
    if ans.rcode == "NXDOMAIN":
        assert not zone.exists(ans.records[-1].value if ans.records else qname)
    for rec in ans.records:
        assert rec in zone.records()
    own = zone.records(qname)
    if qtype != "ANY" and any(r.rtype == qtype for r in own) and not any(
            r.rtype == "CNAME" for r in own):
        assert {r for r in own if r.rtype == qtype} == set(ans.records)


def test_with_ttl_rewrites_every_record_and_keeps_the_rest() -> None:
    from fake_dns import Failure, Zone

    zone = Zone()
    zone.add("victim.test", "MX", "10 mx1.victim.test.")
    zone.add("_mta-sts.victim.test", "TXT", "v=STSv1; id=1;", ttl=3600)
    zone.fail("mta-sts.victim.test", Failure.SERVFAIL)
    zone.authenticate("victim.test")
    zero = zone.with_ttl(0)
    assert {r.ttl for r in zero.records()} == {0}
    assert {r.ttl for r in zone.records()} == {300, 3600}
    assert zero.failures() == zone.failures()
    assert zero.authenticated() == zone.authenticated()
