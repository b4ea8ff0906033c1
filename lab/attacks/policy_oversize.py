"""policy-oversize: the policy body is padded past 64 KiB, still a valid policy if read whole.

The genuine policy comes first, then ``x-padding:`` lines (unknown fields, which a parser
ignores) up to ``size`` bytes. RFC 8461 3.3: senders MAY limit the size of the body; the
suggested limit is 64 KiB. A sender with that bound fails the fetch (no policy); one
without reads a valid enforce policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.response import PolicyResponse

SUGGESTED_LIMIT = 65536
LINE = 100
"""Length of one padding line, line end included."""


def pad(body: bytes, size: int) -> bytes:
    """``body`` followed by ``x-padding`` fields, ``size`` bytes in all, line ends as in
    ``body``."""
    eol = b"\r\n" if body.endswith(b"\r\n") else b"\n"
    if body and not body.endswith(b"\n"):
        body += eol
    out = bytearray(body)
    prefix = b"x-padding: "
    while len(out) < size:
        room = size - len(out)
        fill = min(LINE, room) - len(prefix) - len(eol)
        if fill < 1:
            out += b"\n" * room  # the last few bytes as empty lines, which are skipped
            break
        out += prefix + b"a" * fill + eol
    return bytes(out)


@dataclass
class PolicyOversize(PolicyAttack):
    name: ClassVar[str] = "policy-oversize"
    summary: ClassVar[str] = ("Pad the policy body with unknown fields to more than 64 KiB "
                              "(still a valid policy if read whole).")
    enforce_breaking: ClassVar[bool] = False

    size: int = 100_000
    """The body size in bytes (more than the suggested 64 KiB limit)."""

    def __post_init__(self) -> None:
        if not SUGGESTED_LIMIT < self.size <= 16 * 1024 * 1024:
            raise ValueError(f"size: more than {SUGGESTED_LIMIT} bytes and at most 16 MiB, "
                             f"not {self.size}")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        if len(response.body) >= self.size:
            raise ValueError(f"policy-oversize: the policy is already {len(response.body)} "
                             "bytes")
        return dataclasses.replace(response, body=pad(response.body, self.size),
                                   applied=(*response.applied, self.name))
