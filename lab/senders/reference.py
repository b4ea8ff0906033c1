"""The reference sender: the lab's own RFC 8461 sender, the positive control.

Per message: MX lookup, policy discovery and fetch (with a cache), then each MX in
preference order with the TLS the policy demands. Under ``enforce`` a failing MX is skipped
like an unreachable one (8.4) and, when every MX fails, the message is deferred, never
bounced (5.1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.events import SENDER
from lab.senders.base import BOUNCED, DEFERRED, SENT, OutgoingMessage, Sender, SenderEnv
from lab.senders.dnsclient import DnsError, LookupFailure, NXDomain, Resolver, mail_hosts
from lab.senders.mtasts import PolicyCache, PolicyError, StsPolicy, discover, parse_policy
from lab.senders.policy_fetch import PolicyFetchError, fetch_policy
from lab.senders.smtp_client import (
    DeliveryResult,
    PermanentSmtpError,
    SmtpError,
    TlsPolicyError,
    TlsRequirement,
    deliver,
)


class OwnSender(Sender):
    """What the lab's two own senders share: the environment, tasks and events."""

    own_status = True
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
                      tls: TlsRequirement) -> DeliveryResult:
        env = self.env
        result = await deliver(address, env.smtp_port, mx, message.as_bytes(),
                               message.mail_from, message.rcpt_to, tls, env.ca_file,
                               env.emit, self.smtp_timeout)
        self.attempt(mx, address, result.tls, "delivered", result.reply)
        return result


def _tls_words(result: DeliveryResult) -> str:
    if result.tls == "none":
        return "plaintext"
    return f"{result.tls_version}, certificate {result.tls}"


def recipient_domain(rcpt_to: str) -> str:
    return rcpt_to.rpartition("@")[2].lower().rstrip(".")


def enhanced(exc: SmtpError) -> str:
    """An enhanced status code for a failed attempt, in the sender's own words."""
    if isinstance(exc, TlsPolicyError):
        return "4.7.5"
    if exc.code is not None:
        return f"{exc.code // 100}.0.0"
    return "4.4.1" if exc.stage == "connect" else "4.4.2"


@dataclass(frozen=True)
class PolicyDecision:
    policy: StsPolicy | None
    source: str
    """fetched, cached or none"""
    id: str | None
    error: str | None


class ReferenceSender(OwnSender):
    name = "reference"
    summary = "the lab's own RFC 8461 sender (positive control)"
    control = "positive"
    fetch_timeout: float = 2.0
    """The bound on one policy fetch (RFC 8461 3.3: senders MAY bound it; about a minute is
    suggested). Short here so that a trickling policy host costs the lab seconds, not
    minutes; a fetch on the lab's own networks takes milliseconds."""
    max_policy_bytes: int = 65536
    """The bound on the policy body (the RFC's suggested 64 KiB)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.cache = PolicyCache(clock)

    async def reset(self) -> None:
        self.cache.clear()

    async def policy_for(self, domain: str) -> PolicyDecision:
        """Discovery, fetch and cache for one policy domain (the recipient domain: S1)."""
        cached = self.cache.get(domain)
        txt_name = f"_mta-sts.{domain}"
        try:
            record_id = discover(await self.resolver.txt(txt_name))
            problem = None if record_id else f"no valid STS record at {txt_name}"
        except LookupFailure as exc:
            record_id, problem = None, f"TXT lookup failed: {exc}"
        if record_id is None:
            if cached is not None:  # C1: a cached policy still applies
                return PolicyDecision(cached.policy, "cached", cached.id, problem)
            return PolicyDecision(None, "none", None, problem)
        if cached is not None and cached.id == record_id:
            return PolicyDecision(cached.policy, "cached", cached.id, None)  # C2: same id
        try:
            text = await fetch_policy(domain, self.resolver, self.env.https_port,
                                      self.env.ca_file, self.fetch_timeout,
                                      self.max_policy_bytes)
            policy = parse_policy(text)
        except PolicyFetchError as exc:
            error = f"{exc.result_type}: {exc.reason}"
        except PolicyError as exc:
            error = f"sts-policy-invalid: {exc}"
        else:
            self.cache.put(domain, policy, record_id)
            return PolicyDecision(policy, "fetched", record_id, None)
        if cached is not None:  # C2: a failed fetch of a new id keeps the old policy
            return PolicyDecision(cached.policy, "cached", cached.id, error)
        return PolicyDecision(None, "none", record_id, error)

    async def deliver_message(self, message: OutgoingMessage) -> tuple[str, str, str | None]:
        domain = recipient_domain(message.rcpt_to)
        self.log(f"{message.message_id}: to {message.rcpt_to}")
        try:
            hosts = await mail_hosts(self.resolver, domain)
        except NXDomain:
            return BOUNCED, f"5.1.2 {domain}: no such domain", None
        except DnsError as exc:
            return DEFERRED, f"4.4.3 MX lookup for {domain} failed: {exc}", None
        if not hosts:
            return BOUNCED, f"5.1.10 {domain} accepts no mail (null MX)", None
        self.log(f"MX for {domain}: {', '.join(f'{p} {h}' for p, h in hosts)}")

        decision = await self.policy_for(domain)
        policy = decision.policy
        self.emit("policy", domain=domain, source=decision.source, id=decision.id,
                  mode=policy.mode if policy else None, error=decision.error)
        if policy is None:
            self.log(f"no MTA-STS policy for {domain}"
                     + (f" ({decision.error})" if decision.error else ""))
        else:
            self.log(f"MTA-STS policy for {domain} ({decision.source}, id {decision.id}): "
                     f"mode {policy.mode}, mx {', '.join(policy.mx) or '-'}, "
                     f"max_age {policy.max_age}"
                     + (f"; note: {decision.error}" if decision.error else ""))
        mode = policy.mode if policy else "none"
        failures: list[str] = []
        for _, mx in hosts:
            if mode == "enforce" and policy is not None and not policy.matches(mx):
                reason = f"4.7.5 {mx}: not an mx of the MTA-STS policy"
                self.attempt(mx, None, "none", "skipped", reason)
                self.log(f"skipping {mx}: it matches no mx pattern of the policy")
                failures.append(reason)
                continue
            if mode == "testing" and policy is not None and not policy.matches(mx):
                self.log(f"testing mode: {mx} matches no mx pattern; enforce would skip it")
            outcome = await self._try_mx(message, mx, mode, failures)
            if outcome is not None:
                return outcome
        if mode == "enforce":
            self.log(f"every MX failed the {domain} policy: deferring (never bouncing)")
        return DEFERRED, "; ".join(failures) or f"4.4.4 no usable MX for {domain}", None

    async def _try_mx(self, message: OutgoingMessage, mx: str, mode: str,
                      failures: list[str]) -> tuple[str, str, str | None] | None:
        """One MX host, each of its addresses; a status when done, None to go on."""
        try:
            addresses = await self.resolver.a(mx)
        except LookupFailure as exc:
            reason = f"4.4.3 {mx}: address lookup failed: {exc}"
            self.attempt(mx, None, "none", "failed", reason)
            failures.append(reason)
            return None
        for address in addresses:
            tls: TlsRequirement = "verify" if mode in ("enforce", "testing") else "opportunistic"
            try:
                result = await self.send_to(message, mx, address, tls)
            except SmtpError as exc:
                reason = f"{enhanced(exc)} {mx}: {exc.reason}"
                self.attempt(mx, address, exc.tls, "failed", reason)
                if isinstance(exc, PermanentSmtpError) and exc.stage in ("mail", "rcpt", "data"):
                    return BOUNCED, reason, mx
                if mode == "testing" and isinstance(exc, TlsPolicyError):
                    self.log(f"testing mode: enforce would refuse {mx} ({exc.result_type}: "
                             f"{exc.reason}); delivering without the policy's checks")
                    outcome = await self._opportunistic(message, mx, address, failures)
                    if outcome is not None:
                        return outcome
                    continue
                failures.append(reason)
                if mode != "enforce" and exc.stage == "handshake":
                    self.log(f"{mx}: TLS handshake failed; no plaintext fallback, next MX")
                continue
            return SENT, f"{mx} [{address}] accepted ({_tls_words(result)}): {result.reply}", mx
        return None

    async def _opportunistic(self, message: OutgoingMessage, mx: str, address: str,
                             failures: list[str]) -> tuple[str, str, str | None] | None:
        try:
            result = await self.send_to(message, mx, address, "opportunistic")
        except SmtpError as exc:
            reason = f"{enhanced(exc)} {mx}: {exc.reason}"
            self.attempt(mx, address, exc.tls, "failed", reason)
            if isinstance(exc, PermanentSmtpError) and exc.stage in ("mail", "rcpt", "data"):
                return BOUNCED, reason, mx
            failures.append(reason)
            return None
        return SENT, f"{mx} [{address}] accepted ({_tls_words(result)}): {result.reply}", mx
