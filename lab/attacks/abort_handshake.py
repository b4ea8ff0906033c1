"""abort-handshake: let the genuine MX accept STARTTLS, then cut the TLS handshake.

``after: "client-hello"`` (default) waits for the sender's ClientHello and then closes both
legs, mid-handshake; ``after: "220"`` closes right after relaying the 220. Either way the
sender saw STARTTLS offered and accepted, and then no TLS session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from lab.attacks.base import FlowView, SmtpAttack
from lab.smtp.types import TlsPlan


@dataclass
class AbortHandshake(SmtpAttack):
    name: ClassVar[str] = "abort-handshake"
    summary: ClassVar[str] = ("Relay the MX's 220 to STARTTLS, then cut the connection during "
                              "the TLS handshake.")

    after: Literal["220", "client-hello"] = "client-hello"
    """Where to cut: right after the 220, or once the sender's ClientHello arrived."""

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        if self.after == "220":
            # the relay closes at once after the 220: this is the whole attack
            flow.fire(self.name, "cut the connection right after the 220 to STARTTLS")
        # for "client-hello" the relay credits this attack when the ClientHello is cut
        return TlsPlan("abort", abort_after=self.after)
