"""The ``exim`` sender: Exim 4 (Debian's exim4-daemon-light) in the ``exim`` container.

A real-MTA negative control. Exim 4.96 has no MTA-STS client: with the lab CA configured it
tries TLS and verification (``tls_try_verify_hosts = *``) but delivers anyway when STARTTLS
is missing or the certificate does not verify. The lab must catch that: Exim passes the
baselines and fails every enforce-mode attack.

It runs on the ``compose`` backend only (the package conflicts with postfix on a host). Where
it runs (the container, whose agent calls ``prepare`` and ``daemons``), ``exim_config()`` goes
to ``/etc/exim4/exim4.conf`` and ``exim4 -bdf -q2s`` runs; its main log is followed
(``tail -F``) and read as it is written (``EximLog``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.senders.base import BOUNCED, DEFERRED, SENT, OutgoingMessage
from lab.senders.message_log import MessageLog
from lab.senders.mta import InItsImage, MtaSender
from lab.senders.place import Daemon, follow_file

CONFIG_PATH = Path("/etc/exim4/exim4.conf")
CA_PATH = Path("/etc/exim4/lab-ca.pem")
MAINLOG = Path("/var/log/exim4/mainlog")
SPOOL = Path("/var/spool/exim4")
IMAGE = "mtasts-lab/exim:latest"

def empty_spool() -> None:
    """Empty the queue and Exim's hints (retry) databases. Runs where Exim runs
    (``Place.call``): self-contained."""
    import os
    import shutil

    for d in ("input", "msglog", "db"):
        path = os.path.join("/var/spool/exim4", d)
        for child in os.listdir(path) if os.path.isdir(path) else []:
            full = os.path.join(path, child)
            if os.path.isdir(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.unlink(full)


def exim_config(ca_file: Path = CA_PATH) -> str:
    """A minimal client configuration: every remote domain by MX, opportunistic TLS with
    verification tried against the lab CA, short retries, bounces to the probe dropped."""
    return f"""# mtasts-lab: Exim as a sender under test (written by the container's agent)
primary_hostname = sender.test
qualify_domain = sender.test
domainlist local_domains = sender.test
local_interfaces = 127.0.0.1
daemon_smtp_ports = 25
disable_ipv6 = true
host_lookup =
rfc1413_hosts =
never_users =
trusted_users = root
log_file_path = {MAINLOG.parent}/%slog
log_selector = +tls_certificate_verified +tls_peerdn +tls_sni +outgoing_port \\
               +received_recipients +deliver_time +smtp_connection
acl_smtp_rcpt = acl_check_rcpt
remote_max_parallel = 4
queue_run_max = 4
timeout_frozen_after = 1m
ignore_bounce_errors_after = 0s
delay_warning =

begin acl
acl_check_rcpt:
  accept hosts = 127.0.0.1
  deny

begin routers
own_domain:
  driver = redirect
  domains = +local_domains
  data = :blackhole:
dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  ignore_target_hosts = 0.0.0.0 : 127.0.0.0/8
  no_more

begin transports
remote_smtp:
  driver = smtp
  tls_verify_certificates = {ca_file}
  tls_try_verify_hosts = *
  tls_verify_cert_hostnames = *
  tls_sni = $host
  connect_timeout = 5s
  command_timeout = 20s
  hosts_try_chunking =
  hosts_try_prdr =

begin retry
*   *   F,1m,2s

begin rewrite
"""


_LINE = re.compile(r"^(?:\S+ \S+ )?(?:\[\d+\] )?(?P<qid>[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-"
                   r"[0-9A-Za-z]{2,4}) (?:(?P<flag><=|=>|->|==|\*\*|Completed)(?=\s|$))?"
                   r"(?P<rest>.*)$")
_ID = re.compile(r"\bid=(?P<mid>\S+)")
_HOST = re.compile(r"\bH=(?P<host>\S+)(?: \[(?P<addr>[^\]]+)\])?")


@dataclass(frozen=True)
class EximStatus:
    message_id: str
    queue_id: str
    status: str
    reason: str
    mx: str
    log_line: str


@dataclass
class EximLog(MessageLog):
    """Feed main-log lines; get the first decision for each expected Message-ID."""

    def feed(self, line: str) -> tuple[str | None, EximStatus | None]:
        """(the Message-ID this line is about, its decision if the line is one)."""
        m = _LINE.match(line.strip())
        if m is None:
            return None, None
        qid, flag, rest = m["qid"], m["flag"], m["rest"].strip()
        if flag == "<=":
            mid = _ID.search(rest)
            if mid:  # Exim logs the Message-ID without its angle brackets
                key = f"<{mid['mid'].strip('<>')}>"
                if key in self.expected:
                    self.qid_to_mid[qid] = key
        mid_of = self.qid_to_mid.get(qid)
        if mid_of is None or flag not in ("=>", "->", "==", "**") or mid_of in self.decided:
            return mid_of, None
        status = {"=>": SENT, "->": SENT, "==": DEFERRED, "**": BOUNCED}[str(flag)]
        host = _HOST.search(rest)
        mx = host["host"] if host else ""
        reason = rest.split(": ", 1)[1] if status != SENT and ": " in rest else rest
        self.decided.add(mid_of)
        return mid_of, EximStatus(mid_of, qid, status, reason, mx, line)


class EximSender(InItsImage, MtaSender):
    name = "exim"
    summary = ("Exim 4 (Debian exim4-daemon-light) in a container: no MTA-STS client, "
               "a real-MTA negative control (compose backend)")
    backends = ("compose",)


    def __init__(self) -> None:
        super().__init__()
        self.log = EximLog()

    def prepare(self, root: Path, ca_file: Path) -> None:
        for d in ("input", "msglog", "db"):
            shutil.rmtree(SPOOL / d, ignore_errors=True)
        shutil.copyfile(ca_file, CA_PATH)
        os.chmod(CA_PATH, 0o644)
        CONFIG_PATH.write_text(exim_config())
        MAINLOG.parent.mkdir(parents=True, exist_ok=True)
        MAINLOG.touch()
        shutil.chown(MAINLOG, "Debian-exim", "adm")

    def daemons(self, root: Path) -> list[Daemon]:
        return [follow_file("exim", MAINLOG, ready="daemon started"),
                Daemon("exim-daemon", ("/usr/sbin/exim4", "-bdf", "-q2s"))]

    def on_line(self, tag: str, line: str) -> None:
        if tag != "exim":
            return
        mid, status = self.log.feed(line)
        if mid is None:
            return
        self.emit_log(line, mid, self.log_qid(mid))
        if status is not None:
            self.emit_status(mid, status.status, status.reason, mx=status.mx,
                             queue_id=status.queue_id, log_line=status.log_line)

    def log_qid(self, mid: str) -> str:
        return next((q for q, m in self.log.qid_to_mid.items() if m == mid), "")

    async def drop(self, queue_id: str) -> None:
        # Exim may still hold the message open right after the deferral: -Mrm retries itself
        await self.run("sh", "-c", '/usr/sbin/exim4 -Mrm "$1" >/dev/null 2>&1 || true',
                       "sh", queue_id, check=False)

    async def reset(self) -> None:
        await self.settle()
        assert self.place is not None
        await self.place.call(empty_spool)
        self.log.forget()

    async def inject(self, message: OutgoingMessage) -> None:
        self.log.expect(message.message_id)
        self.injected(message.message_id)
        await self.run("/usr/sbin/exim4", "-f", message.mail_from, "-i", "--",
                       message.rcpt_to, stdin=message.as_bytes())


class Exim498Sender(EximSender):
    name = "exim-4.98"
    summary = ("Exim 4.98 (Debian 13) in a container: no MTA-STS client, the second real-MTA "
               "negative control (compose backend)")
    known_failures_as = "exim"
