"""The SMTP values the relay core and the attacks exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lab.certkind import CertKind


@dataclass(frozen=True)
class Command:
    """One client command line, e.g. ``EHLO sender.test``."""

    verb: str
    """Upper-cased first word: EHLO, HELO, MAIL, RCPT, DATA, STARTTLS, QUIT ..."""
    arg: str = ""
    raw: bytes = b""
    """The line as received, CRLF included (empty for commands the core made up)."""

    def encode(self) -> bytes:
        if self.raw:
            return self.raw
        text = f"{self.verb} {self.arg}" if self.arg else self.verb
        return text.encode("utf-8", "surrogateescape") + b"\r\n"


@dataclass(frozen=True)
class Reply:
    """One complete (possibly multi-line) server reply."""

    code: int
    lines: tuple[str, ...] = ("",)
    """Text of each line without the code and separator."""
    raw: bytes = field(default=b"", compare=False, repr=False)
    """The reply as received (empty for replies made up by the core or an attack)."""

    def encode(self) -> bytes:
        if self.raw:
            return self.raw
        out = []
        for i, text in enumerate(self.lines):
            sep = " " if i == len(self.lines) - 1 else "-"
            out.append(f"{self.code}{sep}{text}".rstrip() + "\r\n")
        return "".join(out).encode("utf-8", "surrogateescape")

    def without_keyword(self, keyword: str) -> Reply:
        """The reply minus lines whose first word is ``keyword`` (e.g. an EHLO extension)."""
        kept = [ln for ln in self.lines if ln.split(" ", 1)[0].upper() != keyword.upper()]
        return Reply(self.code, tuple(kept) or ("",))

    def has_keyword(self, keyword: str) -> bool:
        return any(ln.split(" ", 1)[0].upper() == keyword.upper() for ln in self.lines[1:])


@dataclass(frozen=True)
class TlsPlan:
    """What the proxy does once the genuine MX has accepted STARTTLS.

    ``tunnel``: relay the TLS bytes untouched (sender talks TLS to the genuine MX).
    ``intercept``: terminate TLS with the sender using ``cert`` (for ``cert_name`` or the MX
    name), and open genuine TLS to the MX; relay the decrypted commands.
    ``abort``: cut the connection during the handshake: right after the 220
    (``abort_after="220"``) or once the sender's ClientHello has arrived
    (``abort_after="client-hello"``).
    ``inject`` is sent to the sender in plaintext right after the 220, in the same write
    (response injection).
    """

    mode: Literal["tunnel", "intercept", "abort"] = "tunnel"
    cert: CertKind = CertKind.VALID
    cert_name: str | None = None
    tls_max: str | None = None
    inject: bytes = b""
    abort_after: Literal["220", "client-hello"] = "220"
    extra: dict[str, str] = field(default_factory=dict)
