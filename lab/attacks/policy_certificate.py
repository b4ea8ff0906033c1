"""policy-certificate: the policy host presents a bad certificate for mta-sts.<domain>.

RFC 8461 3.3: the certificate must be valid for the ``mta-sts`` host name, chain to a root
the sender trusts and be in date. Otherwise the fetch fails and there is no policy: an
attacker who can present such a certificate must not be able to set the policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from lab.attacks.base import PolicyAttack
from lab.pki import CertKind
from lab.policy_host.response import PolicyResponse


@dataclass
class PolicyCertificate(PolicyAttack):
    name: ClassVar[str] = "policy-certificate"
    summary: ClassVar[str] = ("Present a bad certificate on the policy host: self-signed, "
                              "from the rogue CA, for another name, expired, not yet valid.")
    enforce_breaking: ClassVar[bool] = False

    certificate: CertKind = CertKind.SELF_SIGNED
    """The kind of certificate presented (lab.pki.CertKind, not ``valid``)."""

    def __post_init__(self) -> None:
        self.certificate = CertKind(self.certificate)
        if self.certificate is CertKind.VALID:
            raise ValueError("certificate: a bad kind; 'valid' is no attack")

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        return dataclasses.replace(response, cert=CertKind(self.certificate),
                                   applied=(*response.applied, self.name))
