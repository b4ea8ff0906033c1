"""The chasquid senders, a Go MTA with its own MTA-STS client: ``chasquid`` (Debian 12's
1.11, netns) and ``chasquid-1.15`` (Debian 13's, in its container on compose).

A private instance per run where the backend's ``Place`` runs it (netns: the sender's
namespace): a config directory with a per-run certificate for ``sender.test`` (chasquid will
not start without one; thrown away with the instance), ``data_dir`` beside it, the mail log
on stdout and the debug log (``-v 1``) on stderr, ``mail_delivery_agent_bin`` ``/bin/true``
(nothing is delivered locally). Outgoing MTA-STS is always on in chasquid; nothing to set.
Trust: ``SSL_CERT_FILE`` names the lab CA and ``SSL_CERT_DIR`` is unset (Go reads the roots
once per process: a new CA is a new instance).

Injection: SMTP submission on ``127.0.0.1:587`` where chasquid runs (``submit``, run there by
python3 through the place: the same on every backend), STARTTLS, AUTH PLAIN as a user made
with ``chasquid-util`` for this run. chasquid does not log the Message-ID, so the submitting
connection's source port, chosen here, ties the ``queued`` line's queue id to the message
(``ChasquidLog``).

Reset between scenarios: chasquid keeps policies in ``data_dir/sts-cache`` and, checked
before MTA-STS, the best security level seen per domain in ``data_dir/domaininfo``; a later
refusal could come from that memory and be credited to MTA-STS. So the reset stops chasquid,
deletes ``queue``, ``sts-cache`` and ``domaininfo`` and starts it again. Each status says
which check refused (``mechanism``: ``mta-sts`` or ``domaininfo``), from chasquid's reason.
Deferred mail cannot be deleted from a running chasquid; it is retried after about 70 s, and
the retry's result is ignored (the first decision counts).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import secrets
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

from lab.senders.base import OutgoingMessage
from lab.senders.chasquid_log import ChasquidLog
from lab.senders.mta import InItsImage, MtaSender, SenderFailed
from lab.senders.place import Daemon

BINARY = "/usr/bin/chasquid"
UTIL = "/usr/bin/chasquid-util"
HOSTNAME = "sender.test"
USER = "probe@sender.test"
SUBMISSION = ("127.0.0.1", 587)
SUBMIT_TIMEOUT_S = 20.0
SOURCE_PORTS = (20000, 30000)
"""The submitting connection's source port is drawn from here: below Linux's ephemeral
range, so chasquid's own outgoing connections never hold one."""
PORT_IN_USE = 75
SUBMIT_TRIES = 5
STATE_DIRS = ("queue", "sts-cache", "domaininfo")


def chasquid_conf(root: Path) -> str:
    return (f'hostname: "{HOSTNAME}"\n'
            'smtp_address: "127.0.0.1:25"\n'
            f'submission_address: "{SUBMISSION[0]}:{SUBMISSION[1]}"\n'
            'submission_over_tls_address: "127.0.0.1:465"\n'
            f'data_dir: "{root / "data"}"\n'
            'mail_log_path: "<stdout>"\n'
            'mail_delivery_agent_bin: "/bin/true"\n')


class ChasquidSender(MtaSender):
    name = "chasquid"
    summary = ("chasquid (Debian), a Go MTA with its own MTA-STS client: a private instance "
               "per run, domaininfo and STS cache reset per scenario")
    backends = ("netns",)

    def __init__(self) -> None:
        super().__init__()
        self.log = ChasquidLog()

    @classmethod
    def version(cls) -> str:
        try:
            out = subprocess.run([BINARY, "-version"], capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        words = (out.stdout or out.stderr).split()
        return words[1] if len(words) > 1 else ""

    @classmethod
    def check(cls) -> list[str]:
        missing = []
        if not Path(BINARY).exists() or not Path(UTIL).exists():
            missing.append("chasquid: apt-get install chasquid (a policy-rc.d that says no "
                           "keeps apt from starting the host's chasquid)")
        if os.geteuid() != 0:
            missing.append("root (a private chasquid binds port 25 in the sender namespace)")
        return missing

    # -- the instance ------------------------------------------------------------------------

    def prepare(self, root: Path, ca_file: Path) -> None:
        import trustme

        conf, data = root / "conf", root / "data"
        certs = conf / "certs" / HOSTNAME
        certs.mkdir(parents=True)
        data.mkdir()
        (conf / "domains" / HOSTNAME).mkdir(parents=True)
        leaf = trustme.CA(organization_name="mtasts-lab chasquid").issue_cert(HOSTNAME)
        leaf.private_key_pem.write_to_path(str(certs / "privkey.pem"))
        (certs / "fullchain.pem").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
        os.chmod(certs / "privkey.pem", 0o600)
        shutil.copyfile(ca_file, root / "lab-ca.pem")
        (conf / "chasquid.conf").write_text(chasquid_conf(root))
        out = subprocess.run([UTIL, f"--configdir={conf}", "user-add", USER,
                              f"--password={submission_password(ca_file)}"],
                             capture_output=True, text=True, timeout=30, check=False)
        if out.returncode != 0:
            raise SenderFailed(f"chasquid-util user-add: {(out.stdout + out.stderr).strip()}")

    def daemons(self, root: Path) -> list[Daemon]:
        return [Daemon("chasquid", (BINARY, "-config_dir", str(root / "conf"), "-v", "1",
                                    "-alsologtostderr"),
                       ready=f"daemon listening on {SUBMISSION[0]}:{SUBMISSION[1]}",
                       env={"SSL_CERT_FILE": str(root / "lab-ca.pem")},
                       unset=("SSL_CERT_DIR",))]

    def on_line(self, tag: str, line: str) -> None:
        mids, status = self.log.feed(line)
        for mid in mids:
            self.emit_log(line, mid, next((q for q, m in self.log.by_qid.items() if m == mid),
                                          ""))
        if status is not None:
            self.emit_status(status.message_id, status.status, status.reason,
                             mechanism=status.mechanism, queue_id=status.queue_id,
                             log_line=status.log_line, mx="")

    def drops_deferred(self) -> bool:
        return False  # a running chasquid cannot forget one message; see the module doc

    # -- the contract ----------------------------------------------------------------------

    async def reset(self) -> None:
        """Stop chasquid, delete its queue, STS cache and domaininfo, start it again."""
        assert self.root is not None and self.place is not None
        started = time.monotonic()
        await self.settle()
        data = self.root / "data"
        await self.place.restart("chasquid", ("rm", "-rf", *(str(data / d)
                                                               for d in STATE_DIRS)))
        self.log.forget()
        self._time("reset", started)

    async def inject(self, message: OutgoingMessage) -> None:
        """Submit where chasquid runs (``submit`` by the place's python3), from a source port
        chosen here, so that the ``queued`` line's ``ip=`` names this message."""
        assert self.place is not None
        started = time.monotonic()
        assert self.env is not None
        code = textwrap.dedent(inspect.getsource(submit)) + "\nsubmit(*sys.argv[1:])\n"
        password = submission_password(self.env.ca_file)
        for _ in range(SUBMIT_TRIES):
            port = secrets.randbelow(SOURCE_PORTS[1] - SOURCE_PORTS[0]) + SOURCE_PORTS[0]
            self.log.expect(f"{SUBMISSION[0]}:{port}", message.message_id, message.rcpt_to)
            self.injected(message.message_id)
            rc, out = await self.place.run(
                ["python3", "-c", "import sys\n" + code, SUBMISSION[0], str(SUBMISSION[1]),
                 str(port), USER, password, message.mail_from, message.rcpt_to],
                stdin=message.as_bytes(), timeout=SUBMIT_TIMEOUT_S)
            if rc != PORT_IN_USE:
                break
        if rc != 0:
            raise SenderFailed(f"chasquid: submission failed ({rc}): {out.strip()[-300:]}")
        self._time("inject", started)


def submission_password(ca_file: Path) -> str:
    """The probe user's password, derived from this run's lab CA: the adapter that writes the
    instance (where chasquid runs: in a container, the agent's) and the one that submits
    (the runner's) each compute it."""
    return hashlib.sha256(b"mtasts-lab chasquid submission\0" + ca_file.read_bytes()).hexdigest()


def submit(host: str, port: str, source_port: str, user: str, password: str, mail_from: str,
           rcpt_to: str) -> None:
    """Submit the message on stdin over STARTTLS and AUTH PLAIN from ``source_port``. Runs
    where chasquid runs (its own source: no lab import); exit 75 if the port is taken."""
    import base64
    import errno
    import smtplib
    import ssl
    import sys

    try:
        smtp = smtplib.SMTP(host, int(port), timeout=20,
                            source_address=("127.0.0.1", int(source_port)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            sys.exit(75)
        raise
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # chasquid's own throwaway certificate
    smtp.ehlo("lab-submitter.test")
    smtp.starttls(context=ctx)
    smtp.ehlo("lab-submitter.test")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    code, text = smtp.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        sys.exit(f"AUTH answered {code} {text!r}")
    smtp.sendmail(mail_from, [rcpt_to], sys.stdin.buffer.read())
    smtp.quit()


class Chasquid115Sender(InItsImage, ChasquidSender):
    name = "chasquid-1.15"
    known_failures_as = "chasquid"
    summary = ("chasquid 1.15 (Debian 13) in a container, its own MTA-STS client: domaininfo "
               "and STS cache reset per scenario (compose backend)")
    backends = ("compose",)

