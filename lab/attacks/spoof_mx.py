"""spoof-mx: the recipient's MX records point at a host the attacker runs.

The attacker's MX has a valid certificate for its own name (the runner gives it an MX slot,
see ``attacker_mx``), so TLS to it succeeds: only the policy's ``mx`` patterns (RFC 8461
4.1) tell a sender that this host may not receive the domain's mail. Under enforce a
compliant sender skips it; with no policy, or in testing mode, delivering to it is what the
RFC allows (the oracle calls that outcome ``intercepted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fake_dns.zone import Zone
from lab.attacks._dns_names import attacked_domain, check_test_name
from lab.attacks.base import DnsAttack
from lab.world import Topology, World, normalize


@dataclass
class SpoofMx(DnsAttack):
    name: ClassVar[str] = "spoof-mx"
    summary: ClassVar[str] = ("Replace the recipient's MX records with a host the attacker "
                              "runs (valid certificate for its own name), or add it ahead "
                              "of them.")
    enforce_breaking: ClassVar[bool] = True

    host: str = "mx.attacker.test"
    """The attacker's MX host; it must not be an MX host of the world."""
    keep_genuine: bool = False
    """Keep the genuine MX records and add the attacker's with a better (lower) preference,
    instead of replacing them."""
    domain: str | None = None
    """The domain whose MX records change (default: the recipient domain)."""

    def __post_init__(self) -> None:
        self.host = check_test_name("host", self.host)
        if self.domain is not None:
            self.domain = check_test_name("domain", self.domain)

    def preference(self, zone: Zone, domain: str) -> int:
        """10 when replacing; one better than the best genuine MX when adding."""
        if not self.keep_genuine:
            return 10
        prefs = [int(r.value.split()[0]) for r in zone.records(domain, "MX")]
        return max(0, min(prefs, default=10) - 1)

    def transform(self, zone: Zone, world: World, topology: Topology) -> Zone:
        domain = attacked_domain(self.domain, world)
        if self.host in world.mx_hosts():
            raise ValueError(f"spoof-mx host {self.host} is an MX host of the world; the "
                             "attacker's MX must be a host of its own")
        if not zone.records(self.host, "A"):
            raise ValueError(f"spoof-mx host {self.host} has no address in the zone (the "
                             "runner gives each attacker_mx host an MX slot)")
        out = zone.copy()
        pref = self.preference(out, domain)
        if not self.keep_genuine:
            out.remove(domain, "MX")
        out.add(domain, "MX", f"{pref} {self.host}.")
        return out

    def watched(self, world: World) -> set[tuple[str, str]]:
        return {(attacked_domain(self.domain, world), "MX")}

    def attacker_mx(self, world: World) -> list[str]:
        return [normalize(self.host)]
