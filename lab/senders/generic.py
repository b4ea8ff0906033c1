"""Generic senders for MTAs the lab has no adapter for; both are judged from the lab's side.

``smtp``: the lab submits each probe message by plain SMTP to an MTA the user runs and
configured to use the lab (``mtasts-lab serve`` prints the DNS address and the CA file). The
MTA then relays it to the recipient domain's MX as it sees fit. Options (constructor keyword
or environment variable):

    host  MTASTS_LAB_SMTP_HOST   default 127.0.0.1
    port  MTASTS_LAB_SMTP_PORT   default 25 (587 for a submission port)
    helo  MTASTS_LAB_SMTP_HELO   default lab-submitter.test

On the ``netns`` backend the submission connects from inside the sender's namespace (the MTA
under test runs there), elsewhere from the lab's own process.

``command``: runs any program where the sender lives (through ``SenderEnv.exec_prefix``), once
per probe, in the background. Options:

    cmd      MTASTS_LAB_COMMAND          required, e.g.
             "swaks --server {mx} --to {rcpt} --from {from} --data {message_file} --tls"
    timeout  MTASTS_LAB_COMMAND_TIMEOUT  seconds, default 120
    done     MTASTS_LAB_COMMAND_DONE     "exit" (default: the program is the sender; its phase
             ends when it has exited and the grace window has passed) or "timeout" (it hands
             the message to an MTA; the phase waits for a receipt up to the scenario timeout)

The command line is split like a shell would (``shlex``; no shell runs) and each word has its
placeholders filled in (``lab.senders.placeholders``: recipient, message file, Message-ID, CA
file, DNS and MX addresses); the program also gets them as ``MTASTS_LAB_*`` environment
variables. An unknown placeholder is refused before the run. Its output lines become
``("sender", "log")`` events and its exit ``("sender", "exit", {returncode})``, plus
``("sender", "finished")`` under ``done=exit``: evidence only, as the lab cannot know what a
foreign program's exit code means.

Neither has ``own_status``: the oracle decides from the proxy, the sink and a grace window.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shlex
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from lab.events import SENDER
from lab.senders import placeholders
from lab.senders.base import OutgoingMessage, Sender, SenderEnv
from lab.senders.place import Place

SUBMIT_TIMEOUT_S = 30.0


class SubmissionFailed(Exception):
    """The MTA under test did not take the message; the message has its reply."""


def _opt(value: object | None, env: str, default: str | None = None) -> str | None:
    if value is not None:
        return str(value)
    return os.environ.get(env, default)


def _check_options(cls: type[Sender], options: dict[str, str]) -> str:
    """Build the sender from these options (and the environment): the problem, or ''."""
    accepted = inspect.signature(cls.__init__).parameters
    try:
        cls(**{k: v for k, v in options.items() if k in accepted and k != "self"})
    except ValueError as exc:
        return str(exc)
    return ""


class _Background:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class SmtpSubmitSender(Sender):
    check_options = classmethod(_check_options)
    name = "smtp"
    summary = ("any MTA: the lab submits each probe by SMTP to host:port "
               "(MTASTS_LAB_SMTP_HOST/PORT); judged from the lab's side")
    own_status = False
    backends = ("loopback", "netns")

    def __init__(self, host: str | None = None, port: int | str | None = None,
                 helo: str | None = None) -> None:
        self.host = _opt(host, "MTASTS_LAB_SMTP_HOST", "127.0.0.1") or "127.0.0.1"
        raw_port = _opt(port, "MTASTS_LAB_SMTP_PORT", "25") or "25"
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise ValueError(f"port {raw_port!r}: expected a TCP port number (1-65535)")
        self.port = int(raw_port)
        self.helo = _opt(helo, "MTASTS_LAB_SMTP_HELO", "lab-submitter.test") or "localhost"
        self.env: SenderEnv | None = None

    async def start(self, env: SenderEnv) -> None:
        self.env = env
        # what the user's MTA must be configured with, as MTASTS_LAB_* lines (sh syntax)
        known = placeholders.run_values(env)
        env.workdir.mkdir(parents=True, exist_ok=True)
        (env.workdir / "lab.env").write_text("".join(
            f"{k}={shlex.quote(v)}\n" for k, v in placeholders.environment(known).items()))
        env.emit(SENDER, "lab", {"sender": self.name, **known})

    async def reset(self) -> None:
        """The MTA's own state is the user's to reset; nothing the lab can flush."""

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self.env is not None
        place = self.env.place
        if isinstance(place, Place) and place.local:  # netns: from the sender's namespace
            return await place.open_connection(self.host, self.port)
        return await asyncio.open_connection(self.host, self.port)

    async def inject(self, message: OutgoingMessage) -> None:
        assert self.env is not None
        emit = self.env.emit
        reader, writer = await asyncio.wait_for(self._open(), SUBMIT_TIMEOUT_S)

        async def reply(expect: int) -> str:
            lines = []
            while True:
                raw = await asyncio.wait_for(reader.readline(), SUBMIT_TIMEOUT_S)
                if not raw:
                    raise SubmissionFailed(f"{self.host}:{self.port} closed the connection")
                line = raw.decode(errors="replace").rstrip("\r\n")
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    break
            text = " / ".join(lines)
            emit(SENDER, "log", {"line": f"submit <- {text}", "message_id": message.message_id,
                                 "sender": self.name})
            if not lines[-1][:3].isdigit() or int(lines[-1][:3]) // 100 != expect // 100:
                raise SubmissionFailed(f"{self.host}:{self.port} answered: {text}")
            return text

        async def command(line: str, expect: int) -> str:
            emit(SENDER, "log", {"line": f"submit -> {line}", "message_id": message.message_id,
                                 "sender": self.name})
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return await reply(expect)

        try:
            await reply(220)
            await command(f"EHLO {self.helo}", 250)
            await command(f"MAIL FROM:<{message.mail_from}>", 250)
            await command(f"RCPT TO:<{message.rcpt_to}>", 250)
            await command("DATA", 354)
            body = message.as_bytes()
            body = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                                for ln in body.split(b"\r\n"))
            writer.write(body.rstrip(b"\r\n") + b"\r\n.\r\n")
            await writer.drain()
            accepted = await reply(250)
            emit(SENDER, "submitted", {"message_id": message.message_id, "reply": accepted,
                                       "to": f"{self.host}:{self.port}", "sender": self.name})
            with contextlib.suppress(Exception):
                await command("QUIT", 221)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        self.env = None


async def _lines(stream: asyncio.StreamReader, longest: int = 4096) -> AsyncIterator[str]:
    """The program's output a line at a time; a line longer than ``longest`` comes in pieces
    (``readline`` would raise on it and lose the rest)."""
    pending = b""
    while chunk := await stream.read(65536):
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for raw in whole:
            yield raw.decode(errors="replace").rstrip("\r")
        while len(pending) > longest:
            yield pending[:longest].decode(errors="replace")
            pending = pending[longest:]
    if pending:
        yield pending.decode(errors="replace")


class CommandSender(Sender):
    check_options = classmethod(_check_options)
    name = "command"
    summary = ("any program that sends: MTASTS_LAB_COMMAND with placeholders such as {rcpt} "
               "{message_file} {mx} {ca_file}, run where the sender lives; judged from the "
               "lab's side")
    own_status = False
    backends = ("loopback", "netns", "compose")
    DONE = ("exit", "timeout")

    def __init__(self, cmd: str | None = None, timeout: float | str | None = None,
                 done: str | None = None) -> None:
        self.cmd = _opt(cmd, "MTASTS_LAB_COMMAND")
        if not self.cmd:
            raise ValueError("the command sender needs a command: --sender-opt cmd='...' or "
                             "MTASTS_LAB_COMMAND")
        raw_timeout = _opt(timeout, "MTASTS_LAB_COMMAND_TIMEOUT", "120") or "120"
        try:
            self.timeout = float(raw_timeout)
        except ValueError:
            raise ValueError(f"timeout {raw_timeout!r}: not a number of seconds") from None
        if not self.timeout > 0:
            raise ValueError(f"timeout {raw_timeout!r}: must be more than 0 seconds")
        self.done = _opt(done, "MTASTS_LAB_COMMAND_DONE", "exit") or "exit"
        if self.done not in self.DONE:
            raise ValueError(f"done {self.done!r}: expected one of {', '.join(self.DONE)}")
        try:
            words = shlex.split(self.cmd)
        except ValueError as exc:
            raise ValueError(f"cmd: {exc}") from None
        for word in words:
            placeholders.check(word)
        self.env: SenderEnv | None = None
        self._bg = _Background()
        self._procs: set[asyncio.subprocess.Process] = set()

    def values(self, message: OutgoingMessage, message_file: Path) -> dict[str, str]:
        assert self.env is not None
        return placeholders.values(self.env, message, message_file)

    def argv(self, message: OutgoingMessage, message_file: Path) -> list[str]:
        if not self.cmd:
            raise ValueError("the command sender needs a command: MTASTS_LAB_COMMAND or cmd=")
        vals = self.values(message, message_file)
        return [placeholders.fill(word, vals) for word in shlex.split(self.cmd)]

    async def start(self, env: SenderEnv) -> None:
        if not self.cmd:
            raise ValueError("the command sender needs a command: MTASTS_LAB_COMMAND or cmd=")
        self.env = env
        (env.workdir / "messages").mkdir(parents=True, exist_ok=True)

    async def reset(self) -> None:
        """A foreign program keeps its own state; nothing the lab can flush."""

    async def inject(self, message: OutgoingMessage) -> None:
        assert self.env is not None
        token = message.message_id.strip("<>").replace("/", "_")
        message_file = self.env.workdir / "messages" / f"{token}.eml"
        message_file.write_bytes(message.as_bytes())
        lab_env = placeholders.environment(self.values(message, message_file))
        argv = self.env.exec_argv(self.argv(message, message_file), lab_env)
        child_env = {**os.environ, **lab_env}
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=child_env)
        self._procs.add(proc)
        self.env.emit(SENDER, "started", {"message_id": message.message_id, "argv": argv,
                                          "pid": proc.pid, "sender": self.name})
        self._bg.spawn(self._follow(proc, message))

    async def _follow(self, proc: asyncio.subprocess.Process, message: OutgoingMessage) -> None:
        assert self.env is not None and proc.stdout is not None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                async for line in _lines(proc.stdout):
                    self.env.emit(SENDER, "log", {"line": line, "sender": self.name,
                                                  "message_id": message.message_id})
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        finally:
            self._procs.discard(proc)
        self.env.emit(SENDER, "exit", {"message_id": message.message_id,
                                       "returncode": proc.returncode, "sender": self.name,
                                       "duration_s": round(time.monotonic() - started, 4)})
        if self.done == "exit":
            # the program was the sender: nothing more will come for this message after the
            # grace window (the oracle ends the phase then, not at the scenario timeout)
            self.env.emit(SENDER, "finished", {"message_id": message.message_id,
                                               "returncode": proc.returncode,
                                               "sender": self.name})

    async def close(self) -> None:
        for proc in list(self._procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in list(self._procs):
            await proc.wait()
        await self._bg.cancel()
        self.env = None
