"""The common part of every real-MTA adapter: driving an MTA over the ``Place`` it is given.

A subclass says what its MTA is (``prepare``, ``daemons``, ``inject``, ``reset``,
``on_line``); this class starts it where the backend says (``SenderEnv.place``), reports the
MTA's own decisions as ``("sender", "status", ...)`` and its log lines as ``("sender", "log",
...)``, drops a deferred message (the first deferral is the decision; its retries would only
muddle the next phases) and keeps timings.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

from lab import images
from lab.events import SENDER
from lab.senders.base import DEFERRED, Sender, SenderEnv
from lab.senders.place import Daemon, Place

CMD_TIMEOUT_S = 20.0


class InItsImage:
    """For an MTA that runs only in its container image (compose): its version is what the
    image table says (lab/images.txt) and this host needs nothing for it (the compose place
    checks the image). Put first among the bases."""

    name: ClassVar[str]

    @classmethod
    def check(cls) -> list[str]:
        return []

    @classmethod
    def version(cls) -> str:
        return images.version(cls.name)


class SenderFailed(Exception):
    """The sender under test could not be started or driven; the message says why."""


class MtaSender(Sender):
    """A real MTA driven over a ``Place``. Subclasses set ``name`` and the hooks below."""

    own_status: ClassVar[bool] = True
    backends: ClassVar[tuple[str, ...]] = ("netns", "compose")

    def __init__(self) -> None:
        self.env: SenderEnv | None = None
        self.place: Place | None = None
        self.root: Path | None = None
        self.timings: dict[str, list[float]] = {}
        self._status_t: dict[str, float] = {}
        self._drops: set[asyncio.Task[None]] = set()

    # -- what a subclass says ---------------------------------------------------------------

    def prepare(self, root: Path, ca_file: Path) -> None:
        raise NotImplementedError

    def daemons(self, root: Path) -> list[Daemon]:
        raise NotImplementedError

    def on_line(self, tag: str, line: str) -> None:
        """One line of the MTA's logs (``tag`` names which)."""
        raise NotImplementedError

    async def drop(self, queue_id: str) -> None:
        """Delete one message from the queue (after its first deferral)."""

    async def reset(self) -> None:
        raise NotImplementedError

    # -- the contract -----------------------------------------------------------------------

    def _time(self, key: str, since: float) -> None:
        self.timings.setdefault(key, []).append(time.monotonic() - since)

    async def start(self, env: SenderEnv) -> None:
        place = env.place
        if not isinstance(place, Place):
            raise SenderFailed(f"{self.name}: the {env.backend} backend gives no place to run "
                               "a real MTA")
        if env.backend not in self.backends:
            raise SenderFailed(f"{self.name} runs on the {', '.join(self.backends)} backend, "
                               f"not {env.backend}")
        missing = self.check() if place.local else []
        if missing:
            raise SenderFailed(f"{self.name}: missing " + "; ".join(missing))
        started = time.monotonic()
        self.env, self.place = env, place
        self.root = await place.start(self, env.ca_file, self.on_line)
        self._time("start", started)

    async def run(self, *argv: str, stdin: bytes | None = None,
                  check: bool = True) -> str:
        """Run a command where the MTA runs; a non-zero exit fails the sender (``check``)."""
        assert self.place is not None, "start() first"
        rc, out = await self.place.run(argv, stdin=stdin, timeout=CMD_TIMEOUT_S)
        if rc != 0 and check:
            raise SenderFailed(f"{self.name}: {' '.join(argv)} exited {rc}: "
                               f"{out.strip()[-500:]}")
        return out

    def emit_log(self, line: str, message_id: str, queue_id: str) -> None:
        assert self.env is not None
        self.env.emit(SENDER, "log", {"line": line, "message_id": message_id,
                                      "queue_id": queue_id, "sender": self.name})

    def emit_status(self, message_id: str, status: str, reason: str, **extra: Any) -> None:
        assert self.env is not None
        sent_at = self._status_t.pop(message_id, None)
        if sent_at is not None:
            self._time("inject_to_status", sent_at)
        self.env.emit(SENDER, "status", {"message_id": message_id, "status": status,
                                         "reason": reason, **extra, "sender": self.name})
        if status == DEFERRED and extra.get("queue_id") and self.drops_deferred():
            task = asyncio.ensure_future(self.drop(str(extra["queue_id"])))
            self._drops.add(task)
            task.add_done_callback(self._drops.discard)

    def drops_deferred(self) -> bool:
        return True

    def injected(self, message_id: str) -> None:
        self._status_t[message_id] = time.monotonic()

    async def settle(self) -> None:
        """Let pending queue deletions of the old scenario finish (start of a reset)."""
        if self._drops:
            await asyncio.wait(list(self._drops), timeout=CMD_TIMEOUT_S)
        self._status_t.clear()

    async def close(self) -> None:
        """Stop the MTA and remove its instance. Idempotent."""
        await self.settle()
        for task in list(self._drops):
            task.cancel()
        place, self.place = self.place, None
        if place is not None:
            await place.close()
        self.root = None
