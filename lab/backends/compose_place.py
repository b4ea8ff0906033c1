"""The compose backend's ``Place``: a real MTA runs in its own container.

The container's agent (``lab.senders.agent``) runs the adapter's own ``prepare`` and
``daemons`` and writes each daemon's output as ``<tag>: <line>`` on its stdout. This place
starts the service with docker-compose when it is not running (or sends the agent SIGHUP:
a new instance for this run's CA), waits for the agent's ready line with this run's CA (it
names the instance root), follows the container's log (Docker SDK) and hands every line back
as ``on_line(tag, line)``. Commands go to the agent's command socket in the shared run
directory (``lab.senders.agent.command_socket``: a few milliseconds each); an agent without
one (an image built before it) gets ``docker exec``, a command's input then through a file
in the shared run directory (``exec_run`` has no stdin).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import shlex
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.backends import compose_docker as cd
from lab.control import ControlClient, ControlError
from lab.senders.agent import READY_FILE, ca_digest, command_socket, parse_ready, split_line
from lab.senders.place import CMD_TIMEOUT_S, LineSink, MtaSetup, PlaceError

START_TIMEOUT_S = float(os.environ.get("MTASTS_LAB_COMPOSE_READY_S", "120"))
"""A deadline, not a wait: a loaded 2-core host needs a generous one."""


class ComposePlace:
    local = False

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._docker: Any = None
        self._ctr: Any = None
        self._follower: cd.LogFollower | None = None
        self._on_line: LineSink | None = None
        self._want = ""
        self._ready: asyncio.Event = asyncio.Event()
        self._root = ""
        self._stale = ""
        self._start = ""
        self._agent: ControlClient | None = None

    def _line(self, line: str) -> None:
        ready = parse_ready(line)
        if ready is not None:
            # this run's CA, and a new instance (not a line from before a SIGHUP)
            if ready[0] == self._want and ready[2] != self._stale:
                self._root, self._start = ready[1], ready[2]
                self._ready.set()
            return
        if self._on_line is not None and self._ready.is_set():
            self._on_line(*split_line(line))

    async def start(self, mta: MtaSetup, ca_file: Path, on_line: LineSink) -> Path:
        service = mta.name
        self._docker = await asyncio.to_thread(cd.client)
        ctr = await asyncio.to_thread(cd.container, self._docker, service)
        if service not in cd.SENDER_IMAGES and ctr is None:
            # an MTA image of one's own: its service comes from an override file, brought up
            # before the run (docs/COMPOSE.md)
            raise PlaceError(f"{service}: no container image for it on the compose backend "
                             f"(images: {', '.join(sorted(cd.SENDER_IMAGES))}) and no running "
                             f"container of a compose service {service!r} in project "
                             f"{cd.PROJECT} (bring your override file up first)")
        if ctr is None:
            try:
                await asyncio.to_thread(self._docker.images.get, cd.SENDER_IMAGES[service])
            except Exception:
                raise PlaceError(f"image {cd.SENDER_IMAGES[service]} missing "
                                 "(scripts/build-images)") from None
        self._on_line = on_line
        self._want = ca_digest(ca_file)
        since = time.time() - 1
        if ctr is None:
            profile = cd.SENDER_PROFILES.get(service)
            args = ["--profile", profile] if profile else []
            await cd.compose(self.run_dir, *args, "up", "-d", "--no-build", service)
            ctr = await asyncio.to_thread(cd.container, self._docker, service)
            if ctr is None:
                raise PlaceError(f"{service}: the container did not start")
            since = 0
        self._ctr = ctr
        current = await self._current(service) if since != 0 else None
        if current is not None and current[0] == self._want:
            # the backend brought it up for this run's CA: no second start-over
            self._root, self._start = current[1], current[2]
            self._ready.set()
        else:
            self._stale = current[2] if current is not None else ""
        self._follower = cd.LogFollower(ctr, self._line, since=since)
        await asyncio.to_thread(self._follower.start)
        if not self._ready.is_set():
            if since != 0:
                await asyncio.to_thread(ctr.kill, "SIGHUP")
            await self._wait_ready(service)
        self._agent = await self._command_socket(service)
        return Path(self._root)

    @property
    def restarts_in_place(self) -> bool:
        """``restart`` keeps the instance (what ``between`` changed lasts): the agent's
        command socket does that; a SIGHUP starts a new instance."""
        return self._agent is not None

    async def _command_socket(self, service: str) -> ControlClient | None:
        """The agent's command socket when it answers (None: use ``docker exec``, also when
        ``MTASTS_LAB_COMPOSE_EXEC=docker`` asks for it, to compare the two)."""
        if os.environ.get("MTASTS_LAB_COMPOSE_EXEC") == "docker":
            return None
        agent = ControlClient(command_socket(self.run_dir, service))
        try:
            health = await agent.health()
        except ControlError:
            return None
        return agent if health.get("sender") == service else None

    async def _current(self, service: str) -> tuple[str, str, str] | None:
        """The agent's ready state now (CA digest, root, start nonce); None while it starts."""
        agent = await self._command_socket(service)
        if agent is not None:
            return parse_ready(str((await agent.health()).get("ready", "")))
        result = await cd.exec_in(self._ctr, ["cat", str(READY_FILE)])
        return parse_ready(result.output.strip()) if result.exit_code == 0 else None

    async def _wait_ready(self, what: str) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), START_TIMEOUT_S)
        except TimeoutError:
            ctr = self._ctr
            logs = await asyncio.to_thread(lambda: ctr.logs(tail=30).decode(errors="replace"))
            raise PlaceError(f"{what}: the container did not report ready with this run's "
                             f"CA within {START_TIMEOUT_S:.0f} s: {logs}") from None

    async def run(self, argv: Sequence[str], stdin: bytes | None = None,
                  timeout: float = CMD_TIMEOUT_S) -> tuple[int, str]:
        assert self._ctr is not None, "start() first"
        if self._agent is not None:
            body = {"argv": list(argv), "timeout": timeout,
                    "stdin": base64.b64encode(stdin).decode() if stdin is not None else None}
            try:
                answer = await self._agent.request("POST", "/run", body, timeout=timeout + 10)
            except ControlError as exc:
                raise PlaceError(f"{' '.join(argv)} in the container: {exc}") from None
            return int(answer["rc"]), str(answer["output"])
        if stdin is None:
            result = await cd.exec_in(self._ctr, argv, timeout=timeout)
            return result.exit_code, result.output
        inbox = self.run_dir / "inject"
        inbox.mkdir(exist_ok=True)
        name = f"{uuid.uuid4().hex}.in"
        (inbox / name).write_bytes(stdin)
        try:
            result = await cd.exec_in(self._ctr, ["sh", "-c", 'f="$1"; shift; exec "$@" < "$f"',
                                                  "sh", f"/run/lab/inject/{name}", *argv],
                                      timeout=timeout)
        finally:
            (inbox / name).unlink(missing_ok=True)
        return result.exit_code, result.output

    async def write_file(self, path: Path, data: bytes) -> None:
        rc, out = await self.run(["sh", "-c", f"cat > {shlex.quote(str(path))}"], stdin=data)
        if rc != 0:
            raise PlaceError(f"writing {path} in the container: {out.strip()[-300:]}")

    async def call(self, fn: Callable[..., object], *args: str) -> None:
        """``fn``'s own source, run by the container's python3 (no lab import: fast)."""
        code = (textwrap.dedent(inspect.getsource(fn))
                + f"\n{fn.__name__}(*{list(args)!r})\n")
        rc, out = await self.run(["python3", "-c", code])
        if rc != 0:
            raise PlaceError(f"{fn.__name__} in the container exited {rc}: {out.strip()[-300:]}")

    async def restart(self, tag: str, between: Sequence[str] = ()) -> None:
        """The agent restarts the daemon ``tag`` alone, in the same instance, after
        ``between``; an agent without a command socket starts every daemon over instead
        (SIGHUP: a new instance, so what ``between`` changed does not last)."""
        if self._agent is not None:
            try:
                await self._agent.request("POST", "/restart",
                                          {"tag": tag, "between": list(between)},
                                          timeout=START_TIMEOUT_S)
            except ControlError as exc:
                raise PlaceError(f"restarting {tag} in the container: {exc}") from None
            return
        if between:
            rc, out = await self.run(between)
            if rc != 0:
                raise PlaceError(f"{' '.join(between)} exited {rc}: {out.strip()[-300:]}")
        self._stale = self._start
        self._ready.clear()
        await asyncio.to_thread(self._ctr.kill, "SIGHUP")
        await self._wait_ready(tag)

    async def open_connection(self, host: str, port: int
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise PlaceError("the compose place opens no socket into a container: the lab's "
                         "network has no address on this host")

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            await follower.stop()
        docker, self._docker = self._docker, None
        if docker is not None:
            await asyncio.to_thread(docker.close)
