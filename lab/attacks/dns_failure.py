"""dns-failure: queries for one name fail the way the attacker chooses.

One attack for every failure mode the fake DNS has (rather than separate ``servfail`` and
``no-answer`` attacks): ``servfail``, ``nxdomain``, ``refused``, ``no-answer`` (no reply at
all, over UDP and TCP: the sender waits for its own timeouts, so it is slow by design) and
``truncate`` (UDP replies carry the TC bit and no answer; TCP answers normally).

``qname`` is a template (the option cannot be called ``name``: that is the attack's own
name). ``{domain}`` is the attacked domain, so ``_mta-sts.{domain}`` (the STS record, the
default), ``mta-sts.{domain}`` (the policy host's address) and ``{domain}`` (its MX) all
work, as do literal names such as ``mx1.victim.test``. ``qtype`` limits the failure to one
record type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fake_dns.errors import ZoneError
from fake_dns.zone import RECORD_TYPES, Failure, Zone, normalize_type
from lab.attacks._dns_names import attacked_domain, check_template, check_test_name, expand
from lab.attacks.base import DnsAttack
from lab.world import Topology, World


@dataclass
class DnsFailure(DnsAttack):
    name: ClassVar[str] = "dns-failure"
    summary: ClassVar[str] = ("Make DNS queries for one name fail: SERVFAIL, NXDOMAIN, "
                              "REFUSED, no answer at all, or truncated over UDP.")
    enforce_breaking: ClassVar[bool] = False

    failure: Failure = Failure.SERVFAIL
    """How the queries fail."""
    qname: str = "_mta-sts.{domain}"
    """The failing name; ``{domain}`` is the attacked domain."""
    qtype: str | None = None
    """Only queries of this type fail (default: every type)."""
    domain: str | None = None
    """What ``{domain}`` stands for (default: the recipient domain)."""

    def __post_init__(self) -> None:
        self.failure = Failure(self.failure)
        check_template("qname", self.qname)
        if self.domain is not None:
            self.domain = check_test_name("domain", self.domain)
        if self.qtype is not None:
            try:
                self.qtype = normalize_type(self.qtype)
            except ZoneError as exc:
                raise ValueError(f"qtype: {exc}") from None
            if self.qtype not in RECORD_TYPES:
                raise ValueError(f"qtype: one of {', '.join(RECORD_TYPES)}, not {self.qtype}")

    def target(self, world: World) -> str:
        return expand(self.qname, attacked_domain(self.domain, world))

    def transform(self, zone: Zone, world: World, topology: Topology) -> Zone:
        out = zone.copy()
        out.fail(self.target(world), self.failure, self.qtype)
        return out

    def watched(self, world: World) -> set[tuple[str, str]]:
        types = (self.qtype,) if self.qtype else RECORD_TYPES
        return {(self.target(world), t) for t in types}
