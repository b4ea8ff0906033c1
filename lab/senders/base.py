"""The sender adapter contract: how the lab drives and observes a sender under test."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, ClassVar

from lab.events import Emit
from lab.known_failures import phase_key
from lab.outcomes import Status
from lab.registry import Registered, Registry
from lab.world import Topology

# Sender status values (the sender's own view, where the adapter can read it); the names
# live in lab.outcomes
SENT = Status.SENT
DEFERRED = Status.DEFERRED
BOUNCED = Status.BOUNCED


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    """With angle brackets: ``<...@lab.test>``; unique per injection."""
    mail_from: str
    rcpt_to: str
    subject: str = "mtasts-lab probe"
    smart_host: str | None = None
    """Relay through this smart host domain (its MX hosts) instead of the recipient's MX:
    the smart host's domain is then the policy domain (RFC 8461 3.4)."""

    @classmethod
    def probe(cls, rcpt_to: str, scenario: str = "", phase: str = "",
              smart_host: str | None = None) -> OutgoingMessage:
        token = uuid.uuid4().hex
        return cls(f"<{token}@sender.test>", "probe@sender.test", rcpt_to,
                   f"mtasts-lab probe {scenario} {phase}".strip(), smart_host)

    def as_bytes(self) -> bytes:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = self.rcpt_to
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = self.message_id
        msg.set_content("This message was sent by mtasts-lab to test MTA-STS enforcement.\n")
        return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class SenderEnv:
    """What the backend tells a sender: where the lab's DNS is, which ports, what to trust."""

    dns: tuple[str, int]
    smtp_port: int
    https_port: int
    ca_file: Path
    workdir: Path
    emit: Emit
    topology: Topology
    backend: str = "loopback"
    exec_prefix: tuple[str, ...] = ()
    """Prefix that runs a program where the sender lives (netns: ``ip netns exec NAME``)."""
    exec_env_flag: str = ""
    """Where ``exec_prefix`` does not hand its own environment down to the program (compose:
    ``docker exec``), the option that passes one variable by name (``-e``); see
    ``exec_argv``."""
    place: Any = None
    """Where a real MTA runs (a ``lab.senders.place.Place``; None where the backend has none)."""


    def exec_argv(self, argv: Sequence[str], env_names: Iterable[str] = ()) -> list[str]:
        """``argv`` run where the sender lives, with the variables ``env_names`` of the
        caller's environment in the program's environment. ``ip netns exec`` keeps its
        environment; ``docker exec`` gets ``-e NAME`` for each, before its last word (the
        container), and takes the value from its own environment: no value on a command
        line."""
        if not self.exec_env_flag or not self.exec_prefix:
            return [*self.exec_prefix, *argv]
        *head, target = self.exec_prefix
        flags = [word for name in env_names for word in (self.exec_env_flag, name)]
        return [*head, *flags, target, *argv]


class Sender(Registered):
    """A sender under test. Subclasses set ``name`` and register themselves.

    ``inject`` hands a message over and returns; delivery goes on in the background. Where
    the adapter can read the sender's own verdict it emits ``("sender", "status", {message_id,
    status: sent|deferred|bounced, reason, mx})`` and sets ``own_status``.
    """

    registry: ClassVar[Registry[Sender]] = Registry("sender")
    own_status: ClassVar[bool] = False
    backends: ClassVar[tuple[str, ...]] = ("loopback",)
    control: ClassVar[str] = ""
    """``positive`` (must pass everything), ``negative`` (must fail enforce attacks), or ''."""
    reports_tlsrpt: ClassVar[bool] = False
    """The sender sends TLS reports (RFC 8460) and ``flush_reports`` ends its period; the
    runner waits for the reports of such a sender, and only a short grace for the others."""
    known_failures_as: ClassVar[str] = ""
    """Another sender whose known failures this one is held to where it has none of its own
    (another version of the same program: Exim 4.98 as Exim 4.96); strict all the same."""
    smart_host: ClassVar[str] = ""
    """How the adapter relays a message through a smart host (``OutgoingMessage.smart_host``),
    in a few words; '' when it cannot: such phases are skipped with the reason."""

    @classmethod
    def check(cls) -> list[str]:
        """What is missing on this machine for this sender (empty: it can run)."""
        return []

    @classmethod
    def version(cls) -> str:
        """The program's version as installed here ('' where it has none of its own)."""
        return ""

    @classmethod
    def known_failure(cls, known: Mapping[str, str], phase: str) -> str | None:
        """This sender's reason for ``phase`` in a scenario's ``known_failures``: the entry
        ``<sender> [<phase>]`` for that phase alone, else ``<sender>`` for every phase that
        bears known failures; the sender it is held to as (``known_failures_as``) after its
        own. None: it must pass."""
        for name in (cls.name, cls.known_failures_as):
            if not name:
                continue
            for key in (phase_key(name, phase), name):
                if key in known:
                    return known[key]
        return None

    def relays(self) -> str:
        """How this sender, as started, relays through a smart host ('' when it cannot)."""
        return type(self).smart_host

    async def start(self, env: SenderEnv) -> None:
        raise NotImplementedError

    async def reset(self) -> None:
        """Forget everything learned (policy cache, sessions): called between scenarios."""
        raise NotImplementedError

    async def inject(self, message: OutgoingMessage) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def start_period(self) -> None:
        """Begin a reporting period before a phase whose report is judged: what came before
        must not be in it. The default closes the period like ``flush_reports``."""
        await self.flush_reports()

    async def flush_reports(self) -> None:
        """Close the TLS-RPT reporting period now and start delivering its reports (RFC 8460
        4.1 leaves the period to the sender; the lab makes it one phase). A sender that
        reports emits ``("sender", "tlsrpt-settled", ...)`` once every submission of the
        flush has ended, so that the runner need not wait out its deadline. The default:
        nothing to flush."""
