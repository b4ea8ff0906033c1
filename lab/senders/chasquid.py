"""The ``chasquid`` sender: chasquid (Debian 12's 1.11), a Go MTA with its own MTA-STS client.

A private instance per run where the backend's ``Place`` runs it (netns: the sender's
namespace): a config directory with a per-run certificate for ``sender.test`` (chasquid will
not start without one; thrown away with the instance), ``data_dir`` beside it, the mail log
on stdout and the debug log (``-v 1``) on stderr, ``mail_delivery_agent_bin`` ``/bin/true``
(nothing is delivered locally). Outgoing MTA-STS is always on in chasquid; nothing to set.
Trust: ``SSL_CERT_FILE`` names the lab CA and ``SSL_CERT_DIR`` is unset (Go reads the roots
once per process: a new CA is a new instance).

Injection: SMTP submission on ``127.0.0.1:587`` where chasquid runs, STARTTLS, AUTH PLAIN as
a user made with ``chasquid-util`` for this run. chasquid does not log the Message-ID, so the
submitting connection's own address ties the ``queued`` line's queue id to the message
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

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
import time
from pathlib import Path

from lab.senders.base import OutgoingMessage
from lab.senders.chasquid_log import ChasquidLog
from lab.senders.mta import MtaSender, SenderFailed
from lab.senders.place import Daemon

BINARY = "/usr/bin/chasquid"
UTIL = "/usr/bin/chasquid-util"
HOSTNAME = "sender.test"
USER = "probe@sender.test"
SUBMISSION = ("127.0.0.1", 587)
SUBMIT_TIMEOUT_S = 20.0
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
        self.password = secrets.token_urlsafe(18)

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
                              f"--password={self.password}"], capture_output=True, text=True,
                             timeout=30, check=False)
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
        assert self.place is not None
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._submit(message), SUBMIT_TIMEOUT_S)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise SenderFailed(f"chasquid: submission failed: {exc!r}") from exc
        self._time("inject", started)

    async def _submit(self, message: OutgoingMessage) -> None:
        assert self.place is not None
        reader, writer = await self.place.open_connection(*SUBMISSION)

        async def reply() -> tuple[int, str]:
            lines = []
            while True:
                raw = await reader.readline()
                if not raw:
                    raise SenderFailed("chasquid: submission connection closed")
                text = raw.decode(errors="replace").rstrip("\r\n")
                lines.append(text)
                if len(text) < 4 or text[3] != "-":
                    return int(text[:3]), "\n".join(lines)

        async def cmd(line: str, want: int) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            code, text = await reply()
            if code != want:
                raise SenderFailed(f"chasquid: {line.split()[0]} answered {text!r}")

        try:
            await reply()
            await cmd("EHLO lab-submitter.test", 250)
            await cmd("STARTTLS", 220)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # its own throwaway certificate
            await writer.start_tls(ctx, server_hostname=HOSTNAME)
            await cmd("EHLO lab-submitter.test", 250)
            token = base64.b64encode(f"\0{USER}\0{self.password}".encode()).decode()
            await cmd(f"AUTH PLAIN {token}", 235)
            client = "{}:{}".format(*writer.get_extra_info("sockname")[:2])
            self.log.expect(client, message.message_id, message.rcpt_to)
            self.injected(message.message_id)
            await cmd(f"MAIL FROM:<{message.mail_from}>", 250)
            await cmd(f"RCPT TO:<{message.rcpt_to}>", 250)
            await cmd("DATA", 354)
            body = message.as_bytes().replace(b"\r\n.", b"\r\n..")
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            writer.write(body + b".\r\n")
            await writer.drain()
            code, text = await reply()
            if code != 250:
                raise SenderFailed(f"chasquid: DATA answered {text!r}")
            writer.write(b"QUIT\r\n")
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
