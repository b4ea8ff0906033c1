"""DANE checks of the reference sender (lab.senders.dane) and the profile switches of the
pure MTA-STS functions, on real certificates from trustme."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from lab.senders import dane
from lab.senders.dane import Tlsa
from lab.senders.mtasts import PolicyError, discover, mx_matches, parse_policy
from lab.senders.profiles import Profile

HOST = "mx1.victim.test"


def _chain(ca: trustme.CA, name: str = HOST) -> list[bytes]:
    leaf = ca.issue_cert(name)
    return [x509.load_pem_x509_certificate(p.bytes()).public_bytes(serialization.Encoding.DER)
            for p in leaf.cert_chain_pems]


def _spki(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ca_spki(ca: trustme.CA) -> bytes:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_dane_ee_spki_sha256_matches_the_leaf_whatever_its_name() -> None:
    chain = _chain(trustme.CA(), "another-name.test")
    record = Tlsa(3, 1, 1, hashlib.sha256(_spki(chain[0])).digest())
    assert dane.verify([record], chain, HOST) is None  # DANE-EE ignores names


def test_dane_ee_full_certificate_sha512_and_exact() -> None:
    chain = _chain(trustme.CA())
    assert dane.verify([Tlsa(3, 0, 2, hashlib.sha512(chain[0]).digest())], chain, HOST) is None
    assert dane.verify([Tlsa(3, 0, 0, chain[0])], chain, HOST) is None


def test_a_record_for_another_key_fails() -> None:
    chain = _chain(trustme.CA())
    other = _chain(trustme.CA())
    problem = dane.verify([Tlsa(3, 1, 1, hashlib.sha256(_spki(other[0])).digest())],
                          chain, HOST)
    assert problem is not None and "matches" in problem


def test_dane_ta_full_key_of_a_ca_outside_the_chain() -> None:
    ca = trustme.CA()
    chain = _chain(ca)
    assert dane.verify([Tlsa(2, 1, 0, _ca_spki(ca))], chain, HOST) is None
    assert dane.verify([Tlsa(2, 1, 0, _ca_spki(trustme.CA()))], chain, HOST) is not None


def test_dane_ta_checks_the_name() -> None:
    ca = trustme.CA()
    chain = _chain(ca, "wrong-name.attacker.test")
    assert dane.verify([Tlsa(2, 1, 0, _ca_spki(ca))], chain, HOST) is not None


def test_dane_ta_with_an_intermediate_in_the_chain() -> None:
    root = trustme.CA()
    inter = root.create_child_ca()
    leaf = inter.issue_cert(HOST)
    chain = [x509.load_pem_x509_certificate(p.bytes()).public_bytes(serialization.Encoding.DER)
             for p in leaf.cert_chain_pems]
    assert len(chain) == 2
    assert dane.verify([Tlsa(2, 0, 1, hashlib.sha256(chain[1]).digest())], chain, HOST) is None


def test_unusable_records_are_not_used() -> None:
    chain = _chain(trustme.CA())
    assert dane.verify([Tlsa(1, 1, 1, hashlib.sha256(_spki(chain[0])).digest())],
                       chain, HOST) == "no usable TLSA record"


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=80))
def test_usable_is_exactly_dane_ta_ee_with_known_selector_and_matching(
        usage: int, selector: int, mtype: int, data: bytes) -> None:
    record = Tlsa(usage, selector, mtype, data)
    assert record.usable == (usage in (2, 3) and selector in (0, 1) and mtype in (0, 1, 2))


@pytest.mark.parametrize(("switch", "check"), [
    ("wildcard_any_depth", lambda p: mx_matches("*.victim.test", "a.b.victim.test", p)),
    ("mode_case_insensitive",
     lambda p: parse_policy("version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 9\n",
                            p).mode == "enforce"),
    ("last_field_wins",
     lambda p: parse_policy("version: STSv1\nmode: enforce\nmode: none\nmax_age: 9\n",
                            p).mode == "none"),
    ("clamp_max_age",
     lambda p: parse_policy("version: STSv1\nmode: none\nmax_age: 99999999\n",
                            p).max_age == 31557600),
    ("first_of_several_txt", lambda p: discover(["v=STSv1; id=a;", "v=STSv1; id=b;"], p) == "a"),
])
def test_each_switch_changes_its_rule_and_only_with_the_switch(switch: str, check: object) -> None:
    assert callable(check)
    assert check(Profile(**{switch: True}))
    with contextlib.suppress(PolicyError):  # the compliant parser may reject the text
        assert not check(Profile())
