"""The agent inside a real-MTA container (the compose backend): ``python -m lab.senders.agent
serve <sender>``, the image's command.

It runs the sender adapter's own ``prepare`` and ``daemons`` (``lab.senders.place.
ProcessPlace``, programs run here) and relays every daemon's output to the container's stdout
as ``<tag>: <line>``, which the compose backend's place follows and hands back to the adapter.

* the lab CA is the one the runner exported to ``/run/lab/pki/lab-ca.pem``;
* DNS is the lab's (compose.yaml mounts a resolv.conf naming 10.254.0.2);
* the line ``mtasts-lab-agent: ready ca=<sha256 of the CA> root=<instance> start=<nonce>``
  says it is up (the instance is ``/var/lib/mtasts-lab/<sender>``; the nonce is new at each
  start, so a reader can tell a ready line from before a SIGHUP);
* SIGHUP: start over (a new instance for the CA now exported), then the ready line again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from lab.senders.place import MtaSetup, ProcessPlace

STATE = Path("/run/lab")
CA_EXPORTED = STATE / "pki" / "lab-ca.pem"
READY_FILE = Path("/run/mtasts-lab-agent.ready")
READY = "mtasts-lab-agent: ready ca="
INSTANCES = Path("/var/lib/mtasts-lab")


def ca_digest(path: Path) -> str:
    """The SHA-256 of a CA file's PEM (the same as ``lab.control.ca_fingerprint``)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_ready(line: str) -> tuple[str, str, str] | None:
    """(CA digest, instance root, start nonce) of a ready line, or None."""
    if not line.startswith(READY):
        return None
    digest, _, rest = line[len(READY):].partition(" ")
    fields = dict(w.partition("=")[::2] for w in rest.split())
    return digest, fields.get("root", ""), fields.get("start", "")


def split_line(line: str) -> tuple[str, str]:
    """``<tag>: <line>`` as the agent writes it: (tag, line)."""
    tag, sep, rest = line.partition(": ")
    return (tag, rest) if sep else ("", line)


class Agent:
    def __init__(self, mta: MtaSetup) -> None:
        self.mta = mta
        self.place: ProcessPlace | None = None
        self._lock = asyncio.Lock()

    def say(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def relay(self, tag: str, line: str) -> None:
        self.say(f"{tag}: {line}")

    async def reconfigure(self) -> None:
        async with self._lock:
            READY_FILE.unlink(missing_ok=True)
            if self.place is not None:
                await self.place.close()
            self.place = ProcessPlace(base=INSTANCES, fixed_root=True)
            try:
                root = await self.place.start(self.mta, CA_EXPORTED, self.relay)
            except Exception as exc:
                self.say(f"mtasts-lab-agent: failed: {exc}")
                return
            line = f"{READY}{ca_digest(CA_EXPORTED)} root={root} start={uuid.uuid4().hex}"
            READY_FILE.write_text(line + "\n")
            self.say(line)

    async def serve(self) -> int:
        from lab.control import ensure_pki  # a CA exists even for `docker-compose up` alone

        await asyncio.to_thread(ensure_pki, STATE, Path("/tmp/mtasts-lab-agent"))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP,
                                lambda: asyncio.ensure_future(self.reconfigure()))
        await self.reconfigure()
        await stop.wait()
        if self.place is not None:
            await self.place.close()
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    from lab.senders.base import Sender
    from lab.senders.mta import MtaSender

    parser = argparse.ArgumentParser(prog="python -m lab.senders.agent")
    parser.add_argument("command", choices=("serve",))
    parser.add_argument("sender")
    args = parser.parse_args(argv)
    import lab.senders

    lab.senders.load_all()
    cls = Sender.registry.get(args.sender)
    if not issubclass(cls, MtaSender):
        parser.error(f"{args.sender} is not a real-MTA sender")
    return asyncio.run(Agent(cls()).serve())


if __name__ == "__main__":
    sys.exit(main())
