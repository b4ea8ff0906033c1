"""policy-unreachable: the policy host resets every connection for the domain.

The TCP connection is reset as soon as the ClientHello names ``mta-sts.<domain>``: the
fetch fails. Nothing cached: the sender delivers as if there were no policy (RFC 8461 3.3,
the first-contact weakness of 10.2). A cached policy still applies (5.1), and a failed
fetch of a new id keeps the old policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.policy_host.response import PolicyResponse


@dataclass
class PolicyUnreachable(PolicyAttack):
    name: ClassVar[str] = "policy-unreachable"
    summary: ClassVar[str] = "Reset every connection to the policy host (the host is down)."
    enforce_breaking: ClassVar[bool] = False

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        return dataclasses.replace(response, reachable=False,
                                   applied=(*response.applied, self.name))
