"""add-sts-record: an extra (or replacement) TXT record at ``_mta-sts.<domain>``.

With ``text`` another ``v=STSv1`` record, the name holds two STS records and a compliant
sender has no policy (RFC 8461 3.1): an attacker who can add one record disables MTA-STS for
first contact. With ``text`` a record that is not an STS record (``v=STSv10``, an unrelated
token), a compliant sender ignores it. ``replace`` swaps the genuine records for ``text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fake_dns.zone import MAX_TXT, Zone
from lab.attacks._dns_names import attacked_domain, check_test_name, sts_name
from lab.attacks.base import DnsAttack
from lab.world import Topology, World


@dataclass
class AddStsRecord(DnsAttack):
    name: ClassVar[str] = "add-sts-record"
    summary: ClassVar[str] = ("Add a TXT record at _mta-sts.<domain> (a second STS record, "
                              "a malformed one, an unrelated one), or replace the genuine one.")
    enforce_breaking: ClassVar[bool] = False
    """What a compliant sender must do depends on ``text``: see the scenario."""

    text: str = "v=STSv1; id=attacker1;"
    """The TXT string to publish (one logical string)."""
    replace: bool = False
    """Remove the genuine TXT records first."""
    domain: str | None = None
    """The domain whose record changes (default: the recipient domain)."""

    def __post_init__(self) -> None:
        if len(self.text.encode("utf-8", "replace")) > MAX_TXT:
            raise ValueError(f"text: longer than {MAX_TXT} bytes")
        if self.domain is not None:
            self.domain = check_test_name("domain", self.domain)

    def transform(self, zone: Zone, world: World, topology: Topology) -> Zone:
        name = sts_name(attacked_domain(self.domain, world))
        if zone.records(name, "CNAME"):
            raise ValueError(f"add-sts-record: {name} is a CNAME; a TXT record cannot sit "
                             "beside it")
        if not self.replace and any(r.value == self.text for r in zone.records(name, "TXT")):
            raise ValueError(f"add-sts-record: {name} already holds {self.text!r}; adding "
                             "it again would change nothing")
        out = zone.copy()
        if self.replace:
            out.remove(name, "TXT")
        out.add(name, "TXT", self.text)
        return out

    def watched(self, world: World) -> set[tuple[str, str]]:
        return {(sts_name(attacked_domain(self.domain, world)), "TXT")}
