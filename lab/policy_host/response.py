"""What the policy host answers for one domain: data that policy attacks transform."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.pki import CertKind


@dataclass(frozen=True)
class PolicyResponse:
    status: int = 200
    reason: str = "OK"
    content_type: str | None = "text/plain"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers (Location, ETag, Cache-Control ...)."""
    cert: CertKind = CertKind.VALID
    """The certificate the host presents for mta-sts.<domain>."""
    trickle_bytes_per_s: float | None = None
    """Send the body slowly (a body that trickles)."""
    reachable: bool = True
    """False: the host resets connections (policy host down)."""
    applied: tuple[str, ...] = field(default=())
    """Names of the policy attacks that shaped this response (evidence that they fired)."""
