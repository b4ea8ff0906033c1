"""What the relay core tracks of one mail transaction: envelope addresses and Message-ID."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PATH = re.compile(r"^\s*(?:FROM|TO)\s*:\s*(<[^>]*>|\S*)", re.I)
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*(.*)$", re.I)


def envelope_address(arg: str) -> str:
    """``FROM:<a@b.test> SIZE=10`` -> ``a@b.test`` (empty for the null path)."""
    match = _PATH.match(arg)
    if match is None:
        return ""
    return match.group(1).strip("<>")


def message_id(content: bytes) -> str | None:
    """The Message-ID header of a message (unfolded, stripped), or None."""
    header_block = re.split(rb"\r?\n\r?\n", content, maxsplit=1)[0]
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", header_block)
    for line in re.split(rb"\r?\n", unfolded):
        match = _MESSAGE_ID.match(line)
        if match is not None:
            return match.group(1).strip().decode("utf-8", "replace")
    return None


@dataclass
class Transaction:
    """MAIL FROM and the accepted RCPT TO addresses of the transaction under way."""

    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.mail_from = None
        self.rcpt_to = []
