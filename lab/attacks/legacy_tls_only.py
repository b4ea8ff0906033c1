"""legacy-tls-only: the MX side offers TLS 1.0 (or up to 1.1) and nothing newer.

The proxy terminates the sender's TLS with a VALID lab certificate for the MX name and a
protocol ceiling of ``version``, so the only thing wrong is the TLS version (RFC 8461 7.2;
RFC 8996 forbids TLS 1.0 and 1.1). It relays the decrypted session to the genuine MX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from lab.attacks.base import FlowView, SmtpAttack
from lab.certkind import CertKind
from lab.smtp.types import TlsPlan


@dataclass
class LegacyTlsOnly(SmtpAttack):
    name: ClassVar[str] = "legacy-tls-only"
    summary: ClassVar[str] = ("Answer STARTTLS with a valid certificate but TLS 1.0 or 1.1 at "
                              "most (a downgrade to a deprecated protocol).")

    version: Literal["1.0", "1.1"] = "1.0"
    """The highest TLS version offered to the sender."""

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        flow.fire(self.name, f"offered TLS {self.version} at most, with a valid certificate "
                             f"for {flow.mx_name}")
        return TlsPlan("intercept", cert=CertKind.VALID, cert_name=flow.mx_name,
                       tls_max=self.version)
