"""What one SMTP delivery attempt of the lab's own client ends in: a ``DeliveryResult``, or
an ``SmtpError`` whose class says how to go on (TLS policy, transient, permanent) and whose
``result_type`` is the TLS-RPT failure type (RFC 8460 4.3) when TLS was the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TlsRequirement = Literal["verify", "opportunistic", "none"]
TlsState = Literal["none", "verified", "unverified"]


class SmtpError(Exception):
    """A delivery attempt failed. ``stage`` says where (connect, greeting, ehlo, starttls,
    handshake, mail, rcpt, data); ``code`` is the server's reply code when there was one."""

    kind = "error"

    def __init__(self, reason: str, *, stage: str, code: int | None = None,
                 result_type: str | None = None, tls: TlsState = "none") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage
        self.code = code
        self.result_type = result_type
        self.tls = tls


class TlsPolicyError(SmtpError):
    """The session cannot meet the TLS requirement; ``result_type`` is the TLS-RPT type."""

    kind = "tls-policy"


class TransientSmtpError(SmtpError):
    """Try again later or elsewhere: no connection, 4xx, a broken or timed-out session."""

    kind = "transient"


class PermanentSmtpError(SmtpError):
    """The server answered 5xx."""

    kind = "permanent"


@dataclass(frozen=True)
class DeliveryResult:
    """The MX accepted the message: which host and address, over what TLS, its last reply."""

    mx: str
    address: str
    tls: TlsState
    tls_version: str | None
    cipher: str | None
    reply: str
    """The server's final reply to the message data."""
    discarded_plaintext: int = 0
    """Plaintext bytes that came with the 220 to STARTTLS and were dropped (I1)."""
