"""The TLS side of the lab's SMTP client: the client context for a session's TLS requirement,
the certificate checks made after the handshake (DANE, and the names some mutants check
themselves), and the TLS-RPT result type of a failed verification.
"""

from __future__ import annotations

import _ssl
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lab.senders import dane
from lab.senders.certnames import cert_names_any, cert_names_host, dns_names
from lab.senders.mtasts import mx_matches
from lab.senders.profiles import COMPLIANT, Profile
from lab.senders.smtp_outcome import TlsPolicyError, TlsRequirement

# OpenSSL X509_V_ERR_* codes -> TLS-RPT result types (RFC 8460 4.3)
_NOT_TRUSTED = {2, 18, 19, 20, 21, 24, 27, 28}
_EXPIRED = {10}
_HOST_MISMATCH = {62}


@dataclass(frozen=True)
class TlsChecks:
    """How a ``verify`` session checks the MX beyond ``ssl``'s defaults.

    ``tlsa``: DNSSEC-validated TLSA records; when set, DANE decides the certificate (RFC
    7672) and the WebPKI checks are not made. ``patterns``: the policy's mx patterns (only
    the cert-against-patterns mutant uses them). ``profile``: the sender's switches.
    """

    profile: Profile = COMPLIANT
    tlsa: tuple[dane.Tlsa, ...] = ()
    patterns: tuple[str, ...] = ()


PLAIN_CHECKS = TlsChecks()


def verify_failure_type(exc: ssl.SSLCertVerificationError) -> str:
    """The TLS-RPT result type (RFC 8460 4.3) of a failed certificate verification."""
    code = exc.verify_code
    if code in _HOST_MISMATCH:
        return "certificate-host-mismatch"
    if code in _EXPIRED:
        return "certificate-expired"
    if code in _NOT_TRUSTED:
        return "certificate-not-trusted"
    return "validation-failure"  # e.g. not yet valid (9): no closer TLS-RPT type


def client_context(tls: TlsRequirement, ca_file: Path | str | None,
                   checks: TlsChecks = PLAIN_CHECKS) -> ssl.SSLContext:
    """``verify``: lab CA only, host name checked, TLS 1.2+. ``opportunistic``: no checks.

    Under ``verify`` with TLSA records, DANE checks the certificate after the handshake;
    the mutants that check names themselves turn ``ssl``'s own name check off."""
    profile = checks.profile
    if tls == "verify":
        if ca_file is None:
            raise ValueError("verify needs a CA file")
        ctx = ssl.create_default_context(cafile=str(ca_file))
        ctx.hostname_checks_common_name = profile.cn_fallback  # a DNS-ID (RFC 6125 6.4.4)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if profile.allow_tls10:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        if checks.tlsa or profile.no_sni or profile.cert_against_patterns \
                or profile.mx_any_cert:
            ctx.check_hostname = False
        if checks.tlsa or profile.mx_any_cert:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _chain(ssl_object: ssl.SSLObject | None) -> list[bytes]:
    """The certificates the server presented, leaf first (DER)."""
    if ssl_object is None:
        return []
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    raw = public() if public else ssl_object._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER)
            for c in raw or []]


def check_certificate(ssl_object: ssl.SSLObject | None, host: str, checks: TlsChecks,
                      log: Callable[[str], None]) -> None:
    """The checks made after the handshake: DANE, and the names the mutants check."""
    profile = checks.profile
    if not (checks.tlsa or profile.no_sni or profile.cert_against_patterns):
        return
    chain = _chain(ssl_object)
    if checks.tlsa:
        problem = dane.verify(checks.tlsa, chain, host)
        if problem is not None:
            raise TlsPolicyError(f"DANE: {problem}", stage="handshake",
                                 result_type="tlsa-invalid")
        log(f"DANE: the certificate matches a TLSA record of _25._tcp.{host}")
        return
    if not chain:
        return
    leaf = x509.load_der_x509_certificate(chain[0])
    if profile.cert_against_patterns:
        ok = any(mx_matches(p, n) or n == p.lower().rstrip(".")
                 for p in checks.patterns for n in dns_names(leaf)) or \
            cert_names_any(leaf, checks.patterns)
    else:
        ok = cert_names_host(leaf, host)
    if not ok:
        raise TlsPolicyError(f"certificate does not name {host}", stage="handshake",
                             result_type="certificate-host-mismatch")
