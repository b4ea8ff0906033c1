"""The lab PKI: a trusted lab CA, a rogue CA, and leaf certificates of every kind on demand.

Keys are made per run and written (mode 0600) only to the run's own directory.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab.certkind import CertKind

__all__ = ["WRONG_NAME", "CertKind", "LabPKI", "Leaf"]


WRONG_NAME = "wrong-name.attacker.test"
"""The identity a wrong-name certificate carries: valid chain, another host."""


@dataclass(frozen=True)
class Leaf:
    cert_chain_pem: bytes
    key_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LabPKI:
    """Per-run PKI. ``ca_file`` is what a sender under test is told to trust."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.ca = trustme.CA(organization_name="mtasts-lab CA")
        self.rogue_ca = trustme.CA(organization_name="mtasts-lab rogue CA")
        self.ca_file = self.directory / "lab-ca.pem"
        self._write(self.ca_file, self.ca.cert_pem.bytes(), 0o644)
        self._leaves: dict[tuple[str, CertKind], Leaf] = {}
        self._contexts: dict[tuple[str, CertKind, str | None], ssl.SSLContext] = {}

    @staticmethod
    def _write(path: Path, data: bytes, mode: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    def leaf(self, name: str, kind: CertKind | str = CertKind.VALID) -> Leaf:
        """A leaf certificate for ``name`` of the given kind (cached per run)."""
        kind = CertKind(kind)
        key = (name.lower().rstrip("."), kind)
        if key not in self._leaves:
            self._leaves[key] = self._issue(key[0], kind)
        return self._leaves[key]

    def _issue(self, name: str, kind: CertKind) -> Leaf:
        now = _now()
        if kind is CertKind.SELF_SIGNED:
            return _self_signed(name)
        if kind is CertKind.CN_ONLY:
            return _cn_only(self.ca, name)
        ca = self.rogue_ca if kind is CertKind.ROGUE_CA else self.ca
        identity = WRONG_NAME if kind is CertKind.WRONG_NAME else name
        not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=30)
        if kind is CertKind.EXPIRED:
            not_before, not_after = now - dt.timedelta(days=60), now - dt.timedelta(days=1)
        elif kind is CertKind.NOT_YET_VALID:
            not_before, not_after = now + dt.timedelta(days=1), now + dt.timedelta(days=60)
        leaf = ca.issue_cert(identity, not_before=not_before, not_after=not_after)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return Leaf(chain, leaf.private_key_pem.bytes())

    def write_leaf(self, name: str, kind: CertKind | str = CertKind.VALID) -> tuple[Path, Path]:
        """Write a leaf's chain and key (0600) to the run directory, for external servers."""
        kind = CertKind(kind)
        leaf = self.leaf(name, kind)
        stem = f"{name.rstrip('.')}.{kind.value}"
        cert, key = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        self._write(cert, leaf.cert_chain_pem, 0o644)
        self._write(key, leaf.key_pem, 0o600)
        return cert, key

    def server_context(self, name: str, kind: CertKind | str = CertKind.VALID, *,
                       tls_max: str | None = None) -> ssl.SSLContext:
        """A server-side context presenting ``name``'s certificate of ``kind``.

        ``tls_max`` ("1.0", "1.1", "1.2", "1.3") caps the protocol (for legacy-only MXes).
        """
        kind = CertKind(kind)
        key = (name.lower().rstrip("."), kind, tls_max)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if tls_max is not None:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                with warnings.catch_warnings():  # legacy protocols are the point here
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = ssl.TLSVersion.TLSv1
                    ctx.maximum_version = _TLS_VERSIONS[tls_max]
            cert, keyfile = self.write_leaf(name, kind)
            ctx.load_cert_chain(cert, keyfile)
            self._contexts[key] = ctx
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the lab CA only, with full checks."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.hostname_checks_common_name = False  # a DNS-ID only (RFC 6125 6.4.4)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    # -- sharing the CAs with lab services that run elsewhere (the compose backend) ---------

    EXPORT_FILES = ("lab-ca.pem", "lab-ca.key", "rogue-ca.pem", "rogue-ca.key")

    def export(self, directory: Path | None = None) -> Path:
        """Write both CAs (certificates 0644, keys 0600) to ``directory`` (default: this
        PKI's own) so that services in other containers can ``load`` them."""
        target = Path(directory) if directory is not None else self.directory
        target.mkdir(parents=True, exist_ok=True)
        for ca, stem in ((self.ca, "lab-ca"), (self.rogue_ca, "rogue-ca")):
            self._write(target / f"{stem}.pem", ca.cert_pem.bytes(), 0o644)
            self._write(target / f"{stem}.key", ca.private_key_pem.bytes(), 0o600)
        return target

    @classmethod
    def load(cls, directory: Path, leaf_dir: Path | None = None) -> LabPKI:
        """The PKI that ``export`` wrote to ``directory``; leaves are written to ``leaf_dir``
        (default ``directory``), so several readers of one directory never share leaf files."""
        pki = cls.__new__(cls)
        pki.directory = Path(leaf_dir if leaf_dir is not None else directory)
        pki.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(pki.directory, 0o700)
        pki.reload(directory)
        return pki

    def reload(self, directory: Path) -> None:
        """Adopt the CAs that ``export`` wrote to ``directory``; forget every leaf."""
        source = Path(directory)
        self.ca = trustme.CA.from_pem((source / "lab-ca.pem").read_bytes(),
                                      (source / "lab-ca.key").read_bytes())
        self.rogue_ca = trustme.CA.from_pem((source / "rogue-ca.pem").read_bytes(),
                                            (source / "rogue-ca.key").read_bytes())
        self.ca_file = self.directory / "lab-ca.pem"
        if self.ca_file.resolve() != (source / "lab-ca.pem").resolve():
            self._write(self.ca_file, self.ca.cert_pem.bytes(), 0o644)
        self._leaves = {}
        self._contexts = {}


_TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def _cn_only(ca: trustme.CA, name: str) -> Leaf:
    """A leaf from ``ca`` that names ``name`` only in its subject CN: no subjectAltName.
    RFC 6125 6.4.4 / RFC 8461 3.3 and 4.2: a name check uses the SAN's DNS-ID, never the CN."""
    issuer_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    issuer_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return Leaf(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


def _self_signed(name: str) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Leaf(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )
