"""The ``postfix`` sender on the ``compose`` backend: Postfix in the ``postfix`` container.

The container's agent (``lab.senders.compose_mta``) builds the instance with the netns
sender's own code (``PostfixSender._make_instance``: the same ``main_cf``, master.cf without
chroot and resolver YAML) and runs Postfix and postfix-mta-sts-resolver; this adapter reads
Postfix's log stream with the same parser (``PostfixLog``) and emits the same events.

``PostfixSender.start`` hands over here when ``env.backend == "compose"``: the instance
becomes a ``ComposePostfix`` (same name, same registry entry, same ``own_status``).
"""

from __future__ import annotations

import time

from lab.events import SENDER
from lab.senders.base import OutgoingMessage, SenderEnv
from lab.senders.compose_mta import POSTFIX_INSTANCE, RESOLVER_PREFIX, ComposeMtaSender
from lab.senders.postfix import PostfixPypiSender, PostfixSender, SenderFailed
from lab.senders.postfix_log import Evidence, PostfixLog, Status


async def start_on_compose(sender: PostfixSender, env: SenderEnv) -> None:
    if isinstance(sender, PostfixPypiSender):
        raise SenderFailed(f"{sender.name}: the compose image has Debian's resolver only; "
                           "use --sender postfix")
    sender.__class__ = ComposePostfix
    await sender.start(env)


class ComposePostfix(ComposeMtaSender, PostfixSender):
    service = "postfix"

    async def start(self, env: SenderEnv) -> None:
        self._compose_init()
        self.log = PostfixLog()
        started = time.monotonic()
        await self._compose_start(env)
        self._time("start", started)

    def _on_line(self, line: str) -> None:
        items: list[Evidence | Status]
        if line.startswith(RESOLVER_PREFIX):
            items = list(self.log.feed_resolver(line[len(RESOLVER_PREFIX):]))
        else:
            items = list(self.log.feed(line))
        for item in items:
            self._report(item)

    def _report(self, item: object) -> None:
        assert self.env is not None
        if isinstance(item, Evidence):
            self.env.emit(SENDER, "log", {"line": item.line, "message_id": item.message_id,
                                          "queue_id": item.queue_id, "sender": self.name})
            return
        assert isinstance(item, Status)
        sent_at = self._status_t.pop(item.message_id, None)
        if sent_at is not None:
            self._time("inject_to_status", sent_at)
        self._emit_status(item.message_id, item.status, item.reason, dsn=item.dsn, mx=item.mx,
                          relay=item.relay, queue_id=item.queue_id, log_line=item.log_line)

    async def _drop(self, queue_id: str) -> None:
        await self._exec(["postsuper", "-c", str(POSTFIX_INSTANCE / "etc"), "-d", queue_id])

    async def reset(self) -> None:
        started = time.monotonic()
        await self._compose_reset()
        self.log.forget()
        self._time("reset", started)

    async def inject(self, message: OutgoingMessage) -> None:
        self.log.expect(message.message_id, message.rcpt_to)
        self._status_t[message.message_id] = time.monotonic()
        started = time.monotonic()
        await self._inject_file(message, ["/usr/sbin/sendmail", "-C",
                                          str(POSTFIX_INSTANCE / "etc"), "-f",
                                          message.mail_from, "-i", "--", message.rcpt_to])
        self._time("inject", started)

    async def close(self) -> None:
        await self._compose_close()
