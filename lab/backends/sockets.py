"""Sockets the backends hand to the services."""

from __future__ import annotations

import socket


def _proto(kind: socket.SocketKind) -> int:
    # asyncio sets TCP_NODELAY only on sockets whose proto says TCP; with proto 0, Nagle and
    # delayed ACKs add about 40 ms to every small SMTP reply on loopback.
    return socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP


def bound_socket(kind: socket.SocketKind, address: str, port: int,
                 listen: bool = True) -> socket.socket:
    """A non-blocking IPv4 socket bound to ``address:port`` (listening, for TCP)."""
    sock = socket.socket(socket.AF_INET, kind, _proto(kind))
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        if listen and kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def tcp_client_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setblocking(False)
    return sock
