"""Real MTAs in containers (the ``compose`` backend): the agent inside, the adapter outside.

Inside a sender container the agent (``python -m lab.senders.compose_mta serve postfix|exim``,
the image's command) configures the MTA for the lab and runs it in the foreground:

* it trusts the lab CA that the runner exported to ``/run/lab/pki/lab-ca.pem`` (copied where
  the MTA's unprivileged processes can read it);
* its DNS is the lab's (compose.yaml mounts a resolv.conf naming 10.254.0.2);
* the MTA's log goes to the container's stdout as it is written; the line
  ``mtasts-lab-agent: ready ca=<sha256 of the CA>`` says it is configured;
* SIGHUP: reconfigure for the CA now in ``/run/lab/pki`` (a new run that reuses the
  container), then the ready line again.

Outside, ``ComposeMtaSender`` (the ``postfix`` sender on this backend, and ``exim``) starts the
container with docker-compose when it is not running (or sends it SIGHUP), waits for the
ready line with this run's CA, injects with ``docker exec`` (the MTA's sendmail, the message
in a file in the shared run directory) and reads the outcome from the container's log stream
(Docker SDK ``logs(stream=True, follow=True)``), emitting ``("sender", "status", ...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from lab.events import SENDER
from lab.senders.base import DEFERRED, OutgoingMessage, SenderEnv

STATE = Path("/run/lab")
CA_EXPORTED = STATE / "pki" / "lab-ca.pem"
READY_FILE = Path("/run/mtasts-lab-agent.ready")
READY = "mtasts-lab-agent: ready ca="
RESOLVER_PREFIX = "mta-sts-daemon: "
POSTFIX_INSTANCE = Path("/var/lib/mtasts-lab/postfix")
START_TIMEOUT_S = 30.0


def ca_digest(path: Path) -> str:
    """The SHA-256 of a CA file's PEM (the same as ``lab.control.ca_fingerprint``)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ================================================================ inside the container


class Agent:
    mta: ClassVar[str] = ""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.readers: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._started: dict[str, asyncio.Event] = {}

    def say(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def spawn(self, argv: Sequence[str], prefix: str = "", marker: str = "",
                    env: dict[str, str] | None = None,
                    wait: bool = True) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        ready = asyncio.Event()
        self._started[argv[0]] = ready
        assert proc.stdout is not None
        self.readers.append(asyncio.ensure_future(self._relay(proc.stdout, prefix, marker,
                                                              ready)))
        if marker and wait:
            waiter = asyncio.ensure_future(ready.wait())
            exited = asyncio.ensure_future(proc.wait())
            done, _ = await asyncio.wait({waiter, exited}, timeout=START_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            exited.cancel()
            if waiter not in done:
                raise RuntimeError(f"{argv[0]} did not start (exit {proc.returncode})")
        return proc

    async def _relay(self, stream: asyncio.StreamReader, prefix: str, marker: str,
                     ready: asyncio.Event) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.say(prefix + text)
            if marker and marker in text:
                ready.set()

    async def stop_all(self) -> None:
        procs, self.procs = self.procs, []
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            await proc.wait()
        readers, self.readers = self.readers, []
        for task in readers:
            task.cancel()
        if readers:
            await asyncio.wait(readers, timeout=5)

    async def configure(self) -> None:
        raise NotImplementedError

    async def reconfigure(self) -> None:
        async with self._lock:
            READY_FILE.unlink(missing_ok=True)
            await self.stop_all()
            await self.configure()
            READY_FILE.touch()
            self.say(READY + ca_digest(CA_EXPORTED))

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
        await self.stop_all()
        return 0


class PostfixAgent(Agent):
    """Postfix + postfix-mta-sts-resolver, configured by the netns sender's own code."""

    mta = "postfix"

    async def configure(self) -> None:
        from lab.senders.postfix import POSTFIX_DAEMONS, RESOLVER_DEBIAN, PostfixSender
        from lab.world import Topology

        inst = POSTFIX_INSTANCE
        shutil.rmtree(inst, ignore_errors=True)
        inst.mkdir(parents=True)
        os.chmod(inst, 0o755)
        env = SenderEnv(dns=("10.254.0.2", 53), smtp_port=25, https_port=443,
                        ca_file=CA_EXPORTED, workdir=Path("/tmp"), emit=lambda *a: None,
                        topology=Topology("", "", (), (), ""), backend="compose")
        sender = PostfixSender(cache="sqlite")
        sender._make_instance(inst, env)  # the same main.cf, master.cf and resolver YAML
        await self.spawn([str(RESOLVER_DEBIAN), "-v", "debug", "--disable-uvloop", "-c",
                          str(inst / "resolver" / "mta-sts-daemon.yml")],
                         prefix=RESOLVER_PREFIX, marker="Server started",
                         env={**os.environ, "SSL_CERT_FILE": str(inst / "lab-ca.pem")})
        await self.spawn([str(POSTFIX_DAEMONS / "master"), "-c", str(inst / "etc"), "-s"],
                         marker="daemon started")


class EximAgent(Agent):
    """Exim 4 (Debian's exim4-daemon-light): opportunistic TLS, no MTA-STS client."""

    mta = "exim"

    async def configure(self) -> None:
        from lab.senders.exim import CA_PATH, CONFIG_PATH, MAINLOG, exim_config

        for d in ("input", "msglog", "db"):
            shutil.rmtree(Path("/var/spool/exim4") / d, ignore_errors=True)
        shutil.copyfile(CA_EXPORTED, CA_PATH)
        os.chmod(CA_PATH, 0o644)
        CONFIG_PATH.write_text(exim_config())
        MAINLOG.parent.mkdir(parents=True, exist_ok=True)
        MAINLOG.touch()
        shutil.chown(MAINLOG, "Debian-exim", "adm")
        await self.spawn(["tail", "-n0", "-F", str(MAINLOG)], marker="daemon started",
                         wait=False)
        await self.spawn(["/usr/sbin/exim4", "-bdf", "-q2s"])
        ready = self._started["tail"]
        await asyncio.wait_for(ready.wait(), START_TIMEOUT_S)


AGENTS: dict[str, type[Agent]] = {"postfix": PostfixAgent, "exim": EximAgent}

RESET_SNIPPET = {
    "postfix": f"""
import contextlib, sqlite3, subprocess, os
db = {str(POSTFIX_INSTANCE / "resolver" / "cache.db")!r}
if os.path.exists(db):
    con = sqlite3.connect(db, timeout=5)
    with con:
        for table in ("sts_policy_cache", "proactive_fetch_ts"):
            with contextlib.suppress(sqlite3.OperationalError):
                con.execute("DELETE FROM " + table)
    con.close()
raise SystemExit(subprocess.call(["postsuper", "-c", {str(POSTFIX_INSTANCE / "etc")!r},
                                  "-d", "ALL"], stderr=subprocess.DEVNULL))
""",
    "exim": """
import os, shutil
for d in ("input", "msglog", "db"):
    path = os.path.join("/var/spool/exim4", d)
    for child in os.listdir(path) if os.path.isdir(path) else []:
        full = os.path.join(path, child)
        shutil.rmtree(full) if os.path.isdir(full) else os.unlink(full)
""",
}


def _reset_postfix() -> int:
    """Empty the queue and the resolver's policy cache (between scenarios)."""
    import subprocess

    from lab.senders.postfix import flush_resolver_cache

    flush_resolver_cache(POSTFIX_INSTANCE / "resolver" / "cache.db")
    return subprocess.call(["postsuper", "-c", str(POSTFIX_INSTANCE / "etc"), "-d", "ALL"],
                           stderr=subprocess.DEVNULL)


def _reset_exim() -> int:
    """Empty the queue and Exim's hints (retry) databases (between scenarios)."""
    for d in ("input", "msglog", "db"):
        path = Path("/var/spool/exim4") / d
        if path.exists():
            for child in path.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.senders.compose_mta")
    parser.add_argument("command", choices=("serve", "reset"))
    parser.add_argument("mta", choices=sorted(AGENTS))
    args = parser.parse_args(argv)
    if args.command == "reset":
        return _reset_postfix() if args.mta == "postfix" else _reset_exim()
    return asyncio.run(AGENTS[args.mta]().serve())


# ================================================================ outside: the adapter


class ComposeMtaSender:
    """The adapter side for a real MTA in a compose service (mixed into a ``Sender``)."""

    service: ClassVar[str] = ""
    profile: ClassVar[str | None] = None
    name: ClassVar[str]

    env: SenderEnv | None
    _ctr: Any
    _follower: Any
    _run_dir: Path
    _status_t: dict[str, float]

    def _compose_init(self) -> None:
        self._ctr = None
        self._follower = None
        self._docker: Any = None
        self._status_t = {}
        self._drop_tasks: set[asyncio.Task[None]] = set()

    async def _compose_start(self, env: SenderEnv) -> None:
        from lab.backends import compose_docker as cd

        self.env = env
        self._run_dir = Path(env.topology.extra.get("run_dir", str(cd.RUN_DIR)))
        self._docker = await asyncio.to_thread(cd.client)
        want = ca_digest(env.ca_file)
        ctr = await asyncio.to_thread(cd.container, self._docker, self.service)
        since = time.time() - 1
        if ctr is None:
            profile = ["--profile", self.profile] if self.profile else []
            await cd.compose(self._run_dir, *profile, "up", "-d", "--no-build", self.service)
            ctr = await asyncio.to_thread(cd.container, self._docker, self.service)
            if ctr is None:
                raise RuntimeError(f"{self.name}: the {self.service} container did not start")
            since = 0
        self._ctr = ctr
        ready = asyncio.Event()

        def on_ready(line: str) -> None:
            if line.startswith(READY + want):
                ready.set()

        follower = cd.LogFollower(ctr, on_ready, since=since)
        await asyncio.to_thread(follower.start)
        try:
            if since != 0:
                await asyncio.to_thread(ctr.kill, "SIGHUP")
            await asyncio.wait_for(ready.wait(), START_TIMEOUT_S)
        except TimeoutError:
            logs = await asyncio.to_thread(lambda: ctr.logs(tail=30).decode(errors="replace"))
            raise RuntimeError(f"{self.name}: the {self.service} container did not report "
                               f"ready with this run's CA within {START_TIMEOUT_S:.0f} s: "
                               f"{logs}") from None
        finally:
            await follower.stop()
        self._follower = cd.LogFollower(ctr, self._on_line)
        await asyncio.to_thread(self._follower.start)

    def _on_line(self, line: str) -> None:
        raise NotImplementedError

    def _emit_status(self, message_id: str, status: str, reason: str, **extra: Any) -> None:
        assert self.env is not None
        self.env.emit(SENDER, "status", {"message_id": message_id, "status": status,
                                         "reason": reason, "sender": self.name, **extra})
        if status == DEFERRED and extra.get("queue_id"):
            task = asyncio.ensure_future(self._drop(str(extra["queue_id"])))
            self._drop_tasks.add(task)
            task.add_done_callback(self._drop_tasks.discard)

    async def _drop(self, queue_id: str) -> None:
        """The first deferral is the decision; its retries would muddle the next phases."""
        raise NotImplementedError

    async def _exec(self, argv: Sequence[str], timeout: float = 30.0) -> str:
        from lab.backends import compose_docker as cd

        result = await cd.exec_in(self._ctr, argv, timeout=timeout)
        if result.exit_code != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv)} exited {result.exit_code}: "
                               f"{result.output.strip()[-500:]}")
        return result.output

    async def _compose_reset(self) -> None:
        if self._drop_tasks:
            await asyncio.wait(list(self._drop_tasks), timeout=30)
        # the reset functions below, without importing the lab (a docker exec costs enough)
        await self._exec(["python3", "-c", RESET_SNIPPET[self.service]])
        self._status_t.clear()

    async def _inject_file(self, message: OutgoingMessage, argv: Sequence[str]) -> None:
        """Write the message to the shared run directory; run ``argv`` with it as stdin."""
        inbox = self._run_dir / "inject"
        inbox.mkdir(exist_ok=True)
        name = f"{uuid.uuid4().hex}.eml"
        (inbox / name).write_bytes(message.as_bytes())
        try:
            await self._exec(["sh", "-c", 'f="$1"; shift; exec "$@" < "$f"', "sh",
                              f"/run/lab/inject/{name}", *argv])
        finally:
            (inbox / name).unlink(missing_ok=True)

    async def _compose_close(self) -> None:
        if self._drop_tasks:
            await asyncio.wait(list(self._drop_tasks), timeout=30)
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        if self._docker is not None:
            await asyncio.to_thread(self._docker.close)
            self._docker = None


if __name__ == "__main__":
    sys.exit(main())
