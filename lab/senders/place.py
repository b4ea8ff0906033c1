"""Where a real MTA runs, seen from its adapter: the ``Place`` protocol.

An MTA adapter (``postfix``, ``exim``, ``chasquid``) says *what* to run: the files of its
instance (``MtaSetup.prepare``), its daemons (``Daemon``), the commands that inject a message
or reset its state, and how to read its log lines. A backend says *where*: it hands the
adapter a ``Place`` in ``SenderEnv.place`` (the netns backend: programs under ``ip netns
exec`` on this host; the compose backend: the MTA's container, whose agent runs the same
adapter's daemons). The adapter never knows which backend serves it, the way an aiosmtpd
handler does not know how its controller serves it.

``ProcessPlace`` is the plain implementation (programs run here, optionally under a command
prefix): the netns backend's place builds on it, and the container agent uses it as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

LineSink = Callable[[str, str], None]
"""``on_line(tag, line)``: one log line of the daemon (or log) named ``tag``."""

START_TIMEOUT_S = float(os.environ.get("MTASTS_LAB_PLACE_START_S", "60"))
"""How long a daemon has to say it is up (generous: a deadline for a loaded machine)."""
CMD_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


class PlaceError(Exception):
    """The place could not do what was asked; the message says what and why."""


@dataclass(frozen=True)
class Daemon:
    """A long-running program of an MTA instance."""

    tag: str
    """Names its log lines (``on_line(tag, ...)``) and its transcript (``<tag>.log``)."""
    argv: tuple[str, ...]
    ready: str = ""
    """A substring of its output that says it is up ('' : do not wait for it)."""
    env: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    stop_signal: int = signal.SIGTERM


def follow_file(tag: str, path: Path, ready: str = "") -> Daemon:
    """A daemon that hands over the lines appended to a log file (``tail -F``). Its poll
    interval is short: in a container (overlayfs) tail polls rather than uses inotify, and
    at its default of 1 s each line, and with it each decision, came up to a second late."""
    return Daemon(tag, ("tail", "-n0", "-F", "-s", "0.05", str(path)), ready=ready)


class MtaSetup(Protocol):
    """What a place needs from an MTA adapter to bring its instance up."""

    @property
    def name(self) -> str:
        """The MTA's name (the compose service, the instance directory's prefix)."""

    def prepare(self, root: Path, ca_file: Path) -> None:
        """Write the instance under ``root`` (runs where the MTA's files are)."""

    def daemons(self, root: Path) -> list[Daemon]:
        """The programs to start, in order."""


@runtime_checkable
class Place(Protocol):
    """Run a command, write a file, follow the MTA's log, open a socket: where it runs."""

    local: bool
    """True when the MTA's programs come from this host's installation."""

    restarts_in_place: bool
    """True when ``restart`` keeps the instance, so what ``between`` changed lasts."""

    async def start(self, mta: MtaSetup, ca_file: Path, on_line: LineSink) -> Path:
        """Prepare the instance, start its daemons, return its root once all are ready."""

    async def run(self, argv: Sequence[str], stdin: bytes | None = None,
                  timeout: float = CMD_TIMEOUT_S) -> tuple[int, str]:
        """Run a command to completion; its exit code and merged output."""

    async def write_file(self, path: Path, data: bytes) -> None:
        """Write a file where the MTA sees it."""

    async def call(self, fn: Callable[..., object], *args: str) -> None:
        """Run ``fn(*args)`` where the MTA's files are: a self-contained module-level
        function (its imports inside it) with string arguments."""

    async def restart(self, tag: str, between: Sequence[str] = ()) -> None:
        """Stop the daemon ``tag``, run ``between`` (if any), start it again, wait ready."""

    async def open_connection(self, host: str, port: int
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection from where the MTA runs (its submission port, say)."""

    async def close(self) -> None:
        """Stop every daemon and remove the instance. Idempotent."""


async def run_command(argv: Sequence[str], stdin: bytes | None = None,
                      timeout: float = CMD_TIMEOUT_S,
                      env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run a command to completion (bounded); return its exit code and its merged output."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=dict(env) if env is not None else None)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


class ProcessPlace:
    """Programs run on this machine, under ``prefix`` (``ip netns exec NS`` or nothing).

    The instance root is a fresh directory under ``base`` (``fixed_root``: ``base/<mta>``,
    emptied first, for a container that runs one instance); transcripts go to ``logs``.
    ``on_spawn(pid)`` and ``on_path(path)`` let a backend record them for crash cleanup.
    """

    local = True
    restarts_in_place = True

    def __init__(self, prefix: Sequence[str] = (), base: Path = Path("/var/tmp"),
                 logs: Path | None = None, fixed_root: bool = False) -> None:
        self.prefix = tuple(prefix)
        self.fixed_root = fixed_root
        self.base = base
        self.logs = logs
        self.root: Path | None = None
        self._mta: MtaSetup | None = None
        self._on_line: LineSink | None = None
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}

    def on_spawn(self, pid: int) -> None:
        """Hook: a daemon was started (the netns place records it)."""

    def on_path(self, path: Path) -> None:
        """Hook: the instance directory was made (the netns place records it)."""

    async def start(self, mta: MtaSetup, ca_file: Path, on_line: LineSink) -> Path:
        self._mta, self._on_line = mta, on_line
        self.base.mkdir(parents=True, exist_ok=True)
        if self.fixed_root:
            root = self.base / mta.name
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
        else:
            root = Path(tempfile.mkdtemp(prefix=f"mtasts-lab-{mta.name}-", dir=self.base))
        os.chmod(root, 0o755)  # the MTA's unprivileged users must reach it
        self.root = root
        self.on_path(root)
        try:
            await asyncio.to_thread(mta.prepare, root, ca_file)
            daemons = mta.daemons(root)
            for daemon in daemons:
                await self._spawn(daemon)
            for daemon in daemons:
                if daemon.ready:
                    await self._wait_ready(daemon)
        except BaseException:
            await self.close()
            raise
        return root

    def _daemon(self, tag: str) -> Daemon:
        assert self._mta is not None and self.root is not None, "start() first"
        for daemon in self._mta.daemons(self.root):
            if daemon.tag == tag:
                return daemon
        raise PlaceError(f"{self._mta.name}: no daemon {tag!r}")

    async def _spawn(self, daemon: Daemon) -> None:
        env = {**os.environ, **daemon.env}
        for key in daemon.unset:
            env.pop(key, None)
        self._ready[daemon.tag] = asyncio.Event()
        proc = await asyncio.create_subprocess_exec(
            *self.prefix, *daemon.argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
            start_new_session=True)
        self._procs[daemon.tag] = proc
        self.on_spawn(proc.pid)
        assert proc.stdout is not None
        self._readers[daemon.tag] = asyncio.ensure_future(self._read(daemon, proc.stdout))

    async def _read(self, daemon: Daemon, stream: asyncio.StreamReader) -> None:
        out: TextIO | None = None
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            out = open(self.logs / f"{daemon.tag}.log", "a")  # noqa: SIM115 (closed below)
        try:
            while line_b := await stream.readline():
                line = line_b.decode(errors="replace").rstrip("\n")
                if out is not None:
                    out.write(line + "\n")
                    out.flush()
                if daemon.ready and daemon.ready in line:
                    self._ready[daemon.tag].set()
                if self._on_line is not None:
                    self._on_line(daemon.tag, line)
        finally:
            if out is not None:
                out.close()

    async def _wait_ready(self, daemon: Daemon) -> None:
        proc = self._procs[daemon.tag]
        waiter = asyncio.ensure_future(self._ready[daemon.tag].wait())
        exited = asyncio.ensure_future(proc.wait())
        try:
            done, _ = await asyncio.wait({waiter, exited}, timeout=START_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            exited.cancel()
        if waiter not in done:
            why = f"exited with {proc.returncode}" if exited in done else "did not start"
            where = f"; see {self.logs / (daemon.tag + '.log')}" if self.logs else ""
            raise PlaceError(f"{daemon.tag} {why} within {START_TIMEOUT_S:.0f} s{where}")

    async def _stop(self, tag: str) -> None:
        proc = self._procs.pop(tag, None)
        reader = self._readers.pop(tag, None)
        if proc is not None:
            sig = self._daemon(tag).stop_signal if self._mta is not None else signal.SIGTERM
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # what it left in its session
        if reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader, STOP_TIMEOUT_S)
            reader.cancel()

    async def run(self, argv: Sequence[str], stdin: bytes | None = None,
                  timeout: float = CMD_TIMEOUT_S) -> tuple[int, str]:
        return await run_command([*self.prefix, *argv], stdin=stdin, timeout=timeout)

    async def write_file(self, path: Path, data: bytes) -> None:
        await asyncio.to_thread(path.write_bytes, data)

    async def call(self, fn: Callable[..., object], *args: str) -> None:
        await asyncio.to_thread(fn, *args)  # the files are on this machine

    async def restart(self, tag: str, between: Sequence[str] = ()) -> None:
        daemon = self._daemon(tag)
        await self._stop(tag)
        if between:
            rc, out = await self.run(between)
            if rc != 0:
                raise PlaceError(f"{' '.join(between)} exited {rc}: {out.strip()[-300:]}")
        await self._spawn(daemon)
        if daemon.ready:
            await self._wait_ready(daemon)

    async def open_connection(self, host: str, port: int
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port)

    async def close(self) -> None:
        for tag in reversed(list(self._procs)):
            await self._stop(tag)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
