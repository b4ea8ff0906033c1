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
from typing import Any, ClassVar

from lab.senders.base import BOUNCED, DEFERRED, SENT, OutgoingMessage
from lab.senders.dane import Tlsa
from lab.senders.dnsclient import DnsError, LookupFailure, NXDomain, mail_hosts
from lab.senders.mtasts import PolicyCache, PolicyError, StsPolicy, discover, parse_policy
from lab.senders.own import OwnSender, enhanced, next_hop, recipient_domain, tls_words
from lab.senders.policy_fetch import HttpCache, PolicyFetchError, fetch_policy
from lab.senders.profiles import BY_NAME, COMPLIANT, Profile, profile_names
from lab.senders.reporting import Reporting
from lab.senders.smtp_outcome import PermanentSmtpError, SmtpError, TlsPolicyError, TlsRequirement
from lab.senders.smtp_tls import PLAIN_CHECKS, TlsChecks

__all__ = ["OwnSender", "ReferenceSender", "enhanced", "recipient_domain"]


@dataclass(frozen=True)
class PolicyDecision:
    policy: StsPolicy | None
    source: str
    """fetched, cached or none"""
    id: str | None
    error: str | None


_PROFILED: dict[str, type[ReferenceSender]] = {}


class ReferenceSender(OwnSender):
    name = "reference"
    summary = "the lab's own RFC 8461 sender (positive control)"
    control = "positive"
    reports_tlsrpt = True
    profile: ClassVar[Profile] = COMPLIANT
    """Its switches (lab.senders.profiles); ``reference:<profile>`` turns one on."""
    fetch_timeout: float = 8.0
    """The bound on one policy fetch (RFC 8461 3.3: senders MAY bound it; about a minute is
    suggested). Short here so that a trickling policy host costs the lab seconds, not
    minutes; a fetch on the lab's own networks takes milliseconds."""
    max_policy_bytes: int = 65536
    """The bound on the policy body (the RFC's suggested 64 KiB)."""
    refresh_every: float = 86400.0
    """Proactive refresh (RFC 8461 3.3 SHOULD, 10.2): a cached policy is fetched again at
    half its max_age, and at least once a day (the RFC's suggested frequency)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.cache = PolicyCache(clock, self.profile)
        self.http_cache: HttpCache | None = {} if self.profile.http_caching else None
        self._background: dict[str, asyncio.Task[Any]] = {}
        self.reporting = Reporting(self)
        self._refresh: dict[str, asyncio.Task[None]] = {}

    @classmethod
    def profiles(cls) -> list[str]:
        return profile_names() if cls.profile is COMPLIANT else []

    @classmethod
    def with_profile(cls, profile: str) -> type[ReferenceSender]:
        """The reference sender with one profile's switch on (KeyError: no such profile)."""
        spec = BY_NAME[profile]
        made = _PROFILED.get(spec.name)
        if made is None:
            made = type(f"Reference_{spec.switch}", (cls,), {
                "profile": spec.profile, "control": "",
                "summary": f"reference {spec.kind}: {spec.says} ({spec.rule})"})
            made.name = f"{cls.name}:{spec.name}"  # set afterwards: not a plugin of its own
            _PROFILED[spec.name] = made
        return made

    async def reset(self) -> None:
        tasks = [*self._background.values(), *self._refresh.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        await self.reporting.reset()
        self._refresh.clear()
        self.cache.clear()
        if self.http_cache is not None:
            self.http_cache.clear()

    async def close(self) -> None:
        await self.reset()
        await super().close()

    async def flush_reports(self) -> None:
        await self.reporting.flush()

    async def policy_for(self, domain: str) -> PolicyDecision:
        """Discovery, fetch and cache for one policy domain (the recipient domain: S1)."""
        p = self.profile
        running = self._background.get(domain)
        if running is not None:  # background-fetch: one fetch at a time per domain
            await asyncio.gather(running, return_exceptions=True)
        cached = self.cache.get(domain)
        if p.ignore_id_while_cached and cached is not None:
            return PolicyDecision(cached.policy, "cached", cached.id, None)
        txt_name = f"_mta-sts.{domain}"
        dns_failed = False
        try:
            records = await self.resolver.txt(txt_name, follow_cname=not p.ignore_cname,
                                              joiner=b" " if p.txt_join_spaces else b"")
            record_id = discover(records, p)
            problem = None if record_id else f"no valid STS record at {txt_name}"
        except LookupFailure as exc:
            record_id, problem = None, f"TXT lookup failed: {exc}"
            dns_failed = isinstance(exc, DnsError)
        if record_id is None:
            if cached is not None and not p.drop_cache_without_txt:
                return PolicyDecision(cached.policy, "cached", cached.id, problem)  # C1
            self.cache.drop(domain)
            if dns_failed and p.defer_on_servfail:
                return PolicyDecision(None, "unknown", None, problem)
            parent = domain.partition(".")[2]
            if p.parent_fallback and parent.count(".") >= 1:
                return await self.policy_for(parent)
            return PolicyDecision(None, "none", None, problem)
        if cached is not None and cached.id == record_id and not p.refetch_always:
            return PolicyDecision(cached.policy, "cached", cached.id, None)  # C2: same id
        if cached is None and p.background_first_fetch:
            task = asyncio.create_task(self._fetch(domain, record_id),
                                       name=f"{self.name} background fetch {domain}")
            self._background[domain] = task
            task.add_done_callback(lambda _: self._background.pop(domain, None))
            return PolicyDecision(None, "none", record_id,
                                  "first contact: the policy is fetched in the background")
        policy, error = await self._fetch(domain, record_id)
        if policy is not None:
            return PolicyDecision(policy, "fetched", record_id, None)
        if cached is not None and not p.failed_fetch_wipes:
            return PolicyDecision(cached.policy, "cached", cached.id, error)  # C2: keep
        self.cache.drop(domain)
        return PolicyDecision(None, "none", record_id, error)

    async def _fetch(self, domain: str, record_id: str) -> tuple[StsPolicy | None, str | None]:
        """Fetch and parse the policy; cache it when valid."""
        try:
            text = await fetch_policy(domain, self.resolver, self.env.https_port,
                                      self.env.ca_file, self.fetch_timeout,
                                      self.max_policy_bytes, profile=self.profile,
                                      http_cache=self.http_cache)
            policy = parse_policy(text, self.profile)
        except PolicyFetchError as exc:
            self.reporting.policy_failure(domain, exc.result_type, exc.reason)
            return None, f"{exc.result_type}: {exc.reason}"
        except PolicyError as exc:
            self.reporting.policy_failure(domain, "sts-policy-invalid", str(exc))
            return None, f"sts-policy-invalid: {exc}"
        self.cache.put(domain, policy, record_id)
        self._schedule_refresh(domain, policy.max_age)
        return policy, None

    def _schedule_refresh(self, domain: str, max_age: int) -> None:
        """Refresh the cached policy of ``domain`` before it expires (RFC 8461 3.3 SHOULD):
        an attacker must then block every fetch over the policy's lifetime, not only the
        one at expiry (10.2)."""
        if self.profile.no_proactive_refresh or max_age <= 0:
            return
        old = self._refresh.pop(domain, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        delay = min(max_age / 2, self.refresh_every)
        task = asyncio.create_task(self._refresh_later(domain, delay),
                                   name=f"{self.name} refresh {domain}")
        self._refresh[domain] = task
        task.add_done_callback(lambda t: self._refresh.pop(domain, None)
                               if self._refresh.get(domain) is t else None)

    async def _refresh_later(self, domain: str, delay: float) -> None:
        """Wait, then look for the record and fetch the policy again, whatever its id (10.2:
        a background refresh regardless of the id). A failure keeps the cached policy and
        is logged (3.3: alert the administrator); the next try follows ``delay`` later while
        the cached policy lives."""
        while True:
            await asyncio.sleep(delay)
            cached = self.cache.get(domain)
            if cached is None:
                return
            p = self.profile
            try:
                records = await self.resolver.txt(f"_mta-sts.{domain}",
                                                  follow_cname=not p.ignore_cname,
                                                  joiner=b" " if p.txt_join_spaces else b"")
                record_id = discover(records, p)
                error = None if record_id else f"no valid STS record at _mta-sts.{domain}"
            except LookupFailure as exc:
                record_id, error = None, f"TXT lookup failed: {exc}"
            if record_id is not None:
                policy, error = await self._fetch(domain, record_id)
                if policy is not None:
                    self.log(f"refreshed the MTA-STS policy of {domain} before it expired "
                             f"(id {record_id}, max_age {policy.max_age})")
                    return  # _fetch scheduled the next refresh
            if cached.policy.mode != "none":
                self.log(f"proactive refresh of the {domain} policy failed ({error}); the "
                         "cached policy stays until it expires")

    async def tlsa_for(self, mx: str) -> tuple[Tlsa, ...]:
        """Usable TLSA records for ``mx``, counted only from a DNSSEC-validated answer."""
        name = f"_25._tcp.{mx}"
        try:
            records, authenticated = await self.resolver.tlsa(name)
        except LookupFailure as exc:
            self.log(f"TLSA lookup for {name} failed ({exc.detail}): no DANE")
            return ()
        if records and not authenticated and not self.profile.dane_without_ad:
            self.log(f"TLSA at {name} is not DNSSEC-validated (no AD bit): ignored")
            return ()
        usable = tuple(r for r in records if r.usable)
        if usable:
            self.log(f"DANE applies to {mx}: {', '.join(str(r) for r in usable)}")
        return usable

    async def deliver_message(self, message: OutgoingMessage) -> tuple[str, str, str | None]:
        domain = next_hop(message)  # the smart host's domain when relaying (RFC 8461 3.4)
        self.log(f"{message.message_id}: to {message.rcpt_to}"
                 + (f" through the smart host {domain}" if message.smart_host else ""))
        try:
            hosts = await mail_hosts(self.resolver, domain)
        except NXDomain:
            return BOUNCED, f"5.1.2 {domain}: no such domain", None
        except DnsError as exc:
            return DEFERRED, f"4.4.3 MX lookup for {domain} failed: {exc}", None
        if not hosts:
            return BOUNCED, f"5.1.10 {domain} accepts no mail (null MX)", None
        self.log(f"MX for {domain}: {', '.join(f'{p} {h}' for p, h in hosts)}")

        policy_domain = domain
        if message.smart_host and self.profile.recipient_policy_via_smart_host:
            policy_domain = recipient_domain(message.rcpt_to)
        decision = await self.policy_for(policy_domain)
        domain = policy_domain
        if decision.source == "unknown":  # defer-on-servfail
            return DEFERRED, f"4.4.3 MTA-STS policy of {domain} unknown: {decision.error}", None
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
        p = self.profile
        failures: list[str] = []
        note = self.reporting.session(domain, policy)
        if policy is None and decision.source == "none" and decision.error \
                and decision.error.startswith("sts-"):
            note.done = True  # the session counted once, as the policy failure (4.3.2.2)
        for _, mx in hosts:
            if mode == "enforce" and policy is not None and not p.skip_mx_match \
                    and not policy.matches(mx, p):
                reason = f"4.7.5 {mx}: not an mx of the MTA-STS policy"
                self.attempt(mx, None, "none", "skipped", reason)
                self.log(f"skipping {mx}: it matches no mx pattern of the policy")
                failures.append(reason)
                if p.defer_not_next_mx:
                    break
                continue
            if mode == "testing" and policy is not None and not policy.matches(mx, p):
                self.log(f"testing mode: {mx} matches no mx pattern; enforce would skip it")
            patterns = policy.mx if policy is not None else ()
            outcome = await self._try_mx(message, mx, mode, failures, patterns, note)
            if outcome is not None:
                return outcome
            if mode == "enforce" and p.defer_not_next_mx:
                self.log(f"{mx} failed the policy: deferring without trying the next MX")
                break
        if mode == "enforce" and p.bounce_without_recheck:
            return BOUNCED, "5.7.5 " + ("; ".join(failures) or f"no usable MX for {domain}"), None
        if mode == "enforce":
            self.log(f"every MX failed the {domain} policy: deferring (never bouncing)")
        return DEFERRED, "; ".join(failures) or f"4.4.4 no usable MX for {domain}", None

    async def _try_mx(self, message: OutgoingMessage, mx: str, mode: str,
                      failures: list[str], patterns: tuple[str, ...] = (),
                      note: Any = None) -> tuple[str, str, str | None] | None:
        """One MX host, each of its addresses; a status when done, None to go on.

        Where DNSSEC-validated TLSA records exist, DANE decides the certificate and TLS is
        required whatever the MTA-STS mode (RFC 8461 2: MTA-STS never overrides DANE)."""
        p = self.profile
        tlsa = await self.tlsa_for(mx)
        checks = TlsChecks(p, tlsa, patterns)
        try:
            addresses = await self.resolver.a(mx)
        except LookupFailure as exc:
            reason = f"4.4.3 {mx}: address lookup failed: {exc}"
            self.attempt(mx, None, "none", "failed", reason)
            failures.append(reason)
            return None
        for address in addresses:
            verify = mode in ("enforce", "testing") or bool(tlsa) or p.strict_tls_always
            tls: TlsRequirement = "verify" if verify else "opportunistic"
            try:
                result = await self.send_to(message, mx, address, tls, checks)
            except SmtpError as exc:
                reason = f"{enhanced(exc)} {mx}: {exc.reason}"
                self.attempt(mx, address, exc.tls, "failed", reason)
                if note is not None and exc.result_type:
                    note.failure(mx, address, exc.result_type, exc.reason, bool(tlsa))
                if isinstance(exc, PermanentSmtpError) and exc.stage in ("mail", "rcpt", "data"):
                    return BOUNCED, reason, mx
                dane_failed = exc.result_type == "tlsa-invalid"
                if dane_failed and p.sts_overrides_dane and mode == "enforce":
                    self.log(f"DANE failed for {mx}; trying the MTA-STS checks instead")
                    outcome = await self._verified(message, mx, address, patterns, failures)
                    if outcome is not None:
                        return outcome
                    continue
                if p.plaintext_fallback and isinstance(exc, TlsPolicyError) \
                        and exc.stage == "starttls":
                    outcome = await self._opportunistic(message, mx, address, failures)
                    if outcome is not None:
                        return outcome
                    continue
                if mode == "testing" and isinstance(exc, TlsPolicyError) and not tlsa \
                        and not p.strict_tls_always:
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
            if note is not None and result.tls != "none":
                note.success(mx, address, bool(tlsa))
            elif note is not None:
                note.failure(mx, address, "starttls-not-supported",
                             "delivered in plaintext: STARTTLS not offered", bool(tlsa))
            return SENT, f"{mx} [{address}] accepted ({tls_words(result)}): {result.reply}", mx
        return None

    async def _verified(self, message: OutgoingMessage, mx: str, address: str,
                        patterns: tuple[str, ...], failures: list[str]
                        ) -> tuple[str, str, str | None] | None:
        return await self._opportunistic(message, mx, address, failures,
                                         "verify", TlsChecks(self.profile, (), patterns))

    async def _opportunistic(self, message: OutgoingMessage, mx: str, address: str,
                             failures: list[str], tls: TlsRequirement = "opportunistic",
                             checks: TlsChecks = PLAIN_CHECKS
                             ) -> tuple[str, str, str | None] | None:
        try:
            result = await self.send_to(message, mx, address, tls, checks)
        except SmtpError as exc:
            reason = f"{enhanced(exc)} {mx}: {exc.reason}"
            self.attempt(mx, address, exc.tls, "failed", reason)
            if isinstance(exc, PermanentSmtpError) and exc.stage in ("mail", "rcpt", "data"):
                return BOUNCED, reason, mx
            failures.append(reason)
            return None
        return SENT, f"{mx} [{address}] accepted ({tls_words(result)}): {result.reply}", mx
