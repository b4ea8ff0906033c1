"""The backend contract: bring the lab's hosts up somewhere, hand out their addresses.

Every backend runs the same service classes (fake DNS, policy host, proxies, sinks); only
where their sockets live differs. The runner drives them through ``Services`` (the control
interface) and gives the sender a ``SenderEnv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from lab.backends.services import Services
from lab.events import EventLog
from lab.pki import LabPKI
from lab.registry import Registered, Registry
from lab.senders.base import Sender, SenderEnv
from lab.world import Topology


class BackendUnavailable(Exception):
    """This backend cannot run here (missing privilege or tool); the message says what."""


class Backend(Registered):
    registry: ClassVar[Registry[Backend]] = Registry("backend")
    needs_root: ClassVar[bool] = False
    unsupported_attacks: dict[str, str] = {}
    """Attacks this backend cannot run, with the reason: their phases are ``skipped`` (an
    instance may learn more in ``up``, e.g. from what its containers' images ship)."""

    topology: Topology
    services: Services

    @classmethod
    def check(cls) -> list[str]:
        """What is missing on this machine for this backend (empty: it can run)."""
        return []

    @classmethod
    def sender_missing(cls, sender: type[Sender]) -> list[str]:
        """What this machine lacks to run ``sender`` on this backend (empty: it can)."""
        return sender.check()

    @classmethod
    def cleanup_leftovers(cls) -> list[str]:
        """Remove what crashed runs of this backend left behind (the lab's own only)."""
        return []

    async def up(self, run_dir: Path, pki: LabPKI, events: EventLog) -> Topology:
        """Start the lab's hosts and services; return where they live."""
        raise NotImplementedError

    def sender_env(self, workdir: Path) -> SenderEnv:
        """How a sender reaches the lab: DNS, ports, CA, and where to run its programs."""
        raise NotImplementedError

    async def settle(self, judged: int) -> bool:
        """Bring in the lab's evidence up to now where it arrives late (compose: events
        pumped from the containers); True when the event log holds events that arrived that
        way after the first ``judged`` ones (the ones an observation saw)."""
        return False

    async def down(self) -> None:
        """Stop everything ``up`` started and remove what it made. Safe to call twice."""
        raise NotImplementedError
