"""hide-sts-record: the ``_mta-sts`` record disappears from the attacker's DNS answers.

Every record at ``_mta-sts.<domain>`` is removed (TXT, or a CNAME leading to it), so the
name does not exist. A sender with nothing cached must then act as if the domain had no
policy (RFC 8461 3.1): the first-contact weakness of 10.2. A sender that cached the policy
keeps applying it (C1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fake_dns.zone import Zone
from lab.attacks._dns_names import attacked_domain, check_test_name, sts_name
from lab.attacks.base import DnsAttack
from lab.world import Topology, World


@dataclass
class HideStsRecord(DnsAttack):
    name: ClassVar[str] = "hide-sts-record"
    summary: ClassVar[str] = ("Remove the _mta-sts record from DNS, so that the domain seems "
                              "to publish no MTA-STS policy.")
    enforce_breaking: ClassVar[bool] = False
    """Unprimed, a compliant sender has no policy and delivers; primed, it refuses (C1)."""

    domain: str | None = None
    """The domain whose record is hidden (default: the recipient domain)."""

    def __post_init__(self) -> None:
        if self.domain is not None:
            self.domain = check_test_name("domain", self.domain)

    def transform(self, zone: Zone, world: World, topology: Topology) -> Zone:
        name = sts_name(attacked_domain(self.domain, world))
        out = zone.copy()
        if not out.remove(name):
            raise ValueError(f"hide-sts-record: nothing to hide, {name} has no record")
        return out

    def watched(self, world: World) -> set[tuple[str, str]]:
        return {(sts_name(attacked_domain(self.domain, world)), "TXT")}
