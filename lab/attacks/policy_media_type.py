"""policy-media-type: the policy is served with another Content-Type, or none at all.

RFC 8461 3.2 gives the policy the media type ``text/plain``, and senders SHOULD check it:
``text/html`` or a missing Content-Type is a failed fetch (no policy).
``text/plain; charset=utf-8`` is still text/plain (parameters do not change the type).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.response import PolicyResponse


@dataclass
class PolicyMediaType(PolicyAttack):
    name: ClassVar[str] = "policy-media-type"
    summary: ClassVar[str] = ("Serve the policy with another Content-Type (text/html, "
                              "text/plain with a charset) or with none.")
    enforce_breaking: ClassVar[bool] = False

    content_type: str | None = "text/html"
    """The Content-Type header sent; null sends none."""

    def __post_init__(self) -> None:
        if self.content_type is not None and (
                not self.content_type.strip() or any(c in self.content_type for c in "\r\n")):
            raise ValueError(f"content_type: a header value, not {self.content_type!r}")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        return dataclasses.replace(response, content_type=self.content_type,
                                   applied=(*response.applied, self.name))
