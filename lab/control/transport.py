"""JSON over HTTP/1.1 on a unix socket: the control API's transport.

h11 does the HTTP on both sides; this module only moves bytes. The server answers one request
per connection (``Connection: close``); handlers may long-poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11

from lab.control.wire import dumps

MAX_BODY = 16 * 1024 * 1024
READ_TIMEOUT_S = 10.0


class ControlError(Exception):
    """A control request failed; the message carries the service's own words."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


Handler = Callable[[Request], Awaitable[tuple[int, Any]]]
"""Answers a request with (HTTP status, JSON-able data)."""


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Connection", "close")]


async def _receive(conn: h11.Connection, reader: asyncio.StreamReader,
                   ) -> tuple[h11.Request | h11.Response, bytes]:
    """Read one message (head and body) with h11."""
    head: h11.Request | h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request | h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise ValueError("message body too large")
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, bytes(body)
        else:  # ConnectionClosed, or an interim response we do not use
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a whole message")


class ControlSocket:
    """An HTTP server on a unix socket (mode 0600) that hands each request to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, path: Path) -> None:
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
            self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            try:
                head, raw = await asyncio.wait_for(_receive(conn, reader), READ_TIMEOUT_S)
                assert isinstance(head, h11.Request)
                url = urllib.parse.urlsplit(head.target.decode("latin-1"))
                request = Request(head.method.decode("ascii"), url.path,
                                  dict(urllib.parse.parse_qsl(url.query)),
                                  json.loads(raw) if raw else None)
                status, data = await self.handler(request)
            except Exception as exc:
                status, data = 400, {"error": f"{type(exc).__name__}: {exc}"}
            body = dumps(data)
            with contextlib.suppress(h11.LocalProtocolError):  # h11 may answer a bad request
                writer.write(conn.send(h11.Response(status_code=status,
                                                    headers=_headers(body))) or b"")
                writer.write(conn.send(h11.Data(data=body)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
            with contextlib.suppress(OSError):
                await writer.drain()
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None


def _reply(status: int, raw: bytes, where: str) -> Any:
    try:
        data = json.loads(raw) if raw else None
    except ValueError as exc:
        raise ControlError(f"{where}: {status}, not JSON: {exc}") from None
    if status != 200:
        error = data.get("error") if isinstance(data, dict) else data
        raise ControlError(f"{where}: {status} {error}")
    return data


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("lab", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """One service's control socket, from the runner's side (async and blocking calls)."""

    def __init__(self, path: Path | str, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout

    async def request(self, method: str, target: str, body: Any = None,
                      timeout: float | None = None) -> Any:
        where = f"{self.path} {method} {target}"
        raw = dumps(body) if body is not None else b""

        async def go() -> tuple[int, bytes]:
            reader, writer = await asyncio.open_unix_connection(self.path)
            try:
                conn = h11.Connection(h11.CLIENT)
                writer.write(conn.send(h11.Request(
                    method=method, target=target,
                    headers=[("Host", "lab"), *_headers(raw)])) or b"")
                writer.write(conn.send(h11.Data(data=raw)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                head, data = await _receive(conn, reader)
                assert isinstance(head, h11.Response)
                return head.status_code, data
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        try:
            status, data = await asyncio.wait_for(go(), timeout or self.timeout)
        except (OSError, TimeoutError, ValueError, h11.ProtocolError) as exc:
            raise ControlError(f"{where}: {type(exc).__name__}: {exc}") from exc
        return _reply(status, data, where)

    def call(self, method: str, target: str, body: Any = None,
             timeout: float | None = None) -> Any:
        """The blocking form, for the runner's synchronous ``set_*`` calls (a few ms)."""
        where = f"{self.path} {method} {target}"
        raw = dumps(body) if body is not None else b""
        conn = _UnixHTTPConnection(self.path, timeout or self.timeout)
        try:
            conn.request(method, target, body=raw, headers=dict(_headers(raw)))
            response = conn.getresponse()
            status, data = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ControlError(f"{where}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        return _reply(status, data, where)

    async def health(self) -> dict[str, Any]:
        data = await self.request("GET", "/health")
        assert isinstance(data, dict)
        return data

    async def events(self, since: int, wait: float) -> dict[str, Any]:
        data = await self.request("GET", f"/events?since={since}&wait={wait:g}",
                                  timeout=wait + self.timeout)
        assert isinstance(data, dict)
        return data
