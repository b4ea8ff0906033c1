"""The zone file format: parsing, errors with line numbers, round trips (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_dns import Failure, Zone, ZoneError, ZoneRecord
from fake_dns.text import tokenize

SAMPLE = r"""
; the victim's zone
$ORIGIN victim.test.
$TTL 120
@            IN MX 10 mx1          ; relative target
@            3600 MX 20 mx2.victim.test.
mx1          A 127.0.0.11
mx2.victim.test. IN 60 A 127.0.0.12
_mta-sts     TXT "v=STSv1; id=20240101;"   ; a ; inside quotes is text
             TXT "split " "in two" \; unquoted
quoted.test. TXT "say \"hi\" \\ back\010"
_25._tcp.mx1 TLSA 3 1 1 ABCDEF
alias        CNAME mx1
$FAIL mta-sts servfail
$FAIL @ truncate MX
$AD _25._tcp.mx1
"""


def test_sample_zone_parses() -> None:
    zone = Zone.from_text(SAMPLE)
    assert zone.records("victim.test", "MX") == [
        ZoneRecord("victim.test", "MX", "10 mx1.victim.test.", 120),
        ZoneRecord("victim.test", "MX", "20 mx2.victim.test.", 3600),
    ]
    assert zone.records("mx2.victim.test") == [ZoneRecord("mx2.victim.test", "A", "127.0.0.12", 60)]
    assert [r.value for r in zone.records("_mta-sts.victim.test")] == [
        "v=STSv1; id=20240101;", "split in two;unquoted"]
    assert zone.records("quoted.test")[0].value == 'say "hi" \\ back\n'
    assert zone.records("_25._tcp.mx1.victim.test")[0].value == "3 1 1 abcdef"
    assert zone.records("alias.victim.test")[0].value == "mx1.victim.test."
    assert zone.failures() == {("mta-sts.victim.test", None): Failure.SERVFAIL,
                               ("victim.test", "MX"): Failure.TRUNCATE}
    assert zone.authenticated() == {"_25._tcp.mx1.victim.test"}


def test_names_are_absolute_without_origin() -> None:
    zone = Zone.from_text("victim.test MX 10 mx1.victim.test\nmx1.victim.test A 127.0.0.1\n")
    assert [str(r) for r in zone.records()] == ["MX 10 mx1.victim.test.", "A 127.0.0.1"]


def test_crlf_and_blank_lines_are_fine() -> None:
    assert Zone.from_text("\r\n; c\r\na.test A 127.0.0.1\r\n\r\n").records() == [
        ZoneRecord("a.test", "A", "127.0.0.1")]


def test_sample_round_trips() -> None:
    zone = Zone.from_text(SAMPLE)
    text = zone.to_text()
    assert Zone.from_text(text) == zone
    assert Zone.from_text(text).to_text() == text


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("a.test A 127.0.0.1\nb.test A 300.1.1.1\n", 2, "bad A address"),
    ("a.test TXT \"open\n", 1, "unterminated"),
    ("\n\na.test A\n", 3, "missing A value"),
    ("a.test 300 IN\n", 1, "missing record type"),
    ("a.test WHAT x\n", 1, "unknown record type"),
    ("a.test SRV 0 0 25 mx.test.\n", 1, "unsupported record type"),
    ("a.test CH A 127.0.0.1\n", 1, "only class IN"),
    ("a.test 99999999999 A 127.0.0.1\n", 1, "TTL"),
    ("a.test ( A 127.0.0.1 )\n", 1, "parentheses"),
    ("  A 127.0.0.1\n", 1, "needs an owner"),
    ("@ A 127.0.0.1\n", 1, "needs a $ORIGIN"),
    ("$INCLUDE other.zone\n", 1, "unknown directive"),
    ("$FAIL a.test\n", 1, "usage: $FAIL"),
    ("$FAIL a.test explode\n", 1, "unknown failure"),
    ("$FAIL a.test servfail NOPE\n", 1, "unknown record type"),
    ("$AD\n", 1, "usage: $AD"),
    ("$TTL 1h\n", 1, "$TTL must be"),
    ("a.test MX \"10\" mx.test.\n", 1, "quoted string not allowed"),
    ("a.test TXT \"x\"y\n", 1, "followed by a blank"),
    ("a.test TXT x\"y\"\n", 1, "quote inside a word"),
    ("a.test TXT \\999\n", 1, "above 255"),
    ("a.test TXT x\\", 1, "backslash at the end"),
    ("a..test A 127.0.0.1\n", 1, "bad label"),
])
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ZoneError) as info:
        Zone.from_text(text)
    assert info.value.line == line
    assert fragment in info.value.message
    assert str(info.value).startswith(f"line {line}: ")


def test_tokenize_keeps_quoted_semicolons_and_escapes() -> None:
    tokens = tokenize(r'a "b; c" d\"e ; comment')
    assert [(t.text, t.quoted) for t in tokens] == [("a", False), ("b; c", True),
                                                     ('d"e', False)]


# --- Hypothesis --------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9_]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_name = st.lists(_label, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "test"]))
_txt = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
_txt_tricky = st.lists(st.sampled_from(['"', "\\", ";", " ", "(", ")", "$", "a", "\t", "\n"]),
                       max_size=20).map("".join)
_record = st.one_of(
    st.tuples(_name, st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(_name, st.just("AAAA"), st.ip_addresses(v=6).map(str)),
    st.tuples(_name, st.just("MX"),
              st.tuples(st.integers(0, 65535), _name).map(lambda t: f"{t[0]} {t[1]}.")),
    st.tuples(_name, st.just("TXT"), st.one_of(_txt, _txt_tricky)),
    st.tuples(_name, st.just("CNAME"), _name),
    st.tuples(_name, st.just("TLSA"), st.binary(min_size=1, max_size=32).map(
        lambda b: f"3 1 1 {b.hex()}")),
)
_failure = st.tuples(_name, st.sampled_from(list(Failure)),
                     st.sampled_from([None, "A", "MX", "TXT", "TLSA"]))


@st.composite
def zones(draw: st.DrawFn) -> Zone:
    zone = Zone()
    for name, rtype, value in draw(st.lists(_record, max_size=10)):
        zone.add(name, rtype, value, ttl=draw(st.integers(0, 2**31 - 1)))
    for name, failure, rtype in draw(st.lists(_failure, max_size=3)):
        zone.fail(name, failure, rtype)
    for name in draw(st.lists(_name, max_size=3)):
        zone.authenticate(name)
    return zone


@given(zones())
def test_to_text_from_text_round_trip(zone: Zone) -> None:
    text = zone.to_text()
    again = Zone.from_text(text)
    assert again == zone
    assert again.records() == zone.records()  # order kept too
    assert again.to_text() == text


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_zone_error(text: str) -> None:
    try:
        Zone.from_text(text)
    except ZoneError as exc:
        assert exc.line is not None and exc.line >= 1


_zoneish = st.lists(st.sampled_from([
    "a.test", "@", "$ORIGIN", "$TTL", "$FAIL", "$AD", "$X", "IN", "CH", "300", "99999999999",
    "A", "AAAA", "MX", "TXT", "CNAME", "TLSA", "NS", "SOA", "SRV", "TYPE65000", "10",
    "127.0.0.1", "::1", "mx.test.", '"q;t"', '"', "\\", "\\065", ";", "(", " ", "\t", "\n",
    "servfail", "no-answer", "ab", "x..y", "\u00e9", "\u0663", "\u212a.test",
]), max_size=25).map(" ".join)


@settings(max_examples=300)
@given(_zoneish)
def test_zone_like_text_raises_only_zone_error(text: str) -> None:
    try:
        zone = Zone.from_text(text)
    except ZoneError as exc:
        assert exc.line is not None and exc.line >= 1
    else:
        assert Zone.from_text(zone.to_text()) == zone
