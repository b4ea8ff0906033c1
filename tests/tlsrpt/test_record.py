"""The ``_smtp._tls`` record (RFC 8460 3): what the grammar accepts and refuses."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.tlsrpt import RecordError, TlsrptRecord, discover, format_record, parse_record
from lab.tlsrpt.record import join_strings

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
label = st.text(ALNUM, min_size=1, max_size=10)
host = st.builds(lambda parts: ".".join(parts) + ".test", st.lists(label, min_size=1,
                                                                     max_size=3))
path = st.text(ALNUM + "-._~/=&+", max_size=20)
uri = st.one_of(
    st.builds(lambda local, h: f"mailto:{local}@{h}", label, host),
    st.builds(lambda h, p: f"https://{h}/{p}", host, path),
    st.builds(lambda h, p, port: f"https://{h}:{port}/{p}", host, path,
              st.integers(1, 65535)),
)
ext_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True).filter(
    lambda n: n != "rua")
ext_value = st.text(st.characters(codec="ascii", min_codepoint=0x21, max_codepoint=0x7e,
                                  exclude_characters="=;"), min_size=1, max_size=30)
record = st.builds(TlsrptRecord, st.lists(uri, min_size=1, max_size=4).map(tuple),
                   st.lists(st.tuples(ext_name, ext_value), max_size=3).map(tuple))

MAILTO, HTTPS = "mailto:tlsrpt@reports.test", "https://tlsrpt.reports.test/v1/tlsrpt"


@given(record)
def test_format_then_parse_is_the_same_record(rec: TlsrptRecord) -> None:
    assert parse_record(format_record(rec)) == rec


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_a_reason(text: str) -> None:
    try:
        result = parse_record(text)
    except RecordError as exc:
        assert str(exc)
    else:
        assert result.rua


@given(st.text(st.characters(codec="ascii"), max_size=120))
def test_any_ascii_after_the_version_never_crashes(tail: str) -> None:
    with contextlib.suppress(RecordError):
        parse_record("v=TLSRPTv1;" + tail)


@given(record, st.lists(st.integers(0, 400), max_size=5))
def test_a_record_split_into_strings_is_their_concatenation(rec: TlsrptRecord,
                                                            cuts: list[int]) -> None:
    text = format_record(rec)
    bounds = sorted({min(c, len(text)) for c in cuts})
    strings = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    assert join_strings(strings) == text
    assert discover([strings]) == rec


@pytest.mark.parametrize("text", [
    f"v=TLSRPTv1; rua={MAILTO}",
    f"v=TLSRPTv1;rua={MAILTO};",
    f"v=TLSRPTv1 ; rua={MAILTO} , {HTTPS} ;",
    f"v=TLSRPTv1; rua={HTTPS}; ext.x-1=value",
    f"v=TLSRPTv1; rua={MAILTO}; rua={HTTPS}",  # 1*(field-delim tlsrpt-field): two rua fields
    "v=TLSRPTv1; rua=https://tlsrpt.reports.test:8443/v1/tlsrpt?x=%2C1",
])
def test_valid_records(text: str) -> None:
    assert parse_record(text).rua


@pytest.mark.parametrize(("text", "why"), [
    ("", "does not begin"),
    (f"V=TLSRPTv1; rua={MAILTO}", "does not begin"),  # %s"v=TLSRPTv1": case-sensitive
    (f"v=TLSRPTv2; rua={MAILTO}", "does not begin"),
    (f"v=TLSRPTv10; rua={MAILTO}", "expected ';'"),
    (f"rua={MAILTO}; v=TLSRPTv1", "does not begin"),
    ("v=TLSRPTv1", "no rua"),
    ("v=TLSRPTv1;", "no rua"),
    ("v=TLSRPTv1; ext=1", "no rua"),
    (f"v=TLSRPTv1; RUA={MAILTO}", "no rua"),  # %s"rua=": an extension named RUA
    (f"v=TLSRPTv1;; rua={MAILTO}", "empty field"),
    ("v=TLSRPTv1; rua=", "not a URI"),
    ("v=TLSRPTv1; rua=mailto:a!b@reports.test", "percent-encoded"),
    ("v=TLSRPTv1; rua=https://reports.test/a,b", "not a URI"),
    ("v=TLSRPTv1; rua=tlsrpt@reports.test", "not a URI"),
    ("v=TLSRPTv1; rua=https:/path-only", "needs a host"),
    ("v=TLSRPTv1; rua=mailto:nobody", "needs an address"),
    (f"v=TLSRPTv1; rua={MAILTO} {HTTPS}", "not a URI"),
    (f"v=TLSRPTv1; rua={MAILTO}; ext=a b", "without '='"),
    (f"v=TLSRPTv1; rua={MAILTO}; ext=", "without '='"),
    (f"v=TLSRPTv1; rua={MAILTO}; {'n' * 33}=1", "name=value"),
    (f"v=TLSRPTv1; rua={MAILTO}; -x=1", "name=value"),
    (f"v=TLSRPTv1; rua={MAILTO}; noequals", "name=value"),
])
def test_what_the_grammar_refuses(text: str, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        parse_record(text)


def test_other_schemes_are_grammatical_but_no_destination() -> None:
    rec = parse_record(f"v=TLSRPTv1; rua=ftp://reports.test/x,{MAILTO}")
    assert rec.rua == ("ftp://reports.test/x", MAILTO)
    assert rec.destinations == (MAILTO,)


def test_discovery_needs_exactly_one_record_that_begins_with_the_version() -> None:
    good = [f"v=TLSRPTv1; rua={MAILTO}"]
    assert discover([good]) == TlsrptRecord((MAILTO,))
    assert discover([good, ["v=spf1 -all"]]) == TlsrptRecord((MAILTO,))
    assert discover([good, [f"v=TLSRPTv1; rua={HTTPS}"]]) is None  # two: no TLS-RPT
    assert discover([]) is None
    assert discover([["v=TLSRPTv1; rua=broken"]]) is None
    assert discover([["v=TLSRPTv1; rua=mailto:tlsrpt@", "reports.test"]]) == TlsrptRecord(
        (MAILTO,))
    assert discover([[b"v=TLSRPTv1; ", b"rua=" + MAILTO.encode()]]) == TlsrptRecord((MAILTO,))
