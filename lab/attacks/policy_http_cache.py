"""policy-http-cache: the policy host invites HTTP caching and answers 304 to revalidation.

Every answer carries a constant ``ETag``, ``Last-Modified`` and ``Cache-Control: max-age``;
a conditional request (If-None-Match, If-Modified-Since) gets ``304 Not Modified`` with no
body, whatever changed. RFC 8461 3.3: "HTTP caching MUST NOT be used". A sender that
revalidates its cached copy keeps the old policy when the domain publishes a new one; a
compliant sender sends a plain GET and gets the new policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.response import PolicyResponse

LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"


@dataclass
class PolicyHttpCache(PolicyAttack):
    name: ClassVar[str] = "policy-http-cache"
    summary: ClassVar[str] = ("Send ETag, Last-Modified and Cache-Control with the policy and "
                              "answer conditional requests with 304 Not Modified.")
    enforce_breaking: ClassVar[bool] = False

    etag: str = '"mtasts-lab-policy"'
    """The ETag sent with every answer, whatever the body."""
    max_age: int = 31536000
    """The Cache-Control max-age offered (seconds)."""

    def __post_init__(self) -> None:
        if not self.etag or any(c in self.etag for c in "\r\n"):
            raise ValueError(f"etag: a header value, not {self.etag!r}")
        if self.max_age < 0:
            raise ValueError(f"max_age: not negative, not {self.max_age}")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        headers = (("ETag", self.etag), ("Last-Modified", LAST_MODIFIED),
                   ("Cache-Control", f"public, max-age={self.max_age}"))
        return dataclasses.replace(response, headers=(*response.headers, *headers),
                                   not_modified=True, applied=(*response.applied, self.name))
