"""policy-redirect: the policy host answers with a redirect to a valid policy.

The genuine policy is moved to another path on the same host (``path``), where it is served
with 200 ``text/plain``; the well-known URL answers ``status`` (301, 302, 303, 307 or 308)
with ``Location: https://mta-sts.<domain>[:port]<path>``. RFC 8461 3.3: "HTTP 3xx
redirects MUST NOT be followed", so a compliant sender has no policy; a sender that follows
the redirect really gets the enforce policy (and refuses when STARTTLS is stripped).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.http import REASONS
from lab.policy_host.response import PolicyResponse

REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class PolicyRedirect(PolicyAttack):
    name: ClassVar[str] = "policy-redirect"
    summary: ClassVar[str] = ("Answer the policy URL with a 3xx redirect to the same, valid "
                              "policy at another path of the policy host.")
    enforce_breaking: ClassVar[bool] = False

    status: int = 301
    """The redirect status: 301, 302, 303, 307 or 308."""
    path: str = "/moved/mta-sts.txt"
    """Where on the same host the valid policy is served instead."""

    def __post_init__(self) -> None:
        if self.status not in REDIRECTS:
            raise ValueError(f"status: one of {', '.join(map(str, REDIRECTS))}, "
                             f"not {self.status}")
        if not self.path.startswith("/") or self.path == "/.well-known/mta-sts.txt" \
                or any(c.isspace() for c in self.path):
            raise ValueError(f"path: an absolute path other than the policy URL, not "
                             f"{self.path!r}")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        note = f"moved to {self.path}\n".encode()
        return dataclasses.replace(
            response, status=self.status, reason=REASONS[self.status], body=note,
            headers=(*response.headers, ("Location", self.path)),
            also_serves=(*response.also_serves, (self.path, response.body)),
            applied=(*response.applied, self.name))
