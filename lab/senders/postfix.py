"""The ``postfix`` senders: a private Postfix instance with postfix-mta-sts-resolver.

Two profiles, the same Postfix (Debian's package):

* ``postfix``: the resolver from Debian's ``postfix-mta-sts-resolver`` package
  (``/usr/bin/mta-sts-daemon``);
* ``postfix-pypi``: the PyPI release (1.5.x) from the venv that ``scripts/install-postfix``
  makes (``$MTASTS_LAB_RESOLVER_VENV``, default ``/opt/mtasts-lab/resolver-venv``).

Everything runs where the backend's ``Place`` says (netns: ``ip netns exec
mtl-<runid>-sender`` on this host, in a fresh ``/var/tmp/mtasts-lab-postfix-*`` instance that
``mtasts-lab down`` removes after a crash; compose: the ``postfix`` container, whose agent runs
this same adapter's ``prepare`` and ``daemons``), so the host's own Postfix and resolver, if
any, are never used nor touched.

Observation: Postfix logs to ``maillog_file = /dev/stdout`` of a master run with ``-s``, read
as it is written. ``postfix_log.PostfixLog`` ties each Message-ID to its queue
id and turns the first ``status=`` line into ``("sender", "status", {...})``; every line
about the message (and the resolver's lines that name its domain) becomes
``("sender", "log", {line})``. A deferred message is then deleted from the queue: the first
deferral is the decision, and its retries would only muddle the next phases.

The resolver's policy cache is flushed between scenarios (``reset``) and kept between phases.
With the ``sqlite`` cache (the default) that is one ``DELETE`` on the live database
(``flush_resolver_cache``, the one reset for every place); with ``internal``
(``MTASTS_LAB_POSTFIX_CACHE=internal``) the daemon is SIGKILLed and restarted.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import signal
import time
from pathlib import Path

from lab.senders.base import OutgoingMessage
from lab.senders.mta import MtaSender
from lab.senders.place import Daemon
from lab.senders.postfix_log import Evidence, PostfixLog

POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")
RESOLVER_DEBIAN = Path("/usr/bin/mta-sts-daemon")
RESOLVER_VENV = Path(os.environ.get("MTASTS_LAB_RESOLVER_VENV",
                                    "/opt/mtasts-lab/resolver-venv"))
RESOLVER_PORT = 8461

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


def flush_resolver_cache(db: str) -> None:
    """Empty postfix-mta-sts-resolver's live sqlite cache (it keeps running). Runs where
    Postfix runs (``Place.call``): self-contained."""
    import contextlib
    import os
    import sqlite3

    if not os.path.exists(db):
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


class PostfixSender(MtaSender):
    name = "postfix"
    summary = ("Postfix (Debian) with postfix-mta-sts-resolver (Debian package), "
               "a private instance where the backend runs the sender")
    smart_host = ("relayhost = <the smart host domain> (a domain: Postfix looks up its MX); "
                  "the instance restarts when the setting changes")

    def __init__(self, cache: str | None = None, keep_deferred: bool | None = None,
                 dane: str | None = None) -> None:
        super().__init__()
        self.dane = (dane or os.environ.get("MTASTS_LAB_POSTFIX_DANE", "no")) == "yes"
        """--sender-opt dane=yes: DNSSEC lookups and smtp_tls_security_level = dane (X1)."""
        self.cache = cache or os.environ.get("MTASTS_LAB_POSTFIX_CACHE", "sqlite")
        if self.cache not in ("sqlite", "internal"):
            raise ValueError(f"resolver cache must be sqlite or internal, not {self.cache!r}")
        if keep_deferred is None:
            keep_deferred = os.environ.get("MTASTS_LAB_POSTFIX_KEEP_DEFERRED", "") == "1"
        self.keep_deferred = keep_deferred
        self.log = PostfixLog()
        self._relayhost = ""

    @property
    def inst(self) -> Path | None:
        """The instance directory (config, queue, resolver) while running."""
        return self.root

    # -- what the machine needs ------------------------------------------------------------

    @classmethod
    def resolver_binary(cls) -> Path:
        return RESOLVER_DEBIAN

    @classmethod
    def resolver_install(cls) -> str:
        return "apt-get install postfix-mta-sts-resolver"

    @classmethod
    def version(cls) -> str:
        """Postfix's and the resolver's versions as installed on this host ('' if none)."""
        postfix = _postconf_version()
        resolver = cls.resolver_version()
        return f"{postfix}+resolver-{resolver}" if postfix and resolver else postfix

    @classmethod
    def resolver_version(cls) -> str:
        return _dpkg_version("postfix-mta-sts-resolver")

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

    # -- the instance ------------------------------------------------------------------------

    def prepare(self, root: Path, ca_file: Path) -> None:
        """Config, queue and resolver YAML under ``root`` (the same on every place)."""
        uid, gid = pwd.getpwnam("postfix").pw_uid, grp.getgrnam("postdrop").gr_gid
        etc, queue, data = root / "etc", root / "queue", root / "data"
        for d in (etc, queue, data, root / "resolver"):
            d.mkdir()
        for name, owner, group, mode in _QUEUE_DIRS:
            path = queue / name
            path.mkdir()
            os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
            os.chmod(path, mode)
        os.chown(data, uid, gid)
        os.chmod(data, 0o700)
        ca = root / "lab-ca.pem"
        shutil.copyfile(ca_file, ca)
        os.chmod(ca, 0o644)
        shutil.copyfile("/etc/postfix/master.cf", etc / "master.cf")
        for extra in ("dynamicmaps.cf",):
            if Path("/etc/postfix", extra).exists():
                shutil.copyfile(Path("/etc/postfix", extra), etc / extra)
        settings = {**main_cf(root, ca), **self.own_main_cf(root)}
        if self.dane:  # DANE where TLSA records validate; the policy map may still override
            settings.update(smtp_dns_support_level="dnssec", smtp_tls_security_level="dane")
        (etc / "main.cf").write_text("# mtasts-lab private instance\n" + "".join(
            f"{k} = {v}\n" for k, v in settings.items()))
        # No chroot: the smtp client must read the namespace's resolv.conf.
        text = (etc / "master.cf").read_text().splitlines()
        (etc / "master.cf").write_text("\n".join(_unchroot(line) for line in text) + "\n")
        (root / "resolver" / "mta-sts-daemon.yml").write_text(
            resolver_yaml(self.cache, root / "resolver" / "cache.db"))

    def own_main_cf(self, root: Path) -> dict[str, str]:
        """Settings a variant of this sender adds to the instance's main.cf (or overrides)."""
        return {}

    def daemons(self, root: Path) -> list[Daemon]:
        return [
            Daemon("mta-sts-daemon", (str(self.resolver_binary()), "-v", "debug",
                                      "--disable-uvloop", "-c",
                                      str(root / "resolver" / "mta-sts-daemon.yml")),
                   ready="Server started",
                   env={"SSL_CERT_FILE": str(root / "lab-ca.pem"),
                        "PYTHONDONTWRITEBYTECODE": "1"},
                   unset=("SSL_CERT_DIR",), stop_signal=signal.SIGKILL),
            Daemon("postfix", (str(POSTFIX_DAEMONS / "master"), "-c", str(root / "etc"), "-s"),
                   ready="daemon started"),
        ]

    def on_line(self, tag: str, line: str) -> None:
        items = (self.log.feed_resolver(line) if tag == "mta-sts-daemon"
                 else self.log.feed(line))
        for item in items:
            if isinstance(item, Evidence):
                self.emit_log(item.line, item.message_id, item.queue_id)
            else:
                self.emit_status(item.message_id, item.status, item.reason, dsn=item.dsn,
                                 mx=item.mx, relay=item.relay, queue_id=item.queue_id,
                                 log_line=item.log_line)

    def drops_deferred(self) -> bool:
        return not self.keep_deferred

    async def drop(self, queue_id: str) -> None:
        assert self.root is not None
        await self.run("postsuper", "-c", str(self.root / "etc"), "-d", queue_id, check=False)

    # -- the contract ----------------------------------------------------------------------

    async def reset(self) -> None:
        """Flush the resolver's policy cache and empty the queue (between scenarios)."""
        assert self.root is not None and self.place is not None
        started = time.monotonic()
        await self.settle()  # pending deletions belong to the old scenario
        flush = (self.place.call(flush_resolver_cache, str(self.root / "resolver" / "cache.db"))
                 if self.cache == "sqlite" else self.place.restart("mta-sts-daemon"))
        await asyncio.gather(flush, self.run("postsuper", "-c", str(self.root / "etc"), "-d",
                                             "ALL", check=False))
        self.log.forget()
        self._time("reset", started)

    def relays(self) -> str:
        # a place that starts a new instance on restart would lose the setting
        return self.smart_host if self.place is None or self.place.restarts_in_place else ""

    async def _relay_through(self, relayhost: str) -> None:
        """Set ``relayhost`` (RFC 8461 3.4: the smart host's domain is the policy domain;
        Postfix asks the TLS policy map for the next hop, here that domain). The master is
        restarted around ``postconf -e`` so that no process of the old configuration
        routes the next message (a reload lets old processes finish at their leisure)."""
        assert self.root is not None and self.place is not None
        if relayhost == self._relayhost:
            return
        await self.place.restart("postfix", between=(
            "postconf", "-c", str(self.root / "etc"), "-e", f"relayhost = {relayhost}"))
        self._relayhost = relayhost

    async def inject(self, message: OutgoingMessage) -> None:
        assert self.root is not None
        self.log.expect(message.message_id, message.rcpt_to, message.smart_host)
        self.injected(message.message_id)
        started = time.monotonic()
        await self._relay_through(message.smart_host or "")
        await self.run("/usr/sbin/sendmail", "-C", str(self.root / "etc"),
                       "-f", message.mail_from, "-i", "--", message.rcpt_to,
                       stdin=message.as_bytes())
        self._time("inject", started)


def _dpkg_version(package: str) -> str:
    import subprocess

    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _postconf_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["postconf", "-h", "mail_version"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out

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
               "(scripts/install-postfix makes the venv; netns only)")
    backends = ("netns",)

    @classmethod
    def resolver_binary(cls) -> Path:
        return RESOLVER_VENV / "bin" / "mta-sts-daemon"

    @classmethod
    def resolver_version(cls) -> str:
        found = sorted(RESOLVER_VENV.glob("lib/python*/site-packages/"
                                          "postfix_mta_sts_resolver-*.dist-info"))
        return found[-1].name.removesuffix(".dist-info").split("-")[1] if found else ""

    @classmethod
    def resolver_install(cls) -> str:
        return (f"python3 -m venv {RESOLVER_VENV} && {RESOLVER_VENV}/bin/pip install "
                "'postfix-mta-sts-resolver[sqlite]>=1.5'")
