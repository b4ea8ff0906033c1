"""What the policy host answers for one domain: data that policy attacks transform."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.pki import CertKind


@dataclass(frozen=True)
class Interception:
    """An on-path attacker in front of the policy host (mitmproxy, ``lab.policy_host.mitm``).

    Every connection to the policy host's address is handed to the attacker's mitmproxy,
    which terminates TLS with a certificate from its own CA (one the sender does not trust),
    fetches the genuine answer from the real host and rewrites it.
    """

    attack: str
    """The name of the attack (recorded in ``applied`` on the attacker's events)."""
    policy_text: bytes | None = None
    """The body served instead of the genuine policy; None relays the genuine answer."""


@dataclass(frozen=True)
class PolicyResponse:
    status: int = 200
    reason: str = "OK"
    content_type: str | None = "text/plain"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers (Location, ETag, Cache-Control ...). A ``Location`` that starts with
    ``/`` is sent as an absolute ``https`` URL on the host (and port) the request named."""
    cert: CertKind = CertKind.VALID
    """The certificate the host presents for mta-sts.<domain>."""
    trickle_bytes_per_s: float | None = None
    """Send the body slowly (a body that trickles)."""
    reachable: bool = True
    """False: the host resets connections (policy host down)."""
    also_serves: tuple[tuple[str, bytes], ...] = ()
    """Other paths on this host answered ``200 text/plain`` with these bodies (the target
    of a redirect: a sender that follows it really gets a policy there)."""
    not_modified: bool = False
    """Answer a conditional request (If-None-Match, If-Modified-Since) with ``304 Not
    Modified`` and no body, whatever changed (HTTP caching, which a sender must not use)."""
    intercept: Interception | None = None
    """An attacker's mitmproxy sits in front of the host (see ``Interception``)."""
    applied: tuple[str, ...] = field(default=())
    """Names of the policy attacks that shaped this response (evidence that they fired)."""
