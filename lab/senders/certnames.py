"""Which DNS names a certificate holds (subjectAltName only, RFC 6125) and whether one
names a host. Used where the reference sender checks names itself rather than through
``ssl`` (DANE-TA, and the mutants that send no SNI or match against policy patterns)."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509


def dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [n.lower().rstrip(".") for n in san.value.get_values_for_type(x509.DNSName)]


def name_matches(cert_name: str, host: str) -> bool:
    """A certificate name against a host; ``*.`` in the certificate stands for one label."""
    cert_name, host = cert_name.lower().rstrip("."), host.lower().rstrip(".")
    if cert_name.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == cert_name[2:]
    return cert_name == host


def cert_names_host(cert: x509.Certificate, host: str) -> bool:
    return any(name_matches(n, host) for n in dns_names(cert))


def cert_names_any(cert: x509.Certificate, hosts: Iterable[str]) -> bool:
    return any(cert_names_host(cert, h) for h in hosts)
