"""policy-mitm: an HTTPS man-in-the-middle of the policy fetch, with mitmproxy.

The attacker sits on the path to the policy host: mitmproxy terminates TLS with a
certificate from the attacker's own CA, fetches the genuine policy and hands the sender a
rewritten one (by default ``mode: none``). RFC 8461 3.3: the certificate must chain to a
root the sender trusts, so a compliant sender fails the fetch; with a policy cached it
keeps applying that (5.1), so the attacker gains nothing.

Needs the optional extra: ``pip install mtasts-lab[mitm]``; without it the phase is
``skipped``. See ``lab.policy_host.mitm`` for how mitmproxy runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from lab.attacks.base import PolicyAttack
from lab.extras import install_hint
from lab.policy_host.response import Interception, PolicyResponse


@dataclass
class PolicyMitm(PolicyAttack):
    name: ClassVar[str] = "policy-mitm"
    summary: ClassVar[str] = ("Intercept the HTTPS policy fetch with mitmproxy (the "
                              "attacker's own CA) and rewrite the policy.")
    enforce_breaking: ClassVar[bool] = False
    requires: ClassVar[tuple[tuple[str, str], ...]] = (
        ("mitmproxy", install_hint("mitm")),)

    mode: Literal["none", "testing"] = "none"
    """The mode of the policy the attacker serves instead."""
    max_age: int = 86400
    """The max_age of the attacker's policy."""

    def __post_init__(self) -> None:
        if self.mode not in ("none", "testing"):
            raise ValueError(f"mode: none or testing, not {self.mode!r}")
        if not 0 <= self.max_age <= 31557600:
            raise ValueError(f"max_age: 0 to 31557600, not {self.max_age}")

    def policy_text(self, domain: str) -> bytes:
        lines = ["version: STSv1", f"mode: {self.mode}"]
        if self.mode != "none":
            lines.append(f"mx: *.{domain}")
        lines.append(f"max_age: {self.max_age}")
        return ("\r\n".join(lines) + "\r\n").encode()

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        plan = Interception(self.name, self.policy_text(domain))
        return dataclasses.replace(response, intercept=plan,
                                   applied=(*response.applied, self.name))
