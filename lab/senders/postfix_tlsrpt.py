"""The ``postfix-3.10`` sender: Postfix 3.10 (Debian 13) with postfix-mta-sts-resolver 1.5.0
and TLSRPT, in its container on the compose backend. It reports (RFC 8460).

The same instance as the ``postfix`` sender (``PostfixSender``), plus Postfix's own TLSRPT
support: ``smtp_tlsrpt_enable = yes`` makes the smtp client send one datagram per TLS
session to libtlsrpt's socket, and the resolver's ``tlsrpt: true`` hands Postfix the policy
details it reports. tlsrpt-reporter (PyPI, the image's ``tlsrpt`` extra) turns the datagrams
into reports:

* ``tlsrpt-collectd`` receives the datagrams into an sqlite store, and logs each one (its
  ``dummy://?log`` store): the count tells when the last session of a phase has arrived;
* at ``flush_reports`` collectd rolls its "day" over (SIGUSR2: the period the lab makes one
  phase) and a fresh ``tlsrpt-reportd`` (its state emptied: it reports a day once) builds the
  reports of the closed day and delivers them: HTTPS with curl (the lab CA) and mail through
  this same Postfix (``sendmail -t``), to the ``rua`` the resolver gave Postfix;
* reportd logs to a file that a ``tail`` daemon follows; once it sleeps with nothing due
  (``Sleeping for N seconds``, N of a minute or more) every submission has ended and the
  adapter says ``tlsrpt-settled``. A failed submission is retried by reportd only after
  minutes (its ``min_wait_delivery``), beyond a phase.

``start_period`` (before a phase) rolls the day over without reporting it: the reports of a
phase then cover that phase only.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from lab.events import SENDER
from lab.senders.mta import InItsImage, SenderFailed
from lab.senders.place import Daemon, follow_file
from lab.senders.postfix import PostfixSender

REPORTER = "tlsrpt-reporter"
WAIT_S = 15.0
"""Deadline for collectd's datagrams and its day roll-over (reported when hit)."""
SETTLED_SLEEP_S = 60
_SLEEPING = re.compile(r"Sleeping for (\d+) seconds")
_DATAGRAM = "Dummy collectd got datagram"
_ROLLED = "Old database moved to"
_POSTFIX_REPORTED = re.compile(r"\bTLSRPT: status=")

_FLUSH = r"""
set -eu
dir=$1; shift
if [ -s "$dir/reportd.pid" ]; then
    pid=$(cat "$dir/reportd.pid")
    kill "$pid" 2>/dev/null && timeout 10 tail --pid="$pid" -f /dev/null || true
fi
rm -f "$dir"/reportd.sqlite* "$dir/reportd.pid"
[ "${1:-}" = report ] || exit 0
shift
: > "$dir/reportd.log"
setsid "$@" >>"$dir/reportd.log" 2>&1 </dev/null &
echo $! > "$dir/reportd.pid"
"""


class Postfix310Sender(InItsImage, PostfixSender):
    name = "postfix-3.10"
    summary = ("Postfix 3.10 (Debian 13) with postfix-mta-sts-resolver 1.5.0 and TLSRPT "
               "(libtlsrpt, tlsrpt-reporter): it reports over HTTPS and mail (compose backend)")
    backends = ("compose",)
    reports_tlsrpt = True

    def __init__(self, cache: str | None = None, keep_deferred: bool | None = None,
                 dane: str | None = None) -> None:
        super().__init__(cache, keep_deferred, dane)
        self._sessions = 0  # Postfix's TLSRPT lines since the last roll-over
        self._datagrams = 0  # collectd's datagrams since the last roll-over
        self._counted = asyncio.Event()
        self._rolled = asyncio.Event()
        self._reporting = False


    # -- the instance ------------------------------------------------------------------------

    def own_main_cf(self, root: Path) -> dict[str, str]:
        settings = {"smtp_tlsrpt_enable": "yes",
                    "smtp_tlsrpt_socket_name": str(root / "tlsrpt" / "collectd.sock")}
        if not self.keep_deferred:
            # the first deferral decides and the message is then deleted; a retry before the
            # deletion (1 s backoff, a slow exec) would be a second session in the report
            settings.update(minimal_backoff_time="300s", maximal_backoff_time="600s")
        return settings

    def prepare(self, root: Path, ca_file: Path) -> None:
        super().prepare(root, ca_file)
        tlsrpt = root / "tlsrpt"
        tlsrpt.mkdir()
        resolver = root / "resolver" / "mta-sts-daemon.yml"
        resolver.write_text(resolver.read_text().replace(
            "default_zone:\n", "default_zone:\n  tlsrpt: true\n"))
        (tlsrpt / "reportd.log").touch()

    def daemons(self, root: Path) -> list[Daemon]:
        tlsrpt = root / "tlsrpt"
        collectd = Daemon(
            "tlsrpt-collectd",
            ("tlsrpt-collectd", "--storage",
             f"sqlite://{tlsrpt / 'collectd.sqlite'},dummy:///?log",
             "--socketname", str(tlsrpt / "collectd.sock"), "--socketmode", "0666",
             "--pidfilename", str(tlsrpt / "collectd.pid"), "--log_level", "info"),
            ready="Listening on socket")
        follow = follow_file("tlsrpt-reportd", tlsrpt / "reportd.log")
        return [collectd, follow, *super().daemons(root)]

    def reportd_argv(self) -> list[str]:
        assert self.root is not None
        tlsrpt, ca = self.root / "tlsrpt", self.root / "lab-ca.pem"
        return ["tlsrpt-reportd", "--dbname", str(tlsrpt / "reportd.sqlite"),
                "--fetchers", f"tlsrpt-fetcher --storage sqlite://{tlsrpt / 'collectd.sqlite'}",
                "--organization_name", "mtasts-lab postfix-3.10",
                "--contact_info", "postmaster@sender.test",
                "--sender_address", "tlsrpt@sender.test",
                "--http_script", f"curl --silent --fail --cacert {ca} --header "
                "'Content-Type: application/tlsrpt+gzip' --data-binary @-",
                "--sendmail_script", f"/usr/sbin/sendmail -C {self.root / 'etc'} -i -t",
                "--spread_out_delivery", "1", "--log_level", "debug"]

    def on_line(self, tag: str, line: str) -> None:
        if tag == "tlsrpt-collectd":
            if _DATAGRAM in line:
                self._datagrams += 1
                self._counted.set()
            elif _ROLLED in line:
                self._rolled.set()
            return
        if tag == "tlsrpt-reportd":
            self._reportd_line(line)
            return
        if tag == "postfix" and _POSTFIX_REPORTED.search(line):
            self._sessions += 1
        super().on_line(tag, line)

    def _reportd_line(self, line: str) -> None:
        assert self.env is not None
        if not self._reporting:
            return
        if "Report delivery" in line or " ERROR " in line or " WARNING " in line:
            self.env.emit(SENDER, "log", {"line": line, "message_id": "", "queue_id": "",
                                          "sender": self.name})
        sleeping = _SLEEPING.search(line)
        if sleeping and int(sleeping[1]) >= SETTLED_SLEEP_S:
            self._reporting = False
            self.env.emit(SENDER, "tlsrpt-settled", {"pending": 0, "sender": self.name})

    # -- the reporting period ------------------------------------------------------------------

    async def start_period(self) -> None:
        await self._roll_over(report=False)

    async def flush_reports(self) -> None:
        await self._roll_over(report=True)

    async def _roll_over(self, *, report: bool) -> None:
        """Wait for collectd to hold every session Postfix reported, roll its day over, and
        (``report``) start a fresh reportd for the closed day."""
        assert self.root is not None and self.place is not None
        deadline = time.monotonic() + WAIT_S
        while self._datagrams < self._sessions:
            self._counted.clear()
            try:
                await asyncio.wait_for(self._counted.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise SenderFailed(f"{self.name}: collectd got {self._datagrams} of the "
                                   f"{self._sessions} TLSRPT datagrams Postfix logged within "
                                   f"{WAIT_S:.0f} s") from None
        self._reporting = False
        self._rolled.clear()
        await self.run("sh", "-c", f"kill -USR2 $(cat {self.root / 'tlsrpt' / 'collectd.pid'})")
        try:
            await asyncio.wait_for(self._rolled.wait(), WAIT_S)
        except TimeoutError:
            raise SenderFailed(f"{self.name}: collectd did not roll its day over within "
                               f"{WAIT_S:.0f} s of SIGUSR2") from None
        self._sessions = self._datagrams = 0
        self._reporting = report
        await self.run("sh", "-c", _FLUSH, "sh", str(self.root / "tlsrpt"),
                       *(("report", *self.reportd_argv()) if report else ()))
        if not report and self.env is not None:  # the closed period is dropped: nothing due
            self.env.emit(SENDER, "tlsrpt-settled", {"pending": 0, "sender": self.name})

    async def reset(self) -> None:
        await super().reset()
        await self._roll_over(report=False)
