"""The attacker's HTTPS MITM of the policy fetch, with mitmproxy (optional extra ``mitm``).

``pip install mtasts-lab[mitm]`` brings mitmproxy; nothing here imports it before
``MitmPolicyProxy.start``.

How it runs: mitmproxy's ``Master`` in reverse-proxy mode, in a thread of its own with its
own event loop (the Master keeps process-wide state in ``mitmproxy.ctx`` and installs its
own task factory, so it is kept out of the lab's loop; one interception at a time per
process). It listens on a free port of a loopback address; the policy host hands it the
connections it intercepts. mitmproxy presents certificates from its own CA, made in the
run directory (the sender is never told to trust it), connects to the genuine policy host
with the client's SNI and Host header (not checking the upstream certificate: the attacker
does not care) and rewrites the policy body.

What it sees is reported as ``policy`` events, with the attack's name in ``applied``:
``mitm-handshake-failed`` (the sender refused the attacker's certificate: the compliant
outcome), ``mitm-handshake`` (the sender accepted it) and ``mitm-rewrite`` (a policy
answer was replaced on its way to the sender). ``mitm-closed`` comes last for each
connection (``via``: the policy host's end of it, as in its ``intercept`` event): mitmproxy
reports in order, so after it every finding of that connection is in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.addresses import address_text
from lab.events import POLICY, Emit
from lab.policy_host.response import Interception

POLICY_PATH = "/.well-known/mta-sts.txt"
START_TIMEOUT_S = 120.0
"""Generous: a loaded machine imports mitmproxy and makes its CA slowly; hitting it is an
error that names it, never a verdict."""
STOP_TIMEOUT_S = 5.0

Lookup = Callable[[str | None], Interception | None]
"""The interception planned for a client's SNI (``mta-sts.<domain>``), or None."""


def available() -> bool:
    """Whether mitmproxy can be imported here."""
    import importlib.util
    return importlib.util.find_spec("mitmproxy") is not None


class _Addon:
    """mitmproxy hooks (called in the mitmproxy thread): report, fix SNI, rewrite."""

    def __init__(self, lookup: Lookup, report: Callable[[str, dict[str, Any]], None]) -> None:
        self.lookup = lookup
        self.report = report

    def _plan(self, sni: str | None) -> tuple[Interception | None, list[str]]:
        plan = self.lookup(sni)
        return plan, [plan.attack] if plan else []

    def tls_failed_client(self, data: Any) -> None:
        _, applied = self._plan(data.conn.sni)
        self.report("mitm-handshake-failed", {"sni": data.conn.sni, "error": data.conn.error,
                                              "applied": applied})

    def tls_established_client(self, data: Any) -> None:
        _, applied = self._plan(data.conn.sni)
        self.report("mitm-handshake", {"sni": data.conn.sni, "applied": applied})

    def client_disconnected(self, client: Any) -> None:
        self.report("mitm-closed", {"via": address_text(client.peername)})

    def server_connect(self, data: Any) -> None:
        # reverse mode would send the upstream address as SNI: name the host the client asked
        data.server.sni = data.client.sni

    def response(self, flow: Any) -> None:
        plan, applied = self._plan(flow.client_conn.sni)
        if plan is None or plan.policy_text is None or flow.response is None:
            return
        if flow.request.path != POLICY_PATH:
            return
        genuine = flow.response.status_code
        flow.response.status_code = 200
        flow.response.headers["Content-Type"] = "text/plain"
        flow.response.content = plan.policy_text
        self.report("mitm-rewrite", {"sni": flow.client_conn.sni, "path": flow.request.path,
                                     "genuine_status": genuine,
                                     "bytes": len(plan.policy_text), "applied": applied})


class _Ready:
    """mitmproxy's ``running`` hook fires once its servers listen: the readiness signal."""

    def __init__(self, master: Any,
                 settle: Callable[[tuple[str, int] | BaseException], None]) -> None:
        self.master = master
        self.settle = settle

    def running(self) -> None:
        proxyserver = self.master.addons.get("proxyserver")
        addresses = [a for server in proxyserver.servers for a in server.listen_addrs]
        if addresses:
            self.settle((str(addresses[0][0]), int(addresses[0][1])))
        else:
            self.settle(RuntimeError("mitmproxy is running but listens nowhere"))


class MitmPolicyProxy:
    """mitmproxy in reverse mode in front of ``upstream`` (the genuine policy host)."""

    def __init__(self, upstream: tuple[str, int], listen_host: str, confdir: Path,
                 emit: Emit, lookup: Lookup) -> None:
        self.upstream = upstream
        self.listen_host = listen_host
        self.confdir = confdir
        self.emit = emit
        self.lookup = lookup
        self.address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._master: Any = None
        self._mitm_loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    async def start(self) -> tuple[str, int]:
        """Start mitmproxy; return the address it listens on."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[tuple[str, int]] = loop.create_future()

        def report(kind: str, data: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self.emit, POLICY, kind, data)

        def settle(result: tuple[str, int] | BaseException) -> None:
            def apply() -> None:
                if ready.done():
                    return
                if isinstance(result, BaseException):
                    ready.set_exception(result)
                else:
                    ready.set_result(result)
            loop.call_soon_threadsafe(apply)

        def thread_main() -> None:
            try:
                asyncio.run(self._run(report, settle))
            except BaseException as exc:  # reported to the starter, never lost
                with contextlib.suppress(RuntimeError):  # the lab's loop already closed
                    settle(exc)

        self.confdir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=thread_main, name="mtasts-lab mitmproxy",
                                        daemon=True)
        self._thread.start()
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                self.address = await ready
        except TimeoutError:
            raise TimeoutError(f"mitmproxy did not listen within {START_TIMEOUT_S:g} s") from None
        return self.address

    async def _run(self, report: Callable[[str, dict[str, Any]], None],
                   settle: Callable[[tuple[str, int] | BaseException], None]) -> None:
        from mitmproxy import options
        from mitmproxy.addons import default_addons
        from mitmproxy.master import Master

        host, port = self.upstream
        opts = options.Options(mode=[f"reverse:https://{host}:{port}@{self.listen_host}:0"],
                               confdir=str(self.confdir))
        master = Master(opts)
        master.addons.add(*default_addons())
        master.addons.add(_Addon(self.lookup, report), _Ready(master, settle))
        opts.update(ssl_insecure=True, keep_host_header=True, connection_strategy="lazy")
        self._master, self._mitm_loop = master, asyncio.get_running_loop()
        if self._closing:  # closed while starting: a shutdown before run() would be lost
            return
        await master.run()  # returns on shutdown, or early when start-up failed
        if self.address is None:
            settle(RuntimeError("mitmproxy stopped before it listened"))

    async def close(self) -> None:
        self._closing = True
        master, loop, thread = self._master, self._mitm_loop, self._thread
        if master is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(master.shutdown)
        if thread is not None:
            await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)
        self._master = self._mitm_loop = self._thread = None
