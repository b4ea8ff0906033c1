"""From a world and a phase's attacks to what each lab service must serve: one pure step.

``service_config`` builds the zone (``build_zone``), lets the DNS attacks rewrite it, lets the
policy attacks shape each domain's policy answer, gives attacker-run MX hosts the slots after
the world's own and arms each slot's proxy with the SMTP attacks that target it. It does no
I/O; ``publish`` hands the result to a backend's services (in-process or over the control API).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fake_dns.zone import Zone
from lab.attacks.base import Attack, DnsAttack, PolicyAttack, SmtpAttack
from lab.policy_host.response import PolicyResponse
from lab.tlsrpt.collector import CollectorSetup
from lab.world import Topology, World, build_zone

if TYPE_CHECKING:
    from lab.backends.services import Services


@dataclass(frozen=True)
class MxSetup:
    """One MX slot: the host name its proxy and sink answer as, the proxy's SMTP attacks."""

    name: str
    attacks: tuple[SmtpAttack, ...] = ()


def idle_name(slot: int) -> str:
    """The name of an MX slot the world does not use."""
    return f"unused{slot}.lab.test"


def slot_setup(slots: Sequence[MxSetup], slot: int) -> MxSetup:
    """Slot ``slot``'s setup; an idle one past the world's slots."""
    return slots[slot] if slot < len(slots) else MxSetup(idle_name(slot))


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the services serve for one phase."""

    zone: Zone
    """Published with TTL 0 (see ``service_config``)."""
    policies: Mapping[str, PolicyResponse]
    """The policy host's answer per policy domain."""
    mx: tuple[MxSetup, ...]
    """Per MX slot, in slot order: the world's MX hosts, then attacker-run ones."""
    accept_domains: tuple[str, ...]
    """Recipient domains (and the report domain) the sinks accept mail for."""
    collector: CollectorSetup = field(default_factory=CollectorSetup)
    """The TLS-RPT collector: served when the world publishes TLS-RPT."""


def attacker_hosts(world: World, attacks: Sequence[Attack]) -> list[str]:
    """MX hosts that the phase's DNS attacks introduce and the attacker runs."""
    known = set(world.mx_hosts())
    extra: list[str] = []
    for attack in attacks:
        if isinstance(attack, DnsAttack):
            extra += [h for h in attack.attacker_mx(world) if h not in known and h not in extra]
    return extra


def service_config(world: World, topology: Topology,
                   attacks: Sequence[Attack]) -> ServiceConfig:
    """The phase's service configuration; ValueError when it needs more MX slots than the
    backend has (the only place that limit is checked)."""
    extra = attacker_hosts(world, attacks)
    hosts = [*world.mx_hosts(), *extra]
    if len(hosts) > len(topology.mx_fronts):
        raise ValueError(f"{len(hosts)} MX hosts; the backend has {len(topology.mx_fronts)} "
                         "MX slots")
    zone = build_zone(world, topology, extra)
    for attack in attacks:
        if isinstance(attack, DnsAttack):
            zone = attack.transform(zone, world, topology)
    policies: dict[str, PolicyResponse] = {}
    for domain in world.all_domains():
        body = domain.policy_body()
        if body is None:
            continue
        response = PolicyResponse(body=body.encode())
        for attack in attacks:
            if isinstance(attack, PolicyAttack):
                response = attack.transform(response, domain.name)
        policies[domain.name] = response
    report_only = set(world.report_mx_hosts())

    def arms(attack: Attack, host: str) -> bool:
        # the path to the report mailbox is attacked only by an attack that names its MX
        return isinstance(attack, SmtpAttack) and attack.targets(host) and (
            host not in report_only or attack.mx is not None)

    slots = tuple(MxSetup(host, tuple(a for a in attacks if isinstance(a, SmtpAttack)
                                      and arms(a, host)))
                  for host in hosts)
    tlsrpt = world.tlsrpt
    collector = CollectorSetup(enabled=tlsrpt is not None,
                               fail_times=tlsrpt.https_fails if tlsrpt else 0)
    # TTL 0: no sender carries an answer from one scenario or phase into the next (newer
    # c-ares builds cache answers, which survived a policy-cache flush otherwise)
    return ServiceConfig(zone.with_ttl(0), policies, slots,
                         tuple(d.name for d in world.all_domains()), collector)


def publish(services: Services, config: ServiceConfig) -> None:
    """Hand a configuration to the services: zone, policies, collector, then MX slots."""
    services.set_zone(config.zone)
    services.set_policies(config.policies)
    services.set_collector(config.collector)
    services.set_mx(config.mx, config.accept_domains)
