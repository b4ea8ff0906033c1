"""RFC 8461 client logic: TXT discovery, policy parsing, MX matching, the cache."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.senders.mtasts import (
    MAX_MAX_AGE,
    PolicyCache,
    PolicyError,
    StsPolicy,
    discover,
    is_sts_record,
    mx_matches,
    parse_policy,
    parse_sts_record,
)

ALNUM = string.ascii_letters + string.digits
ids = st.text(ALNUM, min_size=1, max_size=32)
wsp = st.text(" \t", max_size=3)


# --- TXT record (D1) -----------------------------------------------------------------------

@pytest.mark.parametrize(("txt", "expected"), [
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
    ("v=STSv1;id=abc", "abc"),
    ("v=STSv1 ; id=abc ;", "abc"),
    ("v=STSv1; id=abc; ext=value", "abc"),
    ("v=STSv1; ext=x; id=abc", "abc"),
    ("v=STSv1; id=" + "a" * 32, "a" * 32),
    ("v=STSv1; id=" + "a" * 33, None),
    ("v=STSv1; id=abc-def", None),
    ("v=STSv1; id=", None),
    ("v=STSv10; id=abc", None),
    ("v=STSv1", None),
    ("v=STSv1;", None),
    ("v=STSv1; ext=x", None),
    ("id=abc; v=STSv1", None),
    (" v=STSv1; id=abc", None),
    ("V=STSv1; id=abc", None),
    ("v=stsv1; id=abc", None),
    ("v=STSv1; ID=abc", None),
    ("v=STSv1; id=abc;;", None),
    ("v=STSv1; id=abc; junk", None),
    ("v=STSv1; id=abc def", None),
    ("v=STSv1; id=abc ", None),
])
def test_parse_sts_record(txt: str, expected: str | None) -> None:
    assert parse_sts_record(txt) == expected


@given(ids, wsp, wsp, st.booleans())
def test_any_valid_record_yields_its_id(policy_id: str, before: str, after: str,
                                        trailing: bool) -> None:
    txt = f"v=STSv1{before};{after}id={policy_id}" + (";" if trailing else "")
    assert parse_sts_record(txt) == policy_id
    assert discover([txt]) == policy_id


@given(st.text(max_size=60))
def test_parse_sts_record_never_crashes_and_ids_are_valid(txt: str) -> None:
    found = parse_sts_record(txt)
    if found is not None:
        assert txt.startswith("v=STSv1")
        assert 1 <= len(found) <= 32 and all(c in ALNUM for c in found)
        assert f"id={found}" in txt


@given(ids, st.text(ALNUM + "_-.", max_size=10), st.sampled_from("_-."),
       st.text(ALNUM + "_-.", max_size=10))
def test_id_with_a_forbidden_character_is_invalid(policy_id: str, before: str, forbidden: str,
                                                  after: str) -> None:
    # built to hold at least one forbidden character, so nothing is filtered out
    assert parse_sts_record(f"v=STSv1; id={policy_id}{before}{forbidden}{after}") is None


def test_discover_ignores_other_txt_and_refuses_several() -> None:
    spf = "v=spf1 -all"
    assert discover([spf, "v=STSv1; id=one;"]) == "one"
    assert discover([spf]) is None
    assert discover([]) is None
    assert discover(["v=STSv1; id=one;", "v=STSv1; id=two;"]) is None
    assert discover(["v=STSv1; id=one;", "v=STSv1; id=one;"]) is None
    assert discover(["v=STSv10; id=x;", "v=STSv1; id=one;"]) == "one"
    assert discover(["v=STSv1; id=bad-id;"]) is None
    assert not is_sts_record("v=STSv10; id=x")
    assert is_sts_record("v=STSv1 ; id=x")


@given(st.lists(st.text(max_size=30), max_size=5))
def test_discover_is_none_unless_exactly_one_sts_record(records: list[str]) -> None:
    found = discover(records)
    sts = [r for r in records if is_sts_record(r)]
    if len(sts) != 1:
        assert found is None
    else:
        assert found == parse_sts_record(sts[0])


# --- policy file (P1) ----------------------------------------------------------------------

GOOD = "version: STSv1\nmode: enforce\nmx: mx1.victim.test\nmx: *.victim.test\nmax_age: 86400\n"


def test_parse_policy_good() -> None:
    policy = parse_policy(GOOD)
    assert policy == StsPolicy("enforce", 86400, ("mx1.victim.test", "*.victim.test"))


def test_parse_policy_crlf_and_blanks() -> None:
    text = GOOD.replace("\n", "\r\n").replace(": ", ":\t ")
    assert parse_policy(text) == parse_policy(GOOD)
    assert parse_policy(GOOD.rstrip("\n")) == parse_policy(GOOD)


def test_first_of_repeated_field_counts_and_mx_collects() -> None:
    text = GOOD + "mode: none\nmax_age: 5\nversion: STSv2\nmode: bogus\n"
    assert parse_policy(text) == parse_policy(GOOD)


def test_unknown_fields_ignored() -> None:
    assert parse_policy("x-extra: anything at all\n" + GOOD + "future_key: 1\n") \
        == parse_policy(GOOD)


@pytest.mark.parametrize("text", [
    GOOD.replace("STSv1", "STSv2"),
    GOOD.replace("version: STSv1\n", ""),
    GOOD.replace("mode: enforce", "mode: Enforce"),
    GOOD.replace("mode: enforce", "mode: strict"),
    GOOD.replace("mode: enforce\n", ""),
    GOOD.replace("86400", "31557601"),
    GOOD.replace("86400", "-1"),
    GOOD.replace("86400", "1d"),
    GOOD.replace("86400", "12345678901"),
    GOOD.replace("max_age: 86400\n", ""),
    "version: STSv1\nmode: enforce\nmax_age: 86400\n",
    "version: STSv1\nmode: testing\nmax_age: 86400\n",
    GOOD + "this line has no colon\n",
    GOOD.replace("mx1.victim.test", "mx1..victim.test"),
    GOOD.replace("mx1.victim.test", "*.*.victim.test"),
    GOOD.replace("mx1.victim.test", "mx1.victim.test extra"),
    GOOD.replace("Version", "version").replace("version", "Version"),
    "",
])
def test_parse_policy_rejects(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_mode_none_needs_no_mx_and_max_age_bounds() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 0\n") == StsPolicy("none", 0, ())
    assert parse_policy(GOOD.replace("86400", str(MAX_MAX_AGE))).max_age == MAX_MAX_AGE


labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
patterns = st.builds(lambda wild, ls: ("*." if wild else "") + ".".join(ls),
                     st.booleans(), st.lists(labels, min_size=1, max_size=3))


@given(st.sampled_from(["enforce", "testing", "none"]),
       st.integers(0, MAX_MAX_AGE), st.lists(patterns, min_size=1, max_size=4),
       st.sampled_from(["\n", "\r\n"]), st.permutations(range(3)))
def test_parse_policy_round_trip(mode: str, max_age: int, mx: list[str], eol: str,
                                 order: list[int]) -> None:
    fields = ["version: STSv1", f"mode: {mode}", f"max_age: {max_age}"]
    lines = [fields[i] for i in order] + [f"mx: {p}" for p in mx]
    policy = parse_policy(eol.join(lines) + eol)
    assert (policy.mode, policy.max_age, policy.mx) == (mode, max_age, tuple(mx))


@given(st.text(max_size=200))
def test_parse_policy_never_crashes_unexpectedly(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError:
        return
    assert policy.mode in ("enforce", "testing", "none")
    assert 0 <= policy.max_age <= MAX_MAX_AGE
    assert policy.mx or policy.mode == "none"


# --- MX matching (M1) ----------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "host", "expected"), [
    ("mx1.victim.test", "mx1.victim.test", True),
    ("mx1.victim.test", "MX1.Victim.TEST.", True),
    ("mx1.victim.test.", "mx1.victim.test", True),
    ("mx1.victim.test", "mx2.victim.test", False),
    ("*.victim.test", "mx1.victim.test", True),
    ("*.victim.test", "MX1.VICTIM.TEST.", True),
    ("*.victim.test", "a.b.victim.test", False),
    ("*.victim.test", "victim.test", False),
    ("*.victim.test", ".victim.test", False),
    ("*.victim.test", "mx1.evilvictim.test", False),
    ("victim.test", "mx1.victim.test", False),
    ("*.victim.test", "*.victim.test", False),
    ("", "mx1.victim.test", False),
])
def test_mx_matches(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


@given(st.lists(labels, min_size=1, max_size=3), labels, st.booleans())
def test_wildcard_matches_exactly_one_label(base: list[str], left: str, upper: bool) -> None:
    parent = ".".join(base)
    host = f"{left}.{parent}"
    host = host.upper() if upper else host
    assert mx_matches(f"*.{parent}", host)
    assert mx_matches(host, host.lower() + ".")
    assert not mx_matches(f"*.{parent}", parent)
    assert not mx_matches(f"*.{parent}", f"x.{host}")


# --- cache (C1-C3, S1) ---------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_expires_after_max_age_and_is_per_domain() -> None:
    clock = FakeClock()
    cache = PolicyCache(clock)
    policy = StsPolicy("enforce", 60, ("mx1.victim.test",))
    cache.put("Victim.Test.", policy, "id1")
    entry = cache.get("victim.test")
    assert entry is not None and entry.id == "id1" and entry.expires_at == 1060.0
    assert cache.get("sub.victim.test") is None  # S1: no parent fallback
    clock.now = 1059.9
    assert cache.get("victim.test") is not None
    clock.now = 1060.0
    assert cache.get("victim.test") is None
    assert len(cache) == 0


def test_cache_replace_and_clear() -> None:
    clock = FakeClock()
    cache = PolicyCache(clock)
    cache.put("victim.test", StsPolicy("enforce", 60, ("a.test",)), "one")
    cache.put("victim.test", StsPolicy("none", 600, ()), "two")
    entry = cache.get("victim.test")
    assert entry is not None and entry.id == "two" and entry.policy.mode == "none"
    cache.clear()
    assert cache.get("victim.test") is None
