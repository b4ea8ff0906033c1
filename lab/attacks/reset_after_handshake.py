"""reset-after-handshake: complete TLS, then cut the connection before the message is sent.

This models a network fault (a reset) once TLS is up, not a forged certificate: the proxy
terminates the sender's TLS with a VALID lab certificate for the MX name (what the genuine MX
would present), relays the decrypted session to the genuine MX over real TLS, and closes both
legs, answering nothing, when the sender sends ``at`` (MAIL by default, or EHLO) inside TLS.
What the scenario checks is what the sender does next: an enforce-mode sender must not retry
in plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from lab.attacks.base import FlowView, SmtpAttack
from lab.certkind import CertKind
from lab.smtp.types import Command, Reply, TlsPlan


@dataclass
class ResetAfterHandshake(SmtpAttack):
    name: ClassVar[str] = "reset-after-handshake"
    summary: ClassVar[str] = ("Complete TLS (valid certificate: a network fault, not a forgery), "
                              "then cut the connection when the sender sends MAIL or EHLO "
                              "inside TLS.")

    at: Literal["MAIL", "EHLO"] = "MAIL"
    """The command inside TLS at which both legs are closed, unanswered."""

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        return TlsPlan("intercept", cert=CertKind.VALID, cert_name=flow.mx_name)

    def on_command(self, flow: FlowView, command: Command) -> Command | Reply:
        if command.verb == self.at and flow.client_tls == "intercepted":
            flow.fire(self.name, f"TLS was up; cut both legs at the sender's {self.at} "
                                 "(not relayed, no reply)")
            flow.cut(f"reset at {self.at} inside TLS")
        return command
