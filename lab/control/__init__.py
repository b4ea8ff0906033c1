"""The control API: the runner drives lab services that run in other containers.

Each lab container runs one role (one image, the role chosen by its command)::

    python -m lab.control serve --role dns|policy|mitm|mx [--slot N] --state /run/lab

It binds the role's service sockets on the container's own address and standard port (53
udp+tcp, 443, 25), runs the SAME service class as every other backend (``DnsServer``,
``PolicyHost``, ``SmtpProxy``, ``Sink``) and answers JSON over HTTP/1.1 on a unix socket in
the shared run directory (default ``<state>/<role><slot>.sock``):

``GET /health``
    ``{role, slot, ca, next}``: ``ca`` is the SHA-256 of the lab CA the service uses.
``POST /world``
    ``{zone: text, policies: {domain: response}, collector: {enabled, fail_times},
    mx: {slots: [{name, attacks}], accept_domains}}``; each role applies its part and
    ignores the rest (attacks are ``{name, options}``, options as in the scenario YAML; the
    TLS-RPT collector runs in the policy role).
``POST /reset``
    back to an idle world (empty zone, no policies, unnamed MX slots).
``POST /pki``
    re-read the CAs from ``<state>/pki`` (the runner made them; keys 0600) and re-apply the
    world with the new certificates.
``GET /events?since=N&wait=S``
    the events numbered N and after, ``{events: [{seq, source, kind, data}], next}``; a
    long-poll: answers as soon as there is one, or after S seconds with none.

The PKI: the runner writes the per-run CA and rogue CA (certificates and keys) to
``<state>/pki`` (``LabPKI.export``); the services load them (``LabPKI.load``) and write
their leaves to a private directory. When a container starts and finds no CA there (a
person ran ``docker-compose up`` alone) the first one makes a PKI under a file lock.

The package, by concern: ``wire`` (JSON for attacks, policies, MX slots), ``transport``
(HTTP/1.1 on unix sockets, with h11), ``service`` (``ControlServer``: one role), ``remote``
(``RemoteServices``: the runner's side), ``pki_setup`` (CAs under a file lock), ``cli``.
Import from ``lab.control`` only: the names below are its public surface.
"""

from lab.control.cli import main
from lab.control.pki_setup import ca_fingerprint, ensure_pki
from lab.control.remote import RemoteServices
from lab.control.service import MAX_EVENTS, PORTS, ROLES, ControlServer, EventBuffer
from lab.control.transport import ControlClient, ControlError, ControlSocket, Request
from lab.control.wire import (
    attack_from_json,
    attack_to_json,
    collector_from_json,
    collector_to_json,
    dumps,
    idle_name,
    mx_from_json,
    mx_to_json,
    policy_from_json,
    policy_to_json,
)

__all__ = [
    "MAX_EVENTS",
    "PORTS",
    "ROLES",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "ControlSocket",
    "EventBuffer",
    "RemoteServices",
    "Request",
    "attack_from_json",
    "attack_to_json",
    "ca_fingerprint",
    "collector_from_json",
    "collector_to_json",
    "dumps",
    "ensure_pki",
    "idle_name",
    "main",
    "mx_from_json",
    "mx_to_json",
    "policy_from_json",
    "policy_to_json",
]
