"""The run's DANE trust anchors, for the TLSA records a world publishes (``world.Tlsa``).

The lab CA and the rogue CA are the same in every process of a run (the backends share
them), unlike leaf certificates, so TLSA records name a CA: DANE-TA(2).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.pki import LabPKI


def anchors(pki: LabPKI) -> dict[str, str]:
    """``tlsa:<ca>:<selector>`` -> hex of the CA's certificate (0) or public key (1)."""
    out: dict[str, str] = {}
    for label, ca in (("lab-ca", pki.ca), ("rogue-ca", pki.rogue_ca)):
        cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
        out[f"tlsa:{label}:0"] = cert.public_bytes(serialization.Encoding.DER).hex()
        out[f"tlsa:{label}:1"] = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex()
    return out
