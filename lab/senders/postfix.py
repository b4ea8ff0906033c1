"""The ``postfix`` senders: a private Postfix instance with postfix-mta-sts-resolver.

Two profiles, the same Postfix (Debian's package):

* ``postfix``: the resolver from Debian's ``postfix-mta-sts-resolver`` package
  (``/usr/bin/mta-sts-daemon``);
* ``postfix-pypi``: the PyPI release (1.5.x) from the venv that ``scripts/install-postfix``
  makes (``$MTASTS_LAB_RESOLVER_VENV``, default ``/opt/mtasts-lab/resolver-venv``).

Everything runs where the backend says (``SenderEnv.exec_prefix``: ``ip netns exec
mtl-<runid>-sender`` on the netns backend), so the host's own Postfix and resolver, if any,
are never used nor touched. The instance (config, queue, data directory) lives in a fresh
``/var/tmp/mtasts-lab-postfix-*`` directory (the postfix user must be able to reach it; the
runner's work directory is private), recorded in a state file so ``mtasts-lab down`` removes
it after a crash.

Observation: Postfix logs to ``maillog_file = /dev/stdout`` of a master run with ``-s``, read
through a pipe as it is written. ``postfix_log.PostfixLog`` ties each Message-ID to its queue
id and turns the first ``status=`` line into ``("sender", "status", {...})``; every line
about the message (and the resolver's lines that name its domain) becomes
``("sender", "log", {line})``. A deferred message is then deleted from the queue: the first
deferral is the decision, and its retries would only muddle the next phases.

The resolver's policy cache is flushed between scenarios (``reset``) and kept between phases.
With the ``sqlite`` cache (the default) that is one ``DELETE`` on the live database; with
``internal`` (``MTASTS_LAB_POSTFIX_CACHE=internal``) the daemon is SIGKILLed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from lab.backends.netns_state import ProcRef, RunState
from lab.events import SENDER
from lab.senders.base import DEFERRED, OutgoingMessage, Sender, SenderEnv
from lab.senders.postfix_log import Evidence, PostfixLog, Status

POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")
RESOLVER_DEBIAN = Path("/usr/bin/mta-sts-daemon")
RESOLVER_VENV = Path(os.environ.get("MTASTS_LAB_RESOLVER_VENV",
                                    "/opt/mtasts-lab/resolver-venv"))
RESOLVER_PORT = 8461
START_TIMEOUT_S = 15.0
CMD_TIMEOUT_S = 20.0

# The queue directories Postfix wants: (name, owner, group, mode).
_QUEUE_DIRS = [(d, "postfix", "root", 0o700) for d in (
    "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
    "private", "saved", "trace")] + [
    ("maildrop", "postfix", "postdrop", 0o730), ("public", "postfix", "postdrop", 0o710),
    ("pid", "root", "root", 0o755)]


def main_cf(inst: Path, ca_file: Path) -> dict[str, str]:
    """The instance's main.cf settings (docs/REAL-SENDERS-NOTES.md says why each matters)."""
    return {
        "compatibility_level": "3.6",
        "queue_directory": str(inst / "queue"),
        "data_directory": str(inst / "data"),
        "meta_directory": "/etc/postfix",
        "myhostname": "sender.test",
        "mydomain": "sender.test",
        "myorigin": "sender.test",
        "mydestination": "",
        "relayhost": "",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        # Bounces to the probe's own domain are dropped, never looked up.
        "transport_maps": "inline:{sender.test=discard:}",
        "enable_long_queue_ids": "no",
        "maillog_file": "/dev/stdout",
        "maillog_file_prefixes": "/dev/stdout",
        "smtp_tls_security_level": "may",
        "smtp_tls_policy_maps": f"socketmap:inet:127.0.0.1:{RESOLVER_PORT}:postfix",
        "smtp_tls_CAfile": str(ca_file),
        "smtp_tls_loglevel": "1",
        "smtp_tls_session_cache_database": "",
        "smtp_connection_cache_on_demand": "no",
        "smtp_connection_cache_destinations": "",
        "smtp_address_preference": "ipv4",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "smtp_connect_timeout": "5s",
        "smtp_helo_timeout": "20s",
        "smtp_starttls_timeout": "20s",
        "smtp_mail_timeout": "20s",
        "smtp_rcpt_timeout": "20s",
        "smtp_data_init_timeout": "20s",
        "smtp_data_xfer_timeout": "30s",
        "smtp_data_done_timeout": "30s",
        "delay_warning_time": "0",
        # One failed scenario must not mark the destination dead for the next one.
        "default_destination_concurrency_failed_cohort_limit": "1000",
        "smtp_destination_concurrency_failed_cohort_limit": "1000",
        "notify_classes": "",
        "smtputf8_enable": "no",
        "biff": "no",
    }


def flush_resolver_cache(db: Path) -> None:
    """Empty postfix-mta-sts-resolver's live sqlite cache (it keeps running)."""
    if not db.exists():
        return
    con = sqlite3.connect(db, timeout=5)
    try:
        with con:
            for table in ("sts_policy_cache", "proactive_fetch_ts"):
                with contextlib.suppress(sqlite3.OperationalError):
                    con.execute(f"DELETE FROM {table}")
    finally:
        con.close()


def resolver_yaml(cache: str, cache_file: Path) -> str:
    if cache == "sqlite":
        cache_block = f"  type: sqlite\n  options:\n    filename: \"{cache_file}\"\n"
    else:
        cache_block = "  type: internal\n  options:\n    cache_size: 10000\n"
    return (f"host: 127.0.0.1\nport: {RESOLVER_PORT}\nreuse_port: true\n"
            "shutdown_timeout: 1\n"
            f"cache:\n{cache_block}"
            "default_zone:\n  strict_testing: false\n  timeout: 4\n")


async def run(argv: Sequence[str], stdin: bytes | None = None, timeout: float = CMD_TIMEOUT_S,
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


class SenderFailed(Exception):
    """The sender under test could not be started or driven; the message says why."""


class PostfixSender(Sender):
    name = "postfix"
    summary = ("Postfix (Debian) with postfix-mta-sts-resolver (Debian package), "
               "a private instance in the sender's namespace")
    own_status = True
    backends = ("netns", "compose")

    def __init__(self, cache: str | None = None, keep_deferred: bool | None = None,
                 dane: str | None = None) -> None:
        self.dane = (dane or os.environ.get("MTASTS_LAB_POSTFIX_DANE", "no")) == "yes"
        """--sender-opt dane=yes: DNSSEC lookups and smtp_tls_security_level = dane (X1)."""
        self.cache = cache or os.environ.get("MTASTS_LAB_POSTFIX_CACHE", "sqlite")
        if self.cache not in ("sqlite", "internal"):
            raise ValueError(f"resolver cache must be sqlite or internal, not {self.cache!r}")
        if keep_deferred is None:
            keep_deferred = os.environ.get("MTASTS_LAB_POSTFIX_KEEP_DEFERRED", "") == "1"
        self.keep_deferred = keep_deferred
        self.env: SenderEnv | None = None
        self.inst: Path | None = None
        self.state: RunState | None = None
        self.log = PostfixLog()
        self._master: asyncio.subprocess.Process | None = None
        self._resolver: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._drops: set[asyncio.Task[None]] = set()
        self._master_ready = asyncio.Event()
        self._resolver_ready = asyncio.Event()
        self._transcript: list[Path] = []
        self.timings: dict[str, list[float]] = {}
        self._status_t: dict[str, float] = {}

    # -- what the machine needs ------------------------------------------------------------

    @classmethod
    def resolver_binary(cls) -> Path:
        return RESOLVER_DEBIAN

    @classmethod
    def resolver_install(cls) -> str:
        return "apt-get install postfix-mta-sts-resolver"

    @classmethod
    def check(cls) -> list[str]:
        missing = []
        if not (POSTFIX_DAEMONS / "master").exists() or shutil.which("postconf") is None:
            missing.append("postfix: echo 'postfix postfix/main_mailer_type select Internet "
                           "Site' | debconf-set-selections && DEBIAN_FRONTEND=noninteractive "
                           "apt-get install -y postfix (or scripts/install-postfix from the "
                           "source tree, which also installs both resolvers)")
        if not cls.resolver_binary().exists():
            missing.append(f"{cls.resolver_binary()}: {cls.resolver_install()}")
        try:
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
        except KeyError:
            missing.append("user postfix / group postdrop (the postfix package makes them)")
        if os.geteuid() != 0:
            missing.append("root (a private Postfix instance runs its master as root)")
        return missing

    # -- life cycle ------------------------------------------------------------------------

    def _x(self, *argv: str) -> list[str]:
        assert self.env is not None
        return [*self.env.exec_prefix, *argv]

    def _time(self, key: str, since: float) -> None:
        self.timings.setdefault(key, []).append(time.monotonic() - since)

    async def start(self, env: SenderEnv) -> None:
        if env.backend == "compose":  # Postfix runs in its container: compose_postfix.py
            from lab.senders.compose_postfix import start_on_compose
            return await start_on_compose(self, env)
        missing = self.check()
        if missing:
            raise SenderFailed(f"{self.name}: missing " + "; ".join(missing))
        if env.backend not in self.backends:
            raise SenderFailed(f"{self.name} runs on the {', '.join(self.backends)} backend, "
                               f"not {env.backend}")
        started = time.monotonic()
        self.env = env
        inst = Path(tempfile.mkdtemp(prefix="mtasts-lab-postfix-",
                                     dir=os.environ.get("MTASTS_LAB_POSTFIX_DIR", "/var/tmp")))
        os.chmod(inst, 0o755)
        self.inst = inst
        self.state = RunState(inst.name.rpartition("-")[2].lower(), "postfix",
                              ProcRef.of(os.getpid()), paths=[str(inst)])
        self.state.save()
        try:
            self._make_instance(inst, env)
            await self._start_resolver()
            await self._start_master()
        except BaseException:
            await self.close()
            raise
        self._time("start", started)

    def _make_instance(self, inst: Path, env: SenderEnv) -> None:
        uid, gid = pwd.getpwnam("postfix").pw_uid, grp.getgrnam("postdrop").gr_gid
        etc, queue, data = inst / "etc", inst / "queue", inst / "data"
        for d in (etc, queue, data, inst / "resolver"):
            d.mkdir()
        for name, owner, group, mode in _QUEUE_DIRS:
            path = queue / name
            path.mkdir()
            os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
            os.chmod(path, mode)
        os.chown(data, uid, gid)
        os.chmod(data, 0o700)
        ca = inst / "lab-ca.pem"
        shutil.copyfile(env.ca_file, ca)
        os.chmod(ca, 0o644)
        shutil.copyfile("/etc/postfix/master.cf", etc / "master.cf")
        for extra in ("dynamicmaps.cf",):
            if Path("/etc/postfix", extra).exists():
                shutil.copyfile(Path("/etc/postfix", extra), etc / extra)
        settings = main_cf(inst, ca)
        if self.dane:  # DANE where TLSA records validate; the policy map may still override
            settings.update(smtp_dns_support_level="dnssec", smtp_tls_security_level="dane")
        (etc / "main.cf").write_text("# mtasts-lab private instance\n" + "".join(
            f"{k} = {v}\n" for k, v in settings.items()))
        # No chroot: smtp must read the namespace's resolv.conf (docs/REAL-SENDERS-NOTES.md).
        text = (etc / "master.cf").read_text().splitlines()
        (etc / "master.cf").write_text("\n".join(_unchroot(line) for line in text) + "\n")
        (inst / "resolver" / "mta-sts-daemon.yml").write_text(
            resolver_yaml(self.cache, inst / "resolver" / "cache.db"))
        if self.env is not None:
            logs = self.env.workdir
            logs.mkdir(parents=True, exist_ok=True)
            self._transcript = [logs / "postfix.log", logs / "mta-sts-daemon.log"]
            for path in self._transcript:
                path.write_text("")

    def _spawned(self, proc: asyncio.subprocess.Process) -> None:
        if self.state is not None:
            self.state.add_proc(proc.pid)

    async def _start_resolver(self) -> None:
        assert self.inst is not None and self.env is not None
        started = time.monotonic()
        self._resolver_ready.clear()
        env = {**os.environ, "SSL_CERT_FILE": str(self.inst / "lab-ca.pem"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("SSL_CERT_DIR", None)
        proc = await asyncio.create_subprocess_exec(
            *self._x(str(self.resolver_binary()), "-v", "debug", "--disable-uvloop",
                     "-c", str(self.inst / "resolver" / "mta-sts-daemon.yml")),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        self._resolver = proc
        self._spawned(proc)
        assert proc.stdout is not None
        self._spawn_task(self._read_resolver(proc.stdout))
        await self._ready(self._resolver_ready, proc, "mta-sts-daemon")
        self._time("resolver_start", started)

    async def _start_master(self) -> None:
        assert self.inst is not None
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *self._x(str(POSTFIX_DAEMONS / "master"), "-c", str(self.inst / "etc"), "-s"),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self._master = proc
        self._spawned(proc)
        assert proc.stdout is not None
        self._spawn_task(self._read_postfix(proc.stdout))
        await self._ready(self._master_ready, proc, "postfix master")
        self._time("postfix_start", started)

    async def _ready(self, event: asyncio.Event, proc: asyncio.subprocess.Process,
                     what: str) -> None:
        waiter = asyncio.ensure_future(event.wait())
        exited = asyncio.ensure_future(proc.wait())
        try:
            done, _ = await asyncio.wait({waiter, exited}, timeout=START_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            exited.cancel()
        if waiter not in done:
            why = f"exited with {proc.returncode}" if exited in done else "did not start"
            raise SenderFailed(f"{self.name}: {what} {why} within {START_TIMEOUT_S:.0f} s; "
                               f"see {self._transcript}")

    def _spawn_task(self, coro: Coroutine[Any, Any, None],
                    group: set[asyncio.Task[None]] | None = None) -> None:
        tasks = self._tasks if group is None else group
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _read_postfix(self, stream: asyncio.StreamReader) -> None:
        with self._open_transcript(0) as out:
            while line_b := await stream.readline():
                line = line_b.decode(errors="replace").rstrip("\n")
                if out is not None:
                    out.write(line + "\n")
                    out.flush()
                if "postfix/master" in line and "daemon started" in line:
                    self._master_ready.set()
                for item in self.log.feed(line):
                    self._report(item)

    async def _read_resolver(self, stream: asyncio.StreamReader) -> None:
        with self._open_transcript(1) as out:
            while line_b := await stream.readline():
                line = line_b.decode(errors="replace").rstrip("\n")
                if out is not None:
                    out.write(line + "\n")
                    out.flush()
                if "Server started" in line:
                    self._resolver_ready.set()
                for item in self.log.feed_resolver(line):
                    self._report(item)

    @contextlib.contextmanager
    def _open_transcript(self, index: int) -> Iterator[TextIO | None]:
        if index < len(self._transcript):
            with open(self._transcript[index], "a") as f:
                yield f
        else:
            yield None

    def _report(self, item: Evidence | Status) -> None:
        assert self.env is not None
        if isinstance(item, Evidence):
            self.env.emit(SENDER, "log", {"line": item.line, "message_id": item.message_id,
                                          "queue_id": item.queue_id, "sender": self.name})
            return
        sent_at = self._status_t.pop(item.message_id, None)
        if sent_at is not None:
            self._time("inject_to_status", sent_at)
        self.env.emit(SENDER, "status", {
            "message_id": item.message_id, "status": item.status, "reason": item.reason,
            "dsn": item.dsn, "mx": item.mx, "relay": item.relay, "queue_id": item.queue_id,
            "log_line": item.log_line, "sender": self.name})
        if item.status == DEFERRED and not self.keep_deferred:
            self._spawn_task(self._drop(item.queue_id), self._drops)

    async def _drop(self, queue_id: str) -> None:
        assert self.inst is not None
        await run(self._x("postsuper", "-c", str(self.inst / "etc"), "-d", queue_id))

    # -- the contract ----------------------------------------------------------------------

    async def reset(self) -> None:
        """Flush the resolver's policy cache and empty the queue (between scenarios)."""
        assert self.inst is not None
        started = time.monotonic()
        if self._drops:
            # Pending queue deletions finish first: they belong to the old scenario.
            await asyncio.wait(list(self._drops), timeout=CMD_TIMEOUT_S)
        flush = (self._flush_sqlite() if self.cache == "sqlite" else self._restart_resolver())
        await asyncio.gather(flush, run(self._x("postsuper", "-c", str(self.inst / "etc"),
                                                 "-d", "ALL")))
        self.log.forget()
        self._status_t.clear()
        self._time("reset", started)

    async def _flush_sqlite(self) -> None:
        assert self.inst is not None
        await asyncio.to_thread(flush_resolver_cache, self.inst / "resolver" / "cache.db")

    async def _restart_resolver(self) -> None:
        proc = self._resolver
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        await self._start_resolver()

    async def inject(self, message: OutgoingMessage) -> None:
        assert self.inst is not None
        self.log.expect(message.message_id, message.rcpt_to)
        self._status_t[message.message_id] = time.monotonic()
        started = time.monotonic()
        rc, out = await run(self._x("/usr/sbin/sendmail", "-C", str(self.inst / "etc"),
                                    "-f", message.mail_from, "-i", "--", message.rcpt_to),
                            stdin=message.as_bytes())
        self._time("inject", started)
        if rc != 0:
            raise SenderFailed(f"{self.name}: sendmail exited {rc}: {out.strip()}")

    async def close(self) -> None:
        """Stop Postfix (its master takes its children down) and the resolver, remove the
        instance. Idempotent."""
        procs = [p for p in (self._master, self._resolver) if p is not None]
        self._master = self._resolver = None
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM if proc is procs[0] else signal.SIGKILL)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        tasks = [*self._tasks, *self._drops]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self.state is not None:
            # Postfix's children (smtp, qmgr ...) exit with the master; whatever was recorded
            # and still runs goes now.
            await asyncio.to_thread(self.state.undo)
            self.state = None
        if self.inst is not None:
            shutil.rmtree(self.inst, ignore_errors=True)
            self.inst = None


def _unchroot(line: str) -> str:
    """Set the chroot column (5th) of a master.cf service line to ``n``."""
    if not line or line[0].isspace() or line.startswith("#"):
        return line
    fields = line.split()
    if len(fields) >= 8:
        fields[4] = "n"
        return "  ".join(fields)
    return line


class PostfixPypiSender(PostfixSender):
    name = "postfix-pypi"
    summary = ("Postfix (Debian) with postfix-mta-sts-resolver 1.5.x from PyPI "
               "(scripts/install-postfix makes the venv)")

    @classmethod
    def resolver_binary(cls) -> Path:
        return RESOLVER_VENV / "bin" / "mta-sts-daemon"

    @classmethod
    def resolver_install(cls) -> str:
        return (f"python3 -m venv {RESOLVER_VENV} && {RESOLVER_VENV}/bin/pip install "
                "'postfix-mta-sts-resolver[sqlite]>=1.5'")
