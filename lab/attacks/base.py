"""The attack kinds. One attack per module, registered by its ``name``.

An attack is a dataclass: its fields are its options, typed, mapping one to one onto the
scenario YAML (``attacks: [{swap-certificate: {certificate: expired}}]``).

Three places an attacker acts:
- ``dns``: a pure transform of the world's zone;
- ``policy``: a pure transform of the policy host's answer;
- ``smtp``: hooks the proxy's sans-IO relay core calls, all optional, named after the verbs.

Every attack must leave evidence that it fired (honesty rule 1 in docs/ARCHITECTURE.md);
otherwise the verdict is inconclusive.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar

from fake_dns.zone import Zone
from lab.policy_host.response import PolicyResponse
from lab.registry import Registered, Registry
from lab.smtp.hooks import FlowView
from lab.smtp.types import Command, Reply, TlsPlan
from lab.world import Topology, World

__all__ = ["Attack", "DnsAttack", "FlowView", "PolicyAttack", "SmtpAttack"]


@dataclass
class Attack(Registered):
    registry: ClassVar[Registry[Attack]] = Registry("attack")
    place: ClassVar[str] = ""
    enforce_breaking: ClassVar[bool] = True
    """True when a compliant sender must refuse under an enforce policy."""
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    """Optional modules this attack needs, as (module, install hint); without them the
    phase is ``skipped`` with that reason, never passed."""

    @classmethod
    def missing(cls) -> list[str]:
        """Install hints for the optional modules that cannot be imported here."""
        out = []
        for module, hint in cls.requires:
            if importlib.util.find_spec(module) is None:
                out.append(f"{module} is not installed ({hint})")
        return out


@dataclass
class SmtpAttack(Attack):
    """Implements the relay core's hooks (``lab.smtp.hooks.SmtpHooks``) with no-op defaults."""

    place: ClassVar[str] = "smtp"

    mx: str | None = None
    """Attack only the connections to this MX host (default: every MX of the world)."""

    def targets(self, mx_host: str) -> bool:
        return self.mx is None or self.mx.lower().rstrip(".") == mx_host.lower().rstrip(".")

    def on_greeting(self, flow: FlowView, reply: Reply) -> Reply:
        return reply

    def on_command(self, flow: FlowView, command: Command) -> Command | Reply:
        """Return the command to forward, or a reply to answer the sender directly."""
        return command

    def on_reply(self, flow: FlowView, command: Command, reply: Reply) -> Reply:
        return reply

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        """Called when the genuine MX answered 220 to STARTTLS. None: no opinion."""
        return None


@dataclass
class DnsAttack(Attack):
    place: ClassVar[str] = "dns"

    def transform(self, zone: Zone, world: World, topology: Topology) -> Zone:
        raise NotImplementedError

    def watched(self, world: World) -> set[tuple[str, str]]:
        """(name, type) pairs whose answered query proves the spoofed data was served."""
        raise NotImplementedError

    def attacker_mx(self, world: World) -> list[str]:
        """MX hosts the attacker runs itself (each gets an MX slot with a valid certificate
        for its own name; a message received there was handed to the attacker)."""
        return []


@dataclass
class PolicyAttack(Attack):
    place: ClassVar[str] = "policy"

    def transform(self, response: PolicyResponse, domain: str) -> PolicyResponse:
        raise NotImplementedError
