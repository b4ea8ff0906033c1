"""cname-sts-record: ``_mta-sts.<domain>`` becomes a CNAME (chain) to a name holding the TXT.

Not an attack so much as a deployment shape an attacker can count on senders mishandling:
domains that outsource MTA-STS point ``_mta-sts`` at their provider with a CNAME. RFC 8461
3.1 says the chain is followed as usual, so a compliant sender still finds the policy.

The genuine TXT records move to ``target``; with ``hops`` > 1 the chain runs through
``link1.<target>`` ... ``link<hops-1>.<target>``. The fake DNS answers with the whole
in-zone chase (the CNAMEs and the TXT), as a recursive resolver would.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

from fake_dns.zone import CNAME_DEPTH, Zone
from lab.attacks._dns_names import attacked_domain, check_test_name, sts_name
from lab.attacks.base import DnsAttack
from lab.world import Topology, World


@dataclass
class CnameStsRecord(DnsAttack):
    name: ClassVar[str] = "cname-sts-record"
    summary: ClassVar[str] = ("Turn _mta-sts.<domain> into a CNAME (chain) to another name "
                              "that holds the TXT record.")
    enforce_breaking: ClassVar[bool] = False
    """The policy is still there: a compliant sender behaves as without the CNAME."""

    target: str = "_mta-sts.sts-provider.test"
    """The name at the end of the chain, which receives the TXT records."""
    hops: int = 1
    """How many CNAME records lead from _mta-sts.<domain> to ``target``."""
    domain: str | None = None
    """The domain whose record moves (default: the recipient domain)."""

    def __post_init__(self) -> None:
        self.target = check_test_name("target", self.target)
        if self.domain is not None:
            self.domain = check_test_name("domain", self.domain)
        if not 1 <= self.hops <= CNAME_DEPTH:
            raise ValueError(f"hops: must be between 1 and {CNAME_DEPTH}, not {self.hops}")

    def chain(self, domain: str) -> list[str]:
        """Every name along the chain, from _mta-sts.<domain> to the target."""
        links = [f"link{i}.{self.target}" for i in range(1, self.hops)]
        return [sts_name(domain), *links, self.target]

    def transform(self, zone: Zone, world: World, topology: Topology) -> Zone:
        names = self.chain(attacked_domain(self.domain, world))
        source = names[0]
        if self.target == source or any(zone.records(n) for n in names[1:]):
            raise ValueError(f"cname-sts-record: the chain from {source} must lead to names "
                             "that hold nothing yet")
        texts = [r for r in zone.records(source) if r.rtype == "TXT"]
        if not texts or len(texts) != len(zone.records(source)):
            raise ValueError(f"cname-sts-record: {source} must hold TXT records only, and "
                             "at least one")
        out = zone.copy()
        out.remove(source)
        for here, there in itertools.pairwise(names):
            out.add(here, "CNAME", there)
        for record in texts:
            out.add(self.target, "TXT", record.value, record.ttl)
        return out

    def watched(self, world: World) -> set[tuple[str, str]]:
        return {(sts_name(attacked_domain(self.domain, world)), "TXT")}
