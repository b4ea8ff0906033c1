"""policy-status: the policy host answers a status other than 200 with a valid policy body.

RFC 8461 3.3 counts only a successful fetch; a 404 or a 500 is a failed fetch, whatever its
body says. A compliant sender has no policy; one that reads the body regardless gets the
enforce policy (and refuses when STARTTLS is stripped).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.http import REASONS
from lab.policy_host.response import PolicyResponse


@dataclass
class PolicyStatus(PolicyAttack):
    name: ClassVar[str] = "policy-status"
    summary: ClassVar[str] = ("Answer the policy URL with another status (404, 500 ...) but "
                              "the valid policy as the body.")
    enforce_breaking: ClassVar[bool] = False

    status: int = 404
    """The status sent instead of 200 (any of 201-599 but the redirects and 304)."""

    def __post_init__(self) -> None:
        if not 201 <= self.status <= 599 or self.status in (301, 302, 303, 304, 307, 308):
            raise ValueError(f"status: a non-200 status that is not a redirect or 304 "
                             f"(see policy-redirect, policy-http-cache), not {self.status}")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        return dataclasses.replace(response, status=self.status,
                                   reason=REASONS.get(self.status, "Status"),
                                   applied=(*response.applied, self.name))
