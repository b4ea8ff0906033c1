"""The ``exim`` sender: Exim 4 (Debian's exim4-daemon-light) in the ``exim`` container.

A real-MTA negative control. Exim 4.96 has no MTA-STS client: with the lab CA configured it
tries TLS and verification (``tls_try_verify_hosts = *``) but delivers anyway when STARTTLS
is missing or the certificate does not verify. The lab must catch that: Exim passes the
baselines and fails every enforce-mode attack.

It runs on the ``compose`` backend only (the package conflicts with postfix on a host). The
agent in the container (``lab.senders.compose_mta``) writes ``exim_config()`` to
``/etc/exim4/exim4.conf`` and runs ``exim4 -bdf -q2s``; its main log is relayed to the
container's stdout, which this adapter reads as it is written (``EximLog``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.events import SENDER
from lab.senders.base import BOUNCED, DEFERRED, SENT, OutgoingMessage, Sender, SenderEnv
from lab.senders.compose_mta import ComposeMtaSender

CONFIG_PATH = Path("/etc/exim4/exim4.conf")
CA_PATH = Path("/etc/exim4/lab-ca.pem")
MAINLOG = Path("/var/log/exim4/mainlog")


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
class EximLog:
    """Feed main-log lines; get the first decision for each expected Message-ID."""

    expected: set[str] = field(default_factory=set)
    qid_to_mid: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)

    def expect(self, message_id: str) -> None:
        self.expected.add(message_id)

    def forget(self) -> None:
        self.expected.clear()
        self.qid_to_mid.clear()
        self.decided.clear()

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


class EximSender(ComposeMtaSender, Sender):
    name = "exim"
    summary = ("Exim 4 (Debian exim4-daemon-light) in a container: no MTA-STS client, "
               "a real-MTA negative control (compose backend)")
    own_status = True
    backends = ("compose",)
    service = "exim"
    profile = "exim"

    @classmethod
    def check(cls) -> list[str]:
        from lab.backends import compose_docker as cd

        try:
            docker = cd.client()
        except cd.DockerUnavailable as exc:
            return [str(exc)]
        try:
            docker.images.get(cd.SENDER_IMAGES["exim"])
        except Exception:
            return [f"image {cd.SENDER_IMAGES['exim']} (scripts/build-images)"]
        finally:
            docker.close()
        return []

    def __init__(self) -> None:
        self.env: SenderEnv | None = None
        self.log = EximLog()
        self._compose_init()

    async def start(self, env: SenderEnv) -> None:
        if env.backend not in self.backends:
            raise RuntimeError(f"exim runs on the compose backend, not {env.backend}")
        await self._compose_start(env)

    def _on_line(self, line: str) -> None:
        assert self.env is not None
        mid, status = self.log.feed(line)
        if mid is None:
            return
        qid = self.log_qid(mid)
        self.env.emit(SENDER, "log", {"line": line, "message_id": mid, "queue_id": qid,
                                      "sender": self.name})
        if status is not None:
            self._status_t.pop(mid, None)
            self._emit_status(mid, status.status, status.reason, mx=status.mx,
                              queue_id=status.queue_id, log_line=status.log_line)

    def log_qid(self, mid: str) -> str:
        return next((q for q, m in self.log.qid_to_mid.items() if m == mid), "")

    async def _drop(self, queue_id: str) -> None:
        # Exim may still hold the message open right after the deferral: -Mrm retries itself
        await self._exec(["sh", "-c", '/usr/sbin/exim4 -Mrm "$1" >/dev/null 2>&1 || true',
                          "sh", queue_id])

    async def reset(self) -> None:
        await self._compose_reset()
        self.log.forget()

    async def inject(self, message: OutgoingMessage) -> None:
        self.log.expect(message.message_id)
        self._status_t[message.message_id] = time.monotonic()
        await self._inject_file(message, ["/usr/sbin/exim4", "-f", message.mail_from, "-i",
                                          "--", message.rcpt_to])

    async def close(self) -> None:
        await self._compose_close()
