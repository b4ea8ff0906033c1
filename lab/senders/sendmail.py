"""The ``sendmail`` sender: sendmail 8 with ``FEATURE(`sts')`` and postfix-mta-sts-resolver.

Debian's sendmail (8.17 on Debian 12) is built with ``_FFR_MTA_STS``. ``sendmail-cf`` ships
``feature/sts.m4``: it sets ``StrictTransportSecurity=true`` and ``SetCertAltnames=true`` and
declares the map ``sts`` as a socketmap to a postfix-mta-sts-resolver-style daemon
(``inet:5461@127.0.0.1``). The resolver answers ``secure match=<names> servername=hostname``
for a domain with an enforce policy; the rulesets of ``proto.m4`` then require a verified
certificate (``tls_server``), a server name among the policy's MX patterns (``tls_rcpt``) and
that name among the certificate's subjectAltNames.

It runs on the ``compose`` backend only: the Debian package conflicts with postfix, and a
sendmail on the host would ask the host's resolver. In its container the agent calls
``prepare`` (``sendmail.mc`` -> ``sendmail.cf`` with m4, the lab CA as ``CACertFile``, a
queue of its own) and ``daemons``: the resolver on 127.0.0.1:5461 and a syslog socket of the
adapter's own (``lab.senders.sendmail_log``; sendmail logs only through syslog). There is no
sendmail daemon: each message is injected with ``sendmail -C <cf> -odb`` as root, which
queues it and delivers it at once in a background process. Its ``stat=`` log line is the
decision (``SendmailLog``); a deferred message is then removed from the queue.

Between scenarios the queue is emptied and the resolver's sqlite cache flushed (the same
flush as Postfix's).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from lab.senders.base import OutgoingMessage
from lab.senders.mta import InItsImage, MtaSender
from lab.senders.place import Daemon
from lab.senders.postfix import flush_resolver_cache
from lab.senders.sendmail_log import READY, SendmailLog, relay_command

CF_M4 = Path("/usr/share/sendmail/cf/m4/cf.m4")
SENDMAIL = Path("/usr/sbin/sendmail")
RESOLVER = Path("/usr/bin/mta-sts-daemon")
RESOLVER_PORT = 5461  # the socketmap address FEATURE(`sts') names by default
SYSLOG_SOCKET = Path("/dev/log")


def sendmail_mc(root: Path, ca_file: Path) -> str:
    """The instance's sendmail.mc: a client for every remote domain by MX, opportunistic
    STARTTLS verified against the lab CA, MTA-STS through FEATURE(`sts') as shipped, short
    timeouts, no local delivery, no bounces (the probe asks for none, ``-N never``). The load
    limits are lifted: above ``QueueLA`` (8 per CPU by default) sendmail only queues a
    message, and a test machine's load can be far above that. ``AuthOptions=A``: no
    ``AUTH=<>`` on MAIL FROM unless it authenticated (the lab's sink, aiosmtpd, advertises
    AUTH after STARTTLS but refuses that parameter with 555)."""
    return f"""divert(-1)
# mtasts-lab: sendmail as a sender under test (written by lab.senders.sendmail)
divert(0)dnl
include(`{CF_M4}')dnl
VERSIONID(`mtasts-lab sendmail sender')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `sender.test')dnl
define(`QUEUE_DIR', `{root}/mqueue')dnl
define(`STATUS_FILE', `{root}/sendmail.st')dnl
define(`confPID_FILE', `{root}/sendmail.pid')dnl
define(`confSERVICE_SWITCH_FILE', `{root}/service.switch')dnl
define(`ALIAS_FILE', `')dnl
define(`confCACERT', `{ca_file}')dnl
define(`confCACERT_PATH', `{root}/certs')dnl
define(`confLOG_LEVEL', `14')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDELIVERY_MODE', `background')dnl
define(`confQUEUE_LA', `1000')dnl
define(`confREFUSE_LA', `1000')dnl
define(`confDELAY_LA', `0')dnl
define(`confTO_ICONNECT', `5s')dnl
define(`confTO_CONNECT', `5s')dnl
define(`confTO_INITIAL', `20s')dnl
define(`confTO_HELO', `20s')dnl
define(`confTO_STARTTLS', `20s')dnl
define(`confTO_MAIL', `20s')dnl
define(`confTO_RCPT', `20s')dnl
define(`confTO_DATAINIT', `20s')dnl
define(`confTO_DATABLOCK', `30s')dnl
define(`confTO_DATAFINAL', `30s')dnl
define(`confTO_QUIT', `2s')dnl
define(`confTO_QUEUEWARN', `0')dnl
define(`confMIN_QUEUE_AGE', `0')dnl
define(`confSAFE_QUEUE', `True')dnl
define(`confAUTH_OPTIONS', `A')dnl
FEATURE(`nocanonify')dnl
FEATURE(`sts')dnl
MAILER(`smtp')dnl
"""


class SendmailSender(InItsImage, MtaSender):
    name = "sendmail"
    summary = ("sendmail 8 (Debian, built with _FFR_MTA_STS) with FEATURE(`sts') and "
               "postfix-mta-sts-resolver in a container (compose backend)")
    backends = ("compose",)


    def __init__(self) -> None:
        super().__init__()
        self.log = SendmailLog()

    @property
    def cf(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root / "sendmail.cf"

    # -- where it runs (the container's agent) ---------------------------------------------

    def prepare(self, root: Path, ca_file: Path) -> None:
        for sub in ("mqueue", "certs", "resolver"):
            (root / sub).mkdir()
        (root / "mqueue").chmod(0o700)
        (root / "sendmail.st").touch()
        ca = root / "certs" / "lab-ca.pem"
        shutil.copyfile(ca_file, ca)
        ca.chmod(0o644)
        # its own name from /etc/hosts (else it waits for DNS to know it); MXes from DNS
        (root / "service.switch").write_text("hosts files dns\naliases files\n")
        mc = root / "sendmail.mc"
        mc.write_text(sendmail_mc(root, ca))
        with open(root / "sendmail.cf", "w") as out:
            done = subprocess.run(["m4", str(mc)], stdout=out, stderr=subprocess.PIPE,
                                  text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"m4 {mc} exited {done.returncode}: {done.stderr.strip()}")
        (root / "resolver" / "mta-sts-daemon.yml").write_text(
            f"host: 127.0.0.1\nport: {RESOLVER_PORT}\nreuse_port: true\n"
            "shutdown_timeout: 1\n"
            "cache:\n  type: sqlite\n  options:\n"
            f"    filename: \"{root / 'resolver' / 'cache.db'}\"\n"
            "default_zone:\n  strict_testing: false\n  timeout: 4\n")

    def daemons(self, root: Path) -> list[Daemon]:
        return [
            Daemon("sendmail", relay_command(str(SYSLOG_SOCKET)), ready=READY),
            Daemon("mta-sts-daemon", (str(RESOLVER), "-v", "debug", "--disable-uvloop", "-c",
                                      str(root / "resolver" / "mta-sts-daemon.yml")),
                   ready="Server started",
                   env={"SSL_CERT_FILE": str(root / "certs" / "lab-ca.pem"),
                        "PYTHONDONTWRITEBYTECODE": "1"},
                   unset=("SSL_CERT_DIR",), stop_signal=signal.SIGKILL),
        ]

    # -- its log ---------------------------------------------------------------------------

    def on_line(self, tag: str, line: str) -> None:
        if tag != "sendmail":
            return
        mid, status = self.log.feed(line)
        if mid is None:
            return
        self.emit_log(line, mid, self.log.queue_id(mid))
        if status is not None:
            self.emit_status(mid, status.status, status.reason, dsn=status.dsn, mx=status.mx,
                             queue_id=status.queue_id, log_line=status.log_line)

    async def drop(self, queue_id: str) -> None:
        assert self.root is not None
        await self.run("sh", "-c", 'rm -f "$1"/mqueue/[qdxt]f"$2"', "sh", str(self.root),
                       queue_id, check=False)

    # -- the contract ----------------------------------------------------------------------

    async def reset(self) -> None:
        """Empty the queue and flush the resolver's policy cache (between scenarios)."""
        assert self.root is not None and self.place is not None
        started = time.monotonic()
        await self.settle()
        await self.place.call(flush_resolver_cache, str(self.root / "resolver" / "cache.db"))
        await self.run("sh", "-c", 'rm -f "$1"/mqueue/*', "sh", str(self.root), check=False)
        self.log.forget()
        self._time("reset", started)

    async def inject(self, message: OutgoingMessage) -> None:
        self.log.expect(message.message_id)
        self.injected(message.message_id)
        started = time.monotonic()
        await self.run(str(SENDMAIL), "-C", str(self.cf), "-odb", "-N", "never",
                       "-f", message.mail_from, "-i", "--", message.rcpt_to,
                       stdin=message.as_bytes())
        self._time("inject", started)
