"""swap-certificate: intercept STARTTLS and present a forged certificate to the sender."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import FlowView, SmtpAttack
from lab.certkind import CertKind
from lab.smtp.types import TlsPlan


@dataclass
class SwapCertificate(SmtpAttack):
    name: ClassVar[str] = "swap-certificate"
    summary: ClassVar[str] = ("Terminate STARTTLS with a certificate of the attacker's choosing "
                              "and relay the decrypted session to the genuine MX.")

    certificate: CertKind = CertKind.SELF_SIGNED
    """The kind of certificate presented (lab.pki.CertKind)."""
    identity: str | None = None
    """The host name the certificate is made for; default the MX name."""

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        identity = self.identity or flow.mx_name
        kind = CertKind(self.certificate)
        flow.fire(self.name, f"presented {kind.value} certificate for {identity}")
        return TlsPlan("intercept", cert=kind, cert_name=identity)
