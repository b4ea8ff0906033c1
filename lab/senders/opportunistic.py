"""The opportunistic sender: the negative control, no MTA-STS at all.

MX lookup only; the first MX that answers; STARTTLS when offered with no certificate checks;
when the TLS handshake fails, or the TLS session breaks before the message is accepted, it
reconnects and delivers in plaintext, as many real MTAs do.
"""

from __future__ import annotations

from lab.senders.base import DEFERRED, SENT, OutgoingMessage
from lab.senders.dnsclient import LookupFailure, mail_hosts
from lab.senders.own import OwnSender, enhanced, next_hop
from lab.senders.smtp_outcome import DeliveryResult, SmtpError, TlsRequirement


class OpportunisticSender(OwnSender):
    name = "opportunistic"
    summary = "STARTTLS when offered, no checks, plaintext fallback (negative control)"
    control = "negative"

    async def deliver_message(self, message: OutgoingMessage) -> tuple[str, str, str | None]:
        domain = next_hop(message)
        self.log(f"{message.message_id}: to {message.rcpt_to}"
                 + (f" through the smart host {domain}" if message.smart_host else ""))
        self.emit("policy", domain=domain, source="none", id=None, mode=None,
                  error="this sender does not implement MTA-STS")
        try:
            hosts = await mail_hosts(self.resolver, domain)
        except LookupFailure as exc:
            return DEFERRED, f"4.4.3 MX lookup for {domain} failed: {exc}", None
        failures: list[str] = []
        for _, mx in hosts:
            try:
                addresses = await self.resolver.a(mx)
            except LookupFailure as exc:
                failures.append(f"4.4.3 {mx}: {exc}")
                self.attempt(mx, None, "none", "failed", failures[-1])
                continue
            for address in addresses:
                result = await self._attempt(message, mx, address, "opportunistic", failures)
                if isinstance(result, SmtpError) and _tls_trouble(result):
                    self.log(f"{mx}: TLS failed ({result.stage}); reconnecting in plaintext")
                    result = await self._attempt(message, mx, address, "none", failures)
                if isinstance(result, DeliveryResult):
                    how = "plaintext" if result.tls == "none" else f"TLS {result.tls_version}"
                    return SENT, f"{mx} [{address}] accepted ({how}): {result.reply}", mx
        return DEFERRED, "; ".join(failures) or f"4.4.4 no usable MX for {domain}", None

    async def _attempt(self, message: OutgoingMessage, mx: str, address: str,
                       tls: TlsRequirement, failures: list[str]) -> DeliveryResult | SmtpError:
        try:
            return await self.send_to(message, mx, address, tls)
        except SmtpError as exc:
            reason = f"{enhanced(exc)} {mx}: {exc.reason}"
            self.attempt(mx, address, exc.tls, "failed", reason)
            failures.append(reason)
            return exc


def _tls_trouble(exc: SmtpError) -> bool:
    """The handshake failed, or the connection broke (no reply) while TLS was up."""
    return exc.stage == "handshake" or (exc.tls != "none" and exc.code is None)
