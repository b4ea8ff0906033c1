"""strip-starttls: hide STARTTLS from the EHLO reply; refuse a STARTTLS sent anyway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import FlowView, SmtpAttack
from lab.smtp.types import Command, Reply

REFUSAL = Reply(502, ("5.5.1 Command not implemented",))


@dataclass
class StripStarttls(SmtpAttack):
    name: ClassVar[str] = "strip-starttls"
    summary: ClassVar[str] = ("Remove STARTTLS from the EHLO reply and refuse it with 502 "
                              "(a downgrade to plaintext).")

    def on_reply(self, flow: FlowView, command: Command, reply: Reply) -> Reply:
        if command.verb == "EHLO" and reply.has_keyword("STARTTLS"):
            flow.fire(self.name, "removed STARTTLS from EHLO reply")
            return reply.without_keyword("STARTTLS")
        return reply

    def on_command(self, flow: FlowView, command: Command) -> Command | Reply:
        if command.verb == "STARTTLS" and flow.client_tls == "none":
            flow.fire(self.name, "answered STARTTLS with 502 (not forwarded)")
            return REFUSAL
        return command
