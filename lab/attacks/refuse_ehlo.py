"""refuse-ehlo: answer the sender's EHLO with an error, so it falls back to HELO.

HELO has no extensions, so the sender never learns that the MX offers STARTTLS. The proxy
answers EHLO itself (500 by default); the HELO that follows is relayed untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import FlowView, SmtpAttack
from lab.attacks.reject_starttls import check_reply_option
from lab.smtp.types import Command, Reply


@dataclass
class RefuseEhlo(SmtpAttack):
    name: ClassVar[str] = "refuse-ehlo"
    summary: ClassVar[str] = ("Answer EHLO with an error (500 by default) so that the sender "
                              "falls back to HELO, which carries no STARTTLS.")

    code: int = 500
    """The reply code the proxy answers EHLO with (4xx or 5xx)."""
    text: str = "5.5.1 Command unrecognized"

    def __post_init__(self) -> None:
        check_reply_option(self.name, self.code, self.text)

    def on_command(self, flow: FlowView, command: Command) -> Command | Reply:
        if command.verb == "EHLO" and flow.client_tls == "none":
            flow.fire(self.name, f"answered EHLO with {self.code} (not forwarded)")
            return Reply(self.code, (self.text,))
        return command
