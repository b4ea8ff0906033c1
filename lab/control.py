"""The control API: the runner drives lab services that run in other containers.

Each lab container runs one role (DESIGN.md: one image, the role chosen by its command)::

    python -m lab.control serve --role dns|policy|mitm|mx [--slot N] --state /run/lab

It binds the role's service sockets on the container's own address and standard port (53
udp+tcp, 443, 25), runs the SAME service class as every other backend (``DnsServer``,
``PolicyHost``, ``SmtpProxy``, ``Sink``) and answers JSON over HTTP/1.1 on a unix socket in
the shared run directory (default ``<state>/<role><slot>.sock``):

``GET /health``
    ``{role, slot, ca, next}``: ``ca`` is the SHA-256 of the lab CA the service uses.
``POST /world``
    ``{zone: text, policies: {domain: response}, mx: {slots: [{name, attacks}],
    accept_domains}}``; each role applies its part and ignores the rest (attacks are
    ``{name, options}``, options as in the scenario YAML).
``POST /reset``
    back to an idle world (empty zone, no policies, unnamed MX slots).
``POST /pki``
    re-read the CAs from ``<state>/pki`` (the runner made them; keys 0600) and re-apply the
    world with the new certificates.
``GET /events?since=N&wait=S``
    the events numbered N and after, ``{events: [{seq, source, kind, data}], next}``; a
    long-poll: answers as soon as there is one, or after S seconds with none.

The PKI: the runner writes the per-run CA and rogue CA (certificates and keys) to
``<state>/pki`` (``LabPKI.export``); the services load them (``LabPKI.load``) and write
their leaves to a private directory. When a container starts and finds no CA there (a
person ran ``docker-compose up`` alone) the first one makes a PKI under a file lock.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import enum
import fcntl
import hashlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_dns.server import DnsServer, QueryLogEntry
from fake_dns.zone import Zone
from lab import attacks as attack_plugins
from lab.attacks.base import Attack, SmtpAttack
from lab.backends.services import MxSetup
from lab.backends.sockets import bound_socket
from lab.events import DNS, Event
from lab.pki import CertKind, LabPKI
from lab.policy_host.response import PolicyResponse
from lab.policy_host.server import PolicyHost
from lab.proxy.server import SmtpProxy
from lab.sink.server import Sink

ROLES = ("dns", "policy", "mitm", "mx")
PORTS = {"dns": 53, "policy": 443, "mitm": 25, "mx": 25}
MAX_EVENTS = 20000
"""Events a service keeps for readers that fall behind (older ones are reported as lost)."""
MAX_WAIT_S = 30.0
MAX_BODY = 16 * 1024 * 1024


class ControlError(Exception):
    """A control request failed; the message carries the service's own words."""


# ---------------------------------------------------------------- the world on the wire


def idle_name(slot: int) -> str:
    return f"unused{slot}.lab.test"


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def attack_to_json(attack: Attack) -> dict[str, Any]:
    """``{name, options}``: the options exactly as a scenario would write them."""
    options = {f.name: _plain(getattr(attack, f.name))
               for f in dataclasses.fields(attack) if f.init}
    return {"name": attack.name, "options": options}


def attack_from_json(data: Mapping[str, Any]) -> Attack:
    from lab.scenario import _attack  # the scenario loader's own coercion and checks

    attack_plugins.load_all()
    return _attack("control", "attacks", {str(data["name"]): dict(data.get("options") or {})})


def policy_to_json(response: PolicyResponse) -> dict[str, Any]:
    return {
        "status": response.status, "reason": response.reason,
        "content_type": response.content_type,
        "body": base64.b64encode(response.body).decode(),
        "headers": [list(h) for h in response.headers], "cert": response.cert.value,
        "trickle_bytes_per_s": response.trickle_bytes_per_s,
        "reachable": response.reachable, "applied": list(response.applied),
    }


def policy_from_json(data: Mapping[str, Any]) -> PolicyResponse:
    return PolicyResponse(
        status=int(data["status"]), reason=str(data["reason"]),
        content_type=data.get("content_type"),
        body=base64.b64decode(data.get("body", "")),
        headers=tuple((str(k), str(v)) for k, v in data.get("headers", [])),
        cert=CertKind(data.get("cert", CertKind.VALID.value)),
        trickle_bytes_per_s=data.get("trickle_bytes_per_s"),
        reachable=bool(data.get("reachable", True)),
        applied=tuple(str(a) for a in data.get("applied", [])),
    )


def mx_to_json(slots: Sequence[MxSetup], accept_domains: Sequence[str]) -> dict[str, Any]:
    return {"slots": [{"name": s.name, "attacks": [attack_to_json(a) for a in s.attacks]}
                      for s in slots],
            "accept_domains": list(accept_domains)}


def mx_from_json(data: Mapping[str, Any]) -> tuple[list[MxSetup], list[str]]:
    slots = []
    for slot in data.get("slots", []):
        attacks = tuple(attack_from_json(a) for a in slot.get("attacks", []))
        if not all(isinstance(a, SmtpAttack) for a in attacks):
            raise ValueError("MX slots take SMTP attacks only")
        slots.append(MxSetup(str(slot["name"]), attacks))  # type: ignore[arg-type]
    return slots, [str(d) for d in data.get("accept_domains", [])]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def dumps(data: Any) -> bytes:
    return json.dumps(data, default=_json_default, separators=(",", ":")).encode()


def ca_fingerprint(pki: LabPKI) -> str:
    return hashlib.sha256(pki.ca.cert_pem.bytes()).hexdigest()


# ---------------------------------------------------------------- HTTP/1.1, the small part


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


async def _read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise ValueError("request body too large")
    raw = await reader.readexactly(length) if length else b""
    url = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(url.query))
    return Request(method, url.path, query, json.loads(raw) if raw else None)


def _response(status: int, data: Any) -> bytes:
    body = dumps(data)
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    return (f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def _request_bytes(method: str, target: str, body: Any) -> bytes:
    raw = dumps(body) if body is not None else b""
    return (f"{method} {target} HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n").encode() + raw


def _parse_response(raw: bytes, where: str) -> Any:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ControlError(f"{where}: truncated reply")
    status = int(head.split(b" ", 2)[1])
    data = json.loads(body) if body else None
    if status != 200:
        error = data.get("error") if isinstance(data, dict) else data
        raise ControlError(f"{where}: {status} {error}")
    return data


class ControlClient:
    """One service's control socket, from the runner's side (async and blocking calls)."""

    def __init__(self, path: Path | str, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout

    async def request(self, method: str, target: str, body: Any = None,
                      timeout: float | None = None) -> Any:
        where = f"{self.path} {method} {target}"

        async def go() -> bytes:
            reader, writer = await asyncio.open_unix_connection(self.path)
            try:
                writer.write(_request_bytes(method, target, body))
                await writer.drain()
                return await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        try:
            raw = await asyncio.wait_for(go(), timeout or self.timeout)
        except (OSError, TimeoutError) as exc:
            raise ControlError(f"{where}: {type(exc).__name__}: {exc}") from exc
        return _parse_response(raw, where)

    def call(self, method: str, target: str, body: Any = None,
             timeout: float | None = None) -> Any:
        """The blocking form, for the runner's synchronous ``set_*`` calls (a few ms)."""
        where = f"{self.path} {method} {target}"
        chunks = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout or self.timeout)
                sock.connect(self.path)
                sock.sendall(_request_bytes(method, target, body))
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise ControlError(f"{where}: {type(exc).__name__}: {exc}") from exc
        return _parse_response(b"".join(chunks), where)

    async def health(self) -> dict[str, Any]:
        data = await self.request("GET", "/health")
        assert isinstance(data, dict)
        return data

    async def events(self, since: int, wait: float) -> dict[str, Any]:
        data = await self.request("GET", f"/events?since={since}&wait={wait:g}",
                                  timeout=wait + self.timeout)
        assert isinstance(data, dict)
        return data


# ---------------------------------------------------------------- the service side


def ensure_pki(state: Path, leaf_dir: Path) -> LabPKI:
    """Load the CAs the runner exported to ``<state>/pki``; make them when there are none
    (one maker under a lock, the other containers wait on the lock and load)."""
    pki_dir = state / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    leaf_dir.mkdir(parents=True, exist_ok=True)
    with open(state / "pki.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not all((pki_dir / f).exists() for f in LabPKI.EXPORT_FILES):
                LabPKI(Path(tempfile.mkdtemp(prefix="pki-", dir=leaf_dir))).export(pki_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return LabPKI.load(pki_dir, leaf_dir / "leaves")


class ControlServer:
    """One role's service plus its control socket.

    ``bind`` is the address the service listens on, ``port`` its port (default: the role's
    standard one), ``upstream`` the genuine MX (``host:port``) a ``mitm`` relays to.
    """

    def __init__(self, role: str, pki: LabPKI, state: Path, *, slot: int = 0,
                 bind: str = "0.0.0.0", port: int | None = None,
                 upstream: tuple[str, int] | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if role == "mitm" and upstream is None:
            raise ValueError("a mitm needs --upstream HOST:PORT (its genuine MX)")
        self.role, self.slot, self.pki, self.state = role, slot, pki, state
        self.bind, self.port = bind, PORTS[role] if port is None else port
        self.upstream = upstream
        self._events: list[tuple[int, Event]] = []
        self._next = 0
        self._changed = asyncio.Event()
        self._world: dict[str, Any] = {}
        self.dns: DnsServer | None = None
        self.policy: PolicyHost | None = None
        self.proxy: SmtpProxy | None = None
        self.sink: Sink | None = None
        self._server: asyncio.AbstractServer | None = None
        self._waiters: set[asyncio.Task[Any]] = set()
        self.address: tuple[str, int] | None = None
        """Where the service listens (after ``start``)."""

    @property
    def label(self) -> str:
        return self.role if self.role in ("dns", "policy") else f"{self.role}{self.slot}"

    # events --------------------------------------------------------------------------------

    def emit(self, source: str, kind: str, data: Mapping[str, Any] | None = None) -> None:
        self._events.append((self._next, Event(source, kind, dict(data or {}))))
        self._next += 1
        if len(self._events) > MAX_EVENTS:
            del self._events[: len(self._events) - MAX_EVENTS]
        self._changed.set()

    def _on_query(self, entry: QueryLogEntry) -> None:
        data = dataclasses.asdict(entry)
        data.pop("t", None)
        self.emit(DNS, "query", data)

    async def events_since(self, since: int, wait: float) -> dict[str, Any]:
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_S)
        while self._next <= since:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        first = self._events[0][0] if self._events else self._next
        out = [{"seq": seq, "source": e.source, "kind": e.kind, "data": dict(e.data)}
               for seq, e in self._events if seq >= since]
        return {"events": out, "next": self._next, "lost": max(0, first - since)}

    # services ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.role == "dns":
            for _ in range(20):  # port 0: the same free port for UDP and TCP
                udp = bound_socket(socket.SOCK_DGRAM, self.bind, self.port)
                port = udp.getsockname()[1]
                try:
                    tcp = bound_socket(socket.SOCK_STREAM, self.bind, port)
                    break
                except OSError:
                    udp.close()
                    if self.port:
                        raise
            else:
                raise OSError("no port free for both UDP and TCP")
            self.dns = DnsServer(Zone(), on_query=self._on_query)
            await self.dns.start(udp, tcp)
            self.address = (self.bind, port)
            return
        sock = bound_socket(socket.SOCK_STREAM, self.bind, self.port)
        self.address = sock.getsockname()[:2]
        if self.role == "policy":
            self.policy = PolicyHost(self.pki, self.emit)
            await self.policy.start(sock)
        elif self.role == "mitm":
            self.proxy = SmtpProxy(self.pki, self.emit, self._connect_upstream)
            self.proxy.configure(idle_name(self.slot), [])
            await self.proxy.start(sock)
        else:
            self.sink = Sink(self.pki, self.emit)
            self.sink.configure([idle_name(self.slot)], [])
            await self.sink.start(sock)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self.upstream is not None
        return await asyncio.open_connection(*self.upstream)

    def apply(self, world: Mapping[str, Any]) -> list[str]:
        """Apply this role's part of ``world``; return which parts were applied."""
        applied = []
        if self.dns is not None and "zone" in world:
            self.dns.set_zone(Zone.from_text(str(world["zone"])))
            applied.append("zone")
        if self.policy is not None and "policies" in world:
            self.policy.configure({str(d): policy_from_json(r)
                                   for d, r in dict(world["policies"]).items()})
            applied.append("policies")
        if (self.proxy is not None or self.sink is not None) and "mx" in world:
            slots, accept = mx_from_json(world["mx"])
            setup = slots[self.slot] if self.slot < len(slots) else MxSetup(idle_name(self.slot))
            if self.proxy is not None:
                self.proxy.configure(setup.name, list(setup.attacks))
            if self.sink is not None:
                self.sink.configure([setup.name], accept)
            applied.append("mx")
        for key in applied:
            self._world[key] = world[key]
        return applied

    def reset(self) -> None:
        self._world.clear()
        if self.dns is not None:
            self.dns.set_zone(Zone())
        if self.policy is not None:
            self.policy.configure({})
        if self.proxy is not None:
            self.proxy.configure(idle_name(self.slot), [])
        if self.sink is not None:
            self.sink.configure([idle_name(self.slot)], [])

    def reload_pki(self) -> None:
        self.pki.reload(self.state / "pki")
        world = dict(self._world)
        if world:
            self.apply(world)
        elif self.sink is not None:
            self.sink.configure([idle_name(self.slot)], [])

    def health(self) -> dict[str, Any]:
        return {"role": self.role, "slot": self.slot, "ca": ca_fingerprint(self.pki),
                "next": self._next, "address": list(self.address or ()), "pid": os.getpid()}

    # control socket ------------------------------------------------------------------------

    async def serve_control(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # the socket appears only when it answers (health checks)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._waiters.add(task)
        try:
            try:
                request = await asyncio.wait_for(_read_request(reader), 10)
                status, data = await self._dispatch(request)
            except Exception as exc:
                status, data = 400, {"error": f"{type(exc).__name__}: {exc}"}
            writer.write(_response(status, data))
            with contextlib.suppress(OSError):
                await writer.drain()
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._waiters.discard(task)
            writer.close()

    async def _dispatch(self, req: Request) -> tuple[int, Any]:
        route = (req.method, req.path)
        if route == ("GET", "/health"):
            return 200, self.health()
        if route == ("GET", "/events"):
            return 200, await self.events_since(int(req.query.get("since", "0")),
                                                float(req.query.get("wait", "0")))
        if route == ("POST", "/world"):
            if not isinstance(req.body, dict):
                return 400, {"error": "the body must be a JSON object"}
            return 200, {"ok": True, "applied": self.apply(req.body)}
        if route == ("POST", "/reset"):
            self.reset()
            return 200, {"ok": True}
        if route == ("POST", "/pki"):
            self.reload_pki()
            return 200, {"ok": True, "ca": ca_fingerprint(self.pki)}
        return 404, {"error": f"no {req.method} {req.path}"}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._waiters):
                task.cancel()
            await self._server.wait_closed()
            self._server = None
        for service in (self.proxy, self.sink, self.policy, self.dns):
            if service is not None:
                await service.close()
        self.proxy = self.sink = self.policy = self.dns = None


# ---------------------------------------------------------------- command line


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _serve(args: argparse.Namespace) -> int:
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    leaf_dir = Path(tempfile.mkdtemp(prefix="mtasts-lab-control-"))
    pki = ensure_pki(state, leaf_dir)
    server = ControlServer(args.role, pki, state, slot=args.slot, bind=args.bind,
                           port=args.port, upstream=_hostport(args.upstream)
                           if args.upstream else None)
    await server.start()
    path = Path(args.socket) if args.socket else state / f"{server.label}.sock"
    await server.serve_control(path)
    print(f"lab.control: {server.label} on {server.address} control {path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.control",
                                     description="Serve one lab role under the control API.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one role's service and its control socket")
    serve.add_argument("--role", choices=ROLES, required=True)
    serve.add_argument("--slot", type=int, default=0, help="MX slot (mitm, mx)")
    serve.add_argument("--state", default="/run/lab", help="the shared run directory")
    serve.add_argument("--socket", help="control socket (default <state>/<role><slot>.sock)")
    serve.add_argument("--bind", default="0.0.0.0", help="service address")
    serve.add_argument("--port", type=int, help="service port (default: 53, 443 or 25)")
    serve.add_argument("--upstream", help="mitm: the genuine MX as HOST:PORT")
    health = sub.add_parser("health", help="exit 0 when the control socket answers")
    health.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    if args.command == "health":
        try:
            ControlClient(args.socket, timeout=2).call("GET", "/health")
        except ControlError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
