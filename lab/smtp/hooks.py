"""The hook interface of the relay core: what an SMTP attack implements, and what it sees.

The core owns it (as mitmproxy's layers define the hooks its addons implement);
``lab.attacks.base.SmtpAttack`` implements it with do-nothing defaults. Every hook is called
in attack order; see ``lab.smtp.relay`` for when.
"""

from __future__ import annotations

from typing import Protocol

from lab.smtp.types import Command, Reply, TlsPlan


class FlowView(Protocol):
    """What the relay core shows an SMTP attack about one proxied connection."""

    @property
    def mx_name(self) -> str: ...

    @property
    def client_tls(self) -> str:
        """``none``, ``tunnel`` (genuine TLS relayed) or ``intercepted``."""
        ...

    def fire(self, attack: str, detail: str) -> None:
        """Record that the attack did something (the evidence every verdict needs)."""
        ...

    def cut(self, reason: str) -> None:
        """Close both legs now, answering nothing: the hook's command or reply is not
        relayed (models a network fault, e.g. a reset)."""
        ...


class SmtpHooks(Protocol):
    """What the relay core calls. ``name`` is credited when a TLS plan cuts the connection."""

    @property
    def name(self) -> str: ...

    def targets(self, mx_host: str) -> bool:
        """True when the hooks apply to connections to ``mx_host``."""
        ...

    def on_greeting(self, flow: FlowView, reply: Reply) -> Reply: ...

    def on_command(self, flow: FlowView, command: Command) -> Command | Reply:
        """The command to forward, or a reply to answer the sender directly."""
        ...

    def on_reply(self, flow: FlowView, command: Command, reply: Reply) -> Reply: ...

    def on_starttls(self, flow: FlowView) -> TlsPlan | None:
        """Called when the genuine MX answered 220 to STARTTLS. None: no opinion."""
        ...
