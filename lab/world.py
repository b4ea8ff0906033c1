"""The world of one scenario: recipient domains, MX hosts, policies and where everything lives.

A world is data. ``build_zone`` turns it into the fake DNS zone; the backends turn the
``Topology`` into sockets.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from fake_dns.zone import Zone
from lab.tlsrpt.names import REPORT_DOMAIN, REPORT_HTTPS_HOST, REPORT_MX, https_uri, mailto_uri

DEFAULT_DOMAIN = "victim.test"
DEFAULT_POLICY_ID = "lab20261129"
MAX_MX = 4
"""MX slots per world: each slot is a proxy front (what DNS names) and a sink behind it."""

Mode = Literal["enforce", "testing", "none"]
MODES: tuple[str, ...] = ("enforce", "testing", "none")

_TEST_NAME = re.compile(r"^(?:[a-z0-9*_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+test\.?$", re.I)


def is_test_name(name: str) -> bool:
    """Only reserved ``.test`` names are allowed anywhere in a world."""
    return bool(_TEST_NAME.match(name))


def normalize(name: str) -> str:
    return name.lower().rstrip(".")


@dataclass(frozen=True)
class Policy:
    mode: Mode = "enforce"
    mx: tuple[str, ...] = ()
    max_age: int = 86400
    id: str = DEFAULT_POLICY_ID

    def text(self) -> str:
        lines = ["version: STSv1", f"mode: {self.mode}"]
        lines += [f"mx: {pattern}" for pattern in self.mx]
        lines.append(f"max_age: {self.max_age}")
        return "\n".join(lines) + "\n"

    def txt_record(self) -> str:
        return f"v=STSv1; id={self.id};"


TLSA_ANCHORS: tuple[str, ...] = ("lab-ca", "rogue-ca", "nothing")
"""What a TLSA record's data matches: the lab CA, the rogue CA, or no certificate at all."""


@dataclass(frozen=True)
class Tlsa:
    """A TLSA record at ``_25._tcp.<mx>`` (RFC 7672); ``signed``: answered with the AD bit.

    The data is made at run time from the run's CAs (``Topology.extra``, see
    ``lab.dane_world``), so a scenario names what it matches instead of carrying a digest.
    """

    mx: str
    usage: int = 2
    selector: int = 1
    mtype: int = 0
    matches: str = "lab-ca"
    signed: bool = True

    @property
    def name(self) -> str:
        return f"_25._tcp.{normalize(self.mx)}"

    def rdata(self, anchors: dict[str, str]) -> str:
        if self.matches == "nothing":
            content = b"mtasts-lab: this association matches no certificate"
        else:
            content = bytes.fromhex(anchors[f"tlsa:{self.matches}:{self.selector}"])
        data = {1: hashlib.sha256, 2: hashlib.sha512}.get(self.mtype)
        digest = data(content).digest() if data else content
        return f"{self.usage} {self.selector} {self.mtype} {digest.hex()}"


TLSRPT_PLACEHOLDERS: tuple[str, ...] = ("{https}", "{mailto}")
"""Written in a ``Tlsrpt`` record, replaced by the lab collector's URIs."""
MAX_HTTPS_FAILS = 10


@dataclass(frozen=True)
class Tlsrpt:
    """TLS-RPT published by a recipient domain (RFC 8460 3): the TXT records at
    ``_smtp._tls.<domain>``, and how the lab's report domain (``lab.tlsrpt.names``) behaves.

    ``records`` are whole TXT values (DNS carries one longer than 255 bytes as several
    strings); ``{https}`` and ``{mailto}`` in them become the collector's URIs.
    """

    records: tuple[str, ...]
    report_policy: Policy | None = None
    """An MTA-STS policy for the report domain (its ``mx`` defaults to the report MX)."""
    https_fails: int = 0
    """The collector answers the first this many POSTs of a phase with 500."""

    @staticmethod
    def for_rua(schemes: Sequence[str]) -> tuple[str, ...]:
        """The one valid record whose ``rua`` lists the collector's URIs of ``schemes``."""
        return ("v=TLSRPTv1; rua=" + ",".join("{" + s + "}" for s in schemes),)

    def txt_records(self, https_port: int = 443) -> tuple[str, ...]:
        return tuple(r.replace("{https}", https_uri(https_port))
                     .replace("{mailto}", mailto_uri()) for r in self.records)


@dataclass(frozen=True)
class Domain:
    name: str = DEFAULT_DOMAIN
    mx: tuple[str, ...] = ()
    """MX host names in preference order (10, 20, ...)."""
    policy: Policy | None = None
    sts_txt: tuple[str, ...] | None = None
    """The TXT strings at ``_mta-sts.<name>``; None means derived from the policy."""
    policy_text: str | None = None
    """The body the policy host serves; None means ``policy.text()``."""
    tlsa: tuple[Tlsa, ...] = ()
    """DANE TLSA records for this domain's MX hosts (X1)."""
    tlsrpt: Tlsrpt | None = None
    """TLS-RPT records at ``_smtp._tls.<name>``; None publishes none."""

    @property
    def policy_host(self) -> str:
        return f"mta-sts.{self.name}"

    def sts_records(self) -> tuple[str, ...]:
        if self.sts_txt is not None:
            return self.sts_txt
        return (self.policy.txt_record(),) if self.policy else ()

    def policy_body(self) -> str | None:
        if self.policy_text is not None:
            return self.policy_text
        return self.policy.text() if self.policy else None


@dataclass(frozen=True)
class World:
    domains: tuple[Domain, ...] = (Domain(),)
    smart_host: str | None = None
    """The domain of a smart host the sender relays through (one of ``domains``, not the
    recipient's): it is the policy domain (RFC 8461 3.4). None: direct delivery."""

    @property
    def domain(self) -> Domain:
        """The recipient domain (the first one)."""
        return self.domains[0]

    @property
    def tlsrpt(self) -> Tlsrpt | None:
        """The TLS-RPT set-up of the first domain that publishes one (the report domain's
        behaviour comes from it)."""
        return next((d.tlsrpt for d in self.domains if d.tlsrpt is not None), None)

    @property
    def report_domain(self) -> Domain | None:
        """The lab's report domain, present when a domain publishes TLS-RPT."""
        tlsrpt = self.tlsrpt
        if tlsrpt is None:
            return None
        return Domain(REPORT_DOMAIN, (REPORT_MX,), tlsrpt.report_policy)

    def all_domains(self) -> tuple[Domain, ...]:
        """The recipient domains, then the report domain when there is one."""
        report = self.report_domain
        return self.domains if report is None else (*self.domains, report)

    def report_mx_hosts(self) -> list[str]:
        """MX hosts that only the report domain uses (untargeted attacks leave them alone)."""
        report = self.report_domain
        own = {normalize(h) for d in self.domains for h in d.mx}
        return [normalize(h) for h in report.mx if normalize(h) not in own] if report else []

    @property
    def policy_domain(self) -> Domain:
        """The domain whose policy applies: the smart host's, else the recipient's."""
        if self.smart_host is not None:
            for d in self.domains:
                if d.name == normalize(self.smart_host):
                    return d
        return self.domain

    def mx_hosts(self) -> list[str]:
        """Every MX host name in slot order (the report domain's last)."""
        seen: list[str] = []
        for domain in self.all_domains():
            for host in domain.mx:
                if normalize(host) not in seen:
                    seen.append(normalize(host))
        return seen

    def slot_of(self, mx_host: str) -> int:
        return self.mx_hosts().index(normalize(mx_host))

    def with_domain(self, domain: Domain) -> World:
        return replace(self, domains=(domain, *self.domains[1:]))


@dataclass(frozen=True)
class Topology:
    """Where the world's hosts live: addresses and ports one backend handed out."""

    dns: str
    policy: str
    mx_fronts: tuple[str, ...]
    """What DNS names for MX slot i: the on-path proxy."""
    mx_backs: tuple[str, ...]
    """The genuine MX (sink) of slot i, behind the proxy."""
    attacker: str
    """The attacker's own host (its own MX, its own policy host)."""
    dns_port: int = 53
    smtp_port: int = 25
    https_port: int = 443
    extra: dict[str, str] = field(default_factory=dict)


def build_zone(world: World, topology: Topology, extra_hosts: Sequence[str] = ()) -> Zone:
    """The zone a world publishes, with every MX pointed at its proxy front.

    ``extra_hosts`` (attacker-run MX hosts) get the slots after the world's own. The
    caller checks that the backend has that many slots (``lab.world_setup``).
    """
    zone = Zone()
    slots = {host: i for i, host in enumerate([*world.mx_hosts(), *extra_hosts])}
    for host, i in slots.items():
        zone.add(host, "A", topology.mx_fronts[i])
    for domain in world.all_domains():
        for pref, host in enumerate(domain.mx, start=1):
            zone.add(domain.name, "MX", f"{10 * pref} {normalize(host)}.")
        for txt in domain.sts_records():
            zone.add(f"_mta-sts.{domain.name}", "TXT", txt)
        if domain.policy_body() is not None:
            zone.add(domain.policy_host, "A", topology.policy)
        for tlsa in domain.tlsa:
            zone.add(tlsa.name, "TLSA", tlsa.rdata(topology.extra))
            if tlsa.signed:  # DANE needs a validated chain: MX, address and TLSA
                for name in (domain.name, normalize(tlsa.mx), tlsa.name):
                    zone.authenticate(name)
    for domain in world.domains:
        if domain.tlsrpt is not None:
            for txt in domain.tlsrpt.txt_records(topology.https_port):
                zone.add(f"_smtp._tls.{domain.name}", "TXT", txt)
    if world.report_domain is not None:
        zone.add(REPORT_HTTPS_HOST, "A", topology.policy)
    return zone
