"""reject-starttls: leave STARTTLS advertised, but answer the sender's STARTTLS itself.

The genuine MX never sees the STARTTLS: the proxy answers it with ``code`` (454 by default,
RFC 3207's "TLS not available due to temporary reason"), and the session goes on in
plaintext if the sender lets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import FlowView, SmtpAttack
from lab.smtp.types import Command, Reply

DEFAULT_TEXTS: dict[int, str] = {
    454: "4.7.0 TLS not available due to temporary reason",
    502: "5.5.1 Command not implemented",
    530: "5.7.0 Must issue a STARTTLS command first",
}


def check_reply_option(attack: str, code: int, text: str) -> None:
    """A refusal must be a 4xx or 5xx reply on one line (else the YAML is wrong)."""
    if not 400 <= code <= 599:
        raise ValueError(f"{attack}: code must be a 4xx or 5xx reply code, not {code}")
    if "\r" in text or "\n" in text:
        raise ValueError(f"{attack}: text must be one line")


@dataclass
class RejectStarttls(SmtpAttack):
    name: ClassVar[str] = "reject-starttls"
    summary: ClassVar[str] = ("Leave STARTTLS advertised but answer the sender's STARTTLS with "
                              "an error (454 by default) instead of forwarding it.")

    code: int = 454
    """The reply code the proxy answers STARTTLS with (4xx or 5xx)."""
    text: str = ""
    """The reply text; default a usual text for the code."""

    def __post_init__(self) -> None:
        check_reply_option(self.name, self.code, self.text)

    @property
    def reply(self) -> Reply:
        text = self.text or DEFAULT_TEXTS.get(self.code, "TLS refused")
        return Reply(self.code, (text,))

    def on_command(self, flow: FlowView, command: Command) -> Command | Reply:
        if command.verb == "STARTTLS" and flow.client_tls == "none":
            reply = self.reply
            flow.fire(self.name, f"answered STARTTLS with {reply.code} {reply.lines[0]} "
                                 "(not forwarded)")
            return reply
        return command
