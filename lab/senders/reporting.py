"""The reference sender's TLS-RPT reporting (RFC 8460): record, flush, deliver, retry.

Each delivery attempt is noted for its policy domain (``Reporting.session``). ``flush``
closes the period: per policy domain it looks up ``_smtp._tls.<domain>`` (exactly one valid
record, else no report: 3), builds the report (4.3, 4.4) and delivers it to the record's
destinations (5.3): HTTPS POST and mail. A failed submission is retried in the background
(5.5, SHOULD) a few times with a short back-off; ``("sender", "tlsrpt-settled")`` says when
every submission of the flush has ended.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.senders.base import SenderEnv
from lab.senders.dnsclient import LookupFailure, Resolver
from lab.senders.mtasts import StsPolicy
from lab.senders.profiles import Profile
from lab.senders.smtp_outcome import TlsRequirement
from lab.senders.tlsrpt_delivery import (
    ReportDeliveryError,
    dkim_sign,
    post_https,
    send_mail,
)
from lab.senders.tlsrpt_reporter import (
    Aggregator,
    SessionResult,
    build_report,
    discover,
    encode,
    report_mail,
)


class _PolicyAnswer(Protocol):
    @property
    def policy(self) -> StsPolicy | None: ...


class ReportingSender(Protocol):
    """What reporting needs of its sender (the reference sender; no import of it here)."""

    @property
    def profile(self) -> Profile: ...
    @property
    def env(self) -> SenderEnv: ...
    @property
    def resolver(self) -> Resolver: ...
    def log(self, line: str) -> None: ...
    def emit(self, kind: str, **data: Any) -> None: ...
    async def policy_for(self, domain: str) -> _PolicyAnswer: ...

SUBMITTER = "sender.test"
ORGANIZATION = "mtasts-lab reference sender"
CONTACT = "mailto:tlsrpt-admin@sender.test"
DKIM_SELECTOR = "lab"
RETRY_DELAYS = (0.3, 1.0, 2.0)
"""Back-off before each retry of a failed submission (5.5 asks for retries for up to 24
hours; the lab's period is a phase, so the schedule is seconds)."""


def policy_lines(policy: StsPolicy) -> tuple[str, ...]:
    return ("version: STSv1", f"mode: {policy.mode}", *(f"mx: {m}" for m in policy.mx),
            f"max_age: {policy.max_age}")


@dataclass
class SessionNote:
    """Notes the results of one message's attempts for its policy domain."""

    reporting: Reporting
    domain: str
    policy: StsPolicy | None
    done: bool = False
    """A policy failure was noted: the session counts once, as that failure."""

    def _result(self, tlsa: bool, result_type: str | None = None, mx: str | None = None,
                address: str | None = None, reason: str | None = None) -> SessionResult:
        pstring: tuple[str, ...] = ()
        mx_host: tuple[str, ...] = ()
        if tlsa:
            ptype = "tlsa"
        elif self.policy is not None:
            ptype, pstring = "sts", policy_lines(self.policy)
            mx_host = tuple(self.policy.mx)
        else:
            ptype = "no-policy-found"
        return SessionResult(self.domain, ptype, pstring, mx_host,  # type: ignore[arg-type]
                             result_type, mx, address, reason)

    def failure(self, mx: str, address: str | None, result_type: str, reason: str,
                tlsa: bool) -> None:
        if not self.done:
            self.reporting.add(self._result(tlsa, result_type, mx, address, reason))

    def success(self, mx: str, address: str | None, tlsa: bool) -> None:
        if not self.done:
            self.reporting.add(self._result(tlsa, None, mx, address))


@dataclass
class Reporting:
    sender: ReportingSender
    period: Aggregator = field(default_factory=Aggregator)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _key: bytes | None = None

    def session(self, domain: str, policy: StsPolicy | None) -> SessionNote:
        return SessionNote(self, domain, policy)

    def policy_failure(self, domain: str, result_type: str, reason: str) -> None:
        """A valid STS record whose policy could not be fetched or used (4.3.2.2)."""
        self.add(SessionResult(domain, "sts", (), (), result_type, None, None, reason))

    def add(self, result: SessionResult) -> None:
        p = self.sender.profile
        if p.report_wrong_result_type and result.result_type is not None:
            result = SessionResult(result.policy_domain, result.policy_type,
                                   result.policy_string, result.mx_host, "validation-failure",
                                   result.receiving_mx_hostname, result.receiving_ip,
                                   result.failure_reason)
        self.period.add(result)

    async def reset(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        self.period.clear()
        self.started = datetime.now(UTC)

    @property
    def key(self) -> bytes:
        """The DKIM key of this run (made in memory, never written)."""
        if self._key is None:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self._key = private.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
        return self._key

    async def rua_of(self, domain: str) -> tuple[tuple[str, ...] | None, str]:
        name = f"_smtp._tls.{domain}"
        try:
            records = await self.sender.resolver.txt(name)
        except LookupFailure as exc:
            return None, f"TXT lookup of {name} failed: {exc}"
        if self.sender.profile.report_first_of_several_txt:
            records = [r for r in records if r.startswith("v=TLSRPTv1")][:1]
        rua = discover(records)
        if rua is None:
            return None, f"no single valid TLS-RPT record at {name} ({len(records)} TXT)"
        return rua, ""

    async def flush(self) -> None:
        """Close the period and deliver its reports; retries go on in the background."""
        sender = self.sender
        p = sender.profile
        end = datetime.now(UTC)
        start, self.started = self.started, end
        period = self.period.take()
        first: list[asyncio.Task[None]] = []
        for domain, results in period.items():
            rua, why = await self.rua_of(domain)
            if rua is None:
                sender.log(f"TLS-RPT: no report for {domain}: {why}")
                sender.emit("tlsrpt", domain=domain, action="none", reason=why)
                continue
            report_id = f"{end.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
            report = build_report(
                domain, results, organization=ORGANIZATION, contact=CONTACT,
                report_id=report_id, start=start, end=end,
                count_offset=(0, 1) if p.report_wrong_counts else (0, 0),
                policy_type="no-policy-found" if p.report_wrong_policy_type else None)
            chosen = [u for u in rua
                      if not (p.report_https_only and u.startswith("mailto:"))
                      and not (p.report_mail_only and u.startswith("https:"))]
            sender.log(f"TLS-RPT: report {report_id} for {domain} to {', '.join(chosen)}")
            sender.emit("tlsrpt", domain=domain, action="report", report_id=report_id,
                        rua=list(chosen))
            for uri in chosen:
                task = asyncio.create_task(self._submit(domain, uri, report, start, end,
                                                        report_id),
                                           name=f"tlsrpt {domain} {uri}")
                self.tasks.add(task)
                task.add_done_callback(self._done)
                first.append(task)
        if not first:
            sender.emit("tlsrpt-settled", pending=0)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.tasks and not task.cancelled():
            self.sender.emit("tlsrpt-settled", pending=0)

    async def _submit(self, domain: str, uri: str, report: dict[str, Any],
                      start: datetime, end: datetime, report_id: str) -> None:
        p = self.sender.profile
        delays = () if p.report_no_retry else RETRY_DELAYS
        transport = "mailto" if uri.startswith("mailto:") else "https"
        for attempt in range(len(delays) + 1):
            if attempt:
                await asyncio.sleep(delays[attempt - 1])  # the retry schedule, 5.5
            try:
                await self._deliver(domain, uri, report, start, end, report_id)
            except ReportDeliveryError as exc:
                self.sender.log(f"TLS-RPT: {uri} attempt {attempt + 1} failed: {exc}")
                self.sender.emit("tlsrpt-submit", domain=domain, uri=uri, transport=transport,
                                 attempt=attempt + 1, ok=False, error=str(exc),
                                 report_id=report_id)
                continue
            self.sender.emit("tlsrpt-submit", domain=domain, uri=uri, transport=transport,
                             attempt=attempt + 1, ok=True, report_id=report_id)
            return

    async def _deliver(self, domain: str, uri: str, report: dict[str, Any],
                       start: datetime, end: datetime, report_id: str) -> None:
        sender = self.sender
        env = sender.env
        compressed = not sender.profile.report_plain_json
        if uri.startswith("https:"):
            ctype = "application/tlsrpt+gzip" if compressed else "application/tlsrpt+json"
            if sender.profile.report_wrong_media_type:
                ctype = "application/json"
            await post_https(uri, encode(report, compressed), ctype, sender.resolver,
                             env.ca_file)
            return
        rcpt = uri.removeprefix("mailto:").partition("?")[0]
        unique = report_id.replace("-", "").replace("T", "")
        msg = report_mail(report, domain=domain, submitter=SUBMITTER,
                          mail_from=f"tlsrpt-noreply@{SUBMITTER}", rcpt=rcpt, start=start,
                          end=end, unique=unique, compressed=compressed,
                          media_type="application/json"
                          if sender.profile.report_wrong_media_type else None)
        raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        signed = dkim_sign(raw, SUBMITTER, DKIM_SELECTOR, self.key)
        await send_mail(rcpt, signed, f"tlsrpt-noreply@{SUBMITTER}", sender.resolver,
                        env.smtp_port, env.ca_file, env.emit, self._tls_for)

    async def _tls_for(self, domain: str) -> TlsRequirement:
        """Reports are not subject to MTA-STS (5.3.1); the report-honours-sts mutant asks."""
        if not self.sender.profile.report_honours_sts:
            return "opportunistic"
        decision = await self.sender.policy_for(domain)
        if decision.policy is not None and decision.policy.mode == "enforce":
            return "verify"
        return "opportunistic"
