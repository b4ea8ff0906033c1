"""DANE for SMTP (RFC 7672, RFC 6698, RFC 7671), client side, pure: no sockets.

The reference sender looks up ``_25._tcp.<mx>`` TLSA records and uses them only when the
answer carries the AD bit (DNSSEC-validated). Usable records are DANE-TA(2) and DANE-EE(3)
with selector Cert(0) or SPKI(1) and matching type Full(0), SHA2-256(1) or SHA2-512(2).

- DANE-EE(3): the server's own certificate matches; names and dates are ignored (RFC 7672
  3.1.1).
- DANE-TA(2): a certificate of the presented chain matches, or, for ``2 1 0``, the full
  public key signed the chain's top (RFC 7671 5.2.2); the leaf must name the MX host (RFC
  7672 3.2.2) and be in date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from lab.senders.certnames import cert_names_host

DANE_TA, DANE_EE = 2, 3
SEL_CERT, SEL_SPKI = 0, 1
MATCH_FULL, MATCH_SHA256, MATCH_SHA512 = 0, 1, 2


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()[:16]}..."

    @property
    def usable(self) -> bool:
        return (self.usage in (DANE_TA, DANE_EE) and self.selector in (SEL_CERT, SEL_SPKI)
                and self.mtype in (MATCH_FULL, MATCH_SHA256, MATCH_SHA512))


def selected(cert: x509.Certificate, selector: int) -> bytes:
    """What a TLSA selector picks from a certificate: the DER or the SubjectPublicKeyInfo."""
    if selector == SEL_CERT:
        return cert.public_bytes(serialization.Encoding.DER)
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def association(content: bytes, mtype: int) -> bytes:
    """The certificate association data of a selected content under a matching type."""
    if mtype == MATCH_SHA256:
        return hashlib.sha256(content).digest()
    if mtype == MATCH_SHA512:
        return hashlib.sha512(content).digest()
    return content


def matches(record: Tlsa, cert: x509.Certificate) -> bool:
    return association(selected(cert, record.selector), record.mtype) == record.data


def _signed_by(cert: x509.Certificate, spki_der: bytes) -> bool:
    """Whether the key in ``spki_der`` made ``cert``'s signature."""
    try:
        key = serialization.load_der_public_key(spki_der)
        digest = cert.signature_hash_algorithm
        if digest is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _issued_in_order(chain: Sequence[x509.Certificate], top: int) -> bool:
    """Each of ``chain[0..top]`` is signed by the next one."""
    for child, parent in itertools.pairwise(chain[:top + 1]):
        try:
            child.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError):
            return False
    return True


def _in_date(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def verify(records: Sequence[Tlsa], chain_der: Sequence[bytes], host: str,
           now: dt.datetime | None = None) -> str | None:
    """None when the presented chain satisfies one usable record, else why not."""
    usable = [r for r in records if r.usable]
    if not usable:
        return "no usable TLSA record"
    if not chain_der:
        return "the server presented no certificate"
    chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    leaf = chain[0]
    when = now or dt.datetime.now(dt.UTC)
    for record in usable:
        if record.usage == DANE_EE and matches(record, leaf):
            return None
        if record.usage != DANE_TA:
            continue
        if not (cert_names_host(leaf, host) and _in_date(leaf, when)):
            continue
        for top, cert in enumerate(chain):
            if matches(record, cert) and _issued_in_order(chain, top):
                return None
        if (record.selector, record.mtype) == (SEL_SPKI, MATCH_FULL) \
                and _issued_in_order(chain, len(chain) - 1) \
                and _signed_by(chain[-1], record.data):
            return None
    return (f"no TLSA record of _25._tcp.{host} matches the certificate "
            f"({', '.join(str(r) for r in usable)})")
