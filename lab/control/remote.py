"""``RemoteServices``: the runner's ``Services`` forwarded over the control API to services
that run elsewhere (one container per role, see ``lab.control``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fake_dns.zone import Zone
from lab.control.transport import ControlClient
from lab.control.wire import collector_to_json, mx_to_json, policy_to_json
from lab.policy_host.response import PolicyResponse
from lab.tlsrpt.collector import CollectorSetup
from lab.world_setup import MxSetup

READY_TIMEOUT_S = 130.0
"""Longer than the runner's own deadline for readiness (``lab.waits.READY_S``)."""


class RemotePolicy:
    """The policy container's readiness, as ``lab.waits.services_ready`` asks for it."""

    def __init__(self, client: ControlClient) -> None:
        self.client = client

    async def ready(self) -> bool:
        """Wait until the attacker's mitmproxy listens (when one is configured); True if the
        service had to wait for it."""
        answer = await self.client.request("GET", "/ready", timeout=READY_TIMEOUT_S)
        return bool(answer.get("waited")) if isinstance(answer, dict) else False


class RemoteServices:
    """Implements ``lab.backends.services.Services`` with one control client per service.

    ``clients`` are keyed by label: ``dns``, ``policy``, ``mx<N>`` (sinks), ``mitm<N>``
    (proxies). No service runs in this process; ``close`` leaves them running.
    """

    def __init__(self, clients: Mapping[str, ControlClient]) -> None:
        self.clients = dict(clients)
        self.policy = RemotePolicy(self.clients["policy"]) if "policy" in self.clients else None

    def _labels(self, prefix: str) -> list[str]:
        return sorted(label for label in self.clients
                      if label.startswith(prefix) and label[len(prefix):].isdigit())

    def _post(self, labels: Sequence[str], body: dict[str, Any]) -> None:
        """The same world to several services at once (the runner's ``set_*`` calls are
        synchronous: one request after another would cost their sum each phase)."""
        if len(labels) == 1:
            self.clients[labels[0]].call("POST", "/world", body)
            return
        with ThreadPoolExecutor(max_workers=len(labels)) as pool:
            for done in [pool.submit(self.clients[label].call, "POST", "/world", body)
                         for label in labels]:
                done.result()

    def set_zone(self, zone: Zone) -> None:
        self._post(["dns"], {"zone": zone.to_text()})

    def set_policies(self, responses: Mapping[str, PolicyResponse]) -> None:
        self._post(["policy"], {"policies": {d: policy_to_json(r)
                                             for d, r in responses.items()}})

    def set_collector(self, setup: CollectorSetup) -> None:
        self._post(["policy"], {"collector": collector_to_json(setup)})

    def set_mx(self, slots: Sequence[MxSetup], accept_domains: Sequence[str]) -> None:
        body = {"mx": mx_to_json(slots, accept_domains)}
        # sinks first: a proxy never relays to a sink that does not yet know its name
        self._post(self._labels("mx"), body)
        self._post(self._labels("mitm"), body)

    async def reset(self) -> None:
        """Every service back to an idle world."""
        await asyncio.gather(*(c.request("POST", "/reset") for c in self.clients.values()))

    async def close(self) -> None:
        return None
