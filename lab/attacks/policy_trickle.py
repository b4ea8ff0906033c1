"""policy-trickle: the policy host sends the policy body a few bytes at a time.

RFC 8461 3.3: senders MAY bound the fetch in time (one minute suggested) and policy hosts
SHOULD answer within it. A body that trickles for longer than the sender's bound is a failed
fetch (no policy); a sender without a bound blocks its mail queue for as long as the
attacker likes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.response import PolicyResponse


@dataclass
class PolicyTrickle(PolicyAttack):
    name: ClassVar[str] = "policy-trickle"
    summary: ClassVar[str] = "Send the policy body slowly, a few bytes at a time."
    enforce_breaking: ClassVar[bool] = False

    bytes_per_s: float = 8.0
    """The rate the body is sent at (the whole policy then takes about ten seconds)."""

    def __post_init__(self) -> None:
        if not 0 < self.bytes_per_s <= 1_000_000:
            raise ValueError(f"bytes_per_s: a positive rate, not {self.bytes_per_s}")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        return dataclasses.replace(response, trickle_bytes_per_s=self.bytes_per_s,
                                   applied=(*response.applied, self.name))
