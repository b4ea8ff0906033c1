"""What the lab's own senders share: the environment, tasks, events and SMTP delivery."""

from __future__ import annotations

import asyncio
from typing import Any

from lab.events import SENDER
from lab.senders.base import DEFERRED, OutgoingMessage, Sender, SenderEnv
from lab.senders.dnsclient import Resolver
from lab.senders.smtp_client import deliver
from lab.senders.smtp_outcome import DeliveryResult, SmtpError, TlsPolicyError, TlsRequirement
from lab.senders.smtp_tls import PLAIN_CHECKS, TlsChecks


class OwnSender(Sender):
    """What the lab's two own senders share: the environment, tasks and events."""

    own_status = True
    smart_host = "the message goes to the smart host domain's MX hosts"
    smtp_timeout: float = 30.0
    dns_timeout: float = 2.0

    def __init__(self) -> None:
        self._env: SenderEnv | None = None
        self._resolver: Resolver | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def env(self) -> SenderEnv:
        if self._env is None:
            raise RuntimeError(f"sender {self.name} not started")
        return self._env

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            raise RuntimeError(f"sender {self.name} not started")
        return self._resolver

    async def start(self, env: SenderEnv) -> None:
        self._env = env
        self._resolver = Resolver(env.dns, timeout=self.dns_timeout)

    async def reset(self) -> None:
        """Nothing learned to forget here; subclasses clear their caches."""

    async def inject(self, message: OutgoingMessage) -> None:
        _ = self.env  # fail here, not inside the task, when not started
        task = asyncio.create_task(self._run(message), name=f"{self.name} {message.message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, message: OutgoingMessage) -> None:
        try:
            status, reason, mx = await self.deliver_message(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must still end in one status, not a silent task
            status, reason, mx = DEFERRED, f"4.3.0 internal error: {exc!r}", None
        self.log(f"{message.message_id}: {status}: {reason}")
        self.emit("status", message_id=message.message_id, status=status, reason=reason, mx=mx)

    async def deliver_message(self, message: OutgoingMessage) -> tuple[str, str, str | None]:
        raise NotImplementedError

    def emit(self, kind: str, **data: Any) -> None:
        self.env.emit(SENDER, kind, data)

    def log(self, line: str) -> None:
        self.emit("log", line=line)

    def attempt(self, mx: str, address: str | None, tls: str, result: str,
                reason: str) -> None:
        self.emit("attempt", mx=mx, address=address, tls=tls, result=result, reason=reason)

    async def send_to(self, message: OutgoingMessage, mx: str, address: str,
                      tls: TlsRequirement, checks: TlsChecks = PLAIN_CHECKS) -> DeliveryResult:
        env = self.env
        result = await deliver(address, env.smtp_port, mx, message.as_bytes(),
                               message.mail_from, message.rcpt_to, tls, env.ca_file,
                               env.emit, self.smtp_timeout, checks=checks)
        self.attempt(mx, address, result.tls, "delivered", result.reply)
        return result


def tls_words(result: DeliveryResult) -> str:
    if result.tls == "none":
        return "plaintext"
    return f"{result.tls_version}, certificate {result.tls}"


def recipient_domain(rcpt_to: str) -> str:
    return rcpt_to.rpartition("@")[2].lower().rstrip(".")


def next_hop(message: OutgoingMessage) -> str:
    """The domain whose MX hosts receive the message: the smart host's, else the
    recipient's."""
    if message.smart_host:
        return message.smart_host.lower().rstrip(".")
    return recipient_domain(message.rcpt_to)


def enhanced(exc: SmtpError) -> str:
    """An enhanced status code for a failed attempt, in the sender's own words."""
    if isinstance(exc, TlsPolicyError):
        return "4.7.5"
    if exc.code is not None:
        return f"{exc.code // 100}.0.0"
    return "4.4.1" if exc.stage == "connect" else "4.4.2"
