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
* SIGHUP: start over (a new instance for the CA now exported), then the ready line again;
* commands: ``/run/lab/agent-<sender>.sock`` (the control API's transport, JSON over HTTP on
  a unix socket, mode 0600) runs a command here and answers its exit code and output:
  ``POST /run {argv, stdin (base64 or null), timeout}`` -> ``{rc, output}``. The place on the
  host uses it instead of ``docker exec``, which costs a round trip through dockerd,
  containerd and runc per command (0.1 to 0.3 s, several per scenario); the socket is served
  before the first ready line and stays across a SIGHUP;
* ``POST /restart {tag, between}``: stop that one daemon, run ``between`` (an argv, may be
  empty), start it again in the same instance and answer once it is ready, as a place on
  this host restarts a daemon (a SIGHUP would start every daemon over in a new instance).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.senders.place import MtaSetup, PlaceError, ProcessPlace

if TYPE_CHECKING:
    from lab.control import Request

STATE = Path("/run/lab")
CA_EXPORTED = STATE / "pki" / "lab-ca.pem"
READY_FILE = Path("/run/mtasts-lab-agent.ready")
READY = "mtasts-lab-agent: ready ca="
INSTANCES = Path("/var/lib/mtasts-lab")
TIMED_OUT = 124
"""The exit code of a command the agent killed at its timeout (as timeout(1) says it)."""


def command_socket(state: Path, sender: str) -> Path:
    """Where the agent of ``sender`` answers commands (in the shared run directory)."""
    return state / f"agent-{sender}.sock"


async def run_command(argv: Sequence[str], stdin: bytes | None,
                      timeout: float) -> tuple[int, str]:
    """Run ``argv`` here to completion: (exit code, stdout and stderr merged). At the
    timeout the command is killed and the code is ``TIMED_OUT``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None
            else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    except OSError as exc:
        return 127, f"{argv[0] if argv else '?'}: {exc}"
    output = bytearray()

    async def converse() -> None:
        assert proc.stdout is not None
        if stdin is not None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError):  # it exited without reading all
                proc.stdin.write(stdin)
                await proc.stdin.drain()
            proc.stdin.close()
        while chunk := await proc.stdout.read(65536):
            output.extend(chunk)
        await proc.wait()

    try:
        await asyncio.wait_for(converse(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return TIMED_OUT, output.decode(errors="replace") + \
            f"\n(killed: no exit within {timeout:g} s)"
    return proc.returncode if proc.returncode is not None else -1, \
        output.decode(errors="replace")


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


def _is_argv(value: object) -> bool:
    """A command line as JSON carries it: a list of strings (maybe empty)."""
    return isinstance(value, list) and all(isinstance(a, str) for a in value)


class Agent:
    def __init__(self, mta: MtaSetup) -> None:
        self.mta = mta
        self.place: ProcessPlace | None = None
        self._lock = asyncio.Lock()

    async def handle(self, request: Request) -> tuple[int, Any]:
        """The command socket: ``GET /health`` (the sender and its ready line, '' while it
        starts), ``POST /run``, ``POST /restart``."""
        if request.method == "GET" and request.path == "/health":
            ready = READY_FILE.read_text().strip() if READY_FILE.exists() else ""
            return 200, {"sender": self.mta.name, "ready": ready}
        if request.method == "POST" and request.path == "/run":
            body = request.body if isinstance(request.body, dict) else {}
            argv = body.get("argv")
            if not _is_argv(argv) or not argv:
                return 400, {"error": "argv: a non-empty list of strings is needed"}
            raw = body.get("stdin")
            stdin = base64.b64decode(raw) if isinstance(raw, str) else None
            rc, output = await run_command(argv, stdin, float(body.get("timeout", 20.0)))
            return 200, {"rc": rc, "output": output}
        if request.method == "POST" and request.path == "/restart":
            return await self.restart(request.body)
        return 404, {"error": f"no {request.method} {request.path}"}

    async def restart(self, body: object) -> tuple[int, Any]:
        body = body if isinstance(body, dict) else {}
        tag, between = body.get("tag"), body.get("between", [])
        if not isinstance(tag, str) or not tag:
            return 400, {"error": "tag: the daemon's tag is needed"}
        if not _is_argv(between):
            return 400, {"error": "between: a list of strings (an argv) or []"}
        async with self._lock:
            if self.place is None or self.place.root is None:
                return 409, {"error": "no instance is running (the agent is starting over)"}
            try:
                await self.place.restart(tag, between)
            except PlaceError as exc:
                return 500, {"error": str(exc)}
        return 200, {"restarted": tag}

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
        # a CA exists even for `docker-compose up` alone
        from lab.control import ControlSocket, ensure_pki

        await asyncio.to_thread(ensure_pki, STATE, Path("/tmp/mtasts-lab-agent"))
        commands = ControlSocket(self.handle)
        await commands.serve(command_socket(STATE, self.mta.name))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP,
                                lambda: asyncio.ensure_future(self.reconfigure()))
        await self.reconfigure()
        await stop.wait()
        await commands.close()
        command_socket(STATE, self.mta.name).unlink(missing_ok=True)
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
