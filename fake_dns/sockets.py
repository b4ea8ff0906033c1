"""Binding a UDP and a TCP socket on the same address and port (what a backend hands over)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket


def bind_pair(host: str = "127.0.0.1", port: int = 0,
              attempts: int = 20) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a bound, listening TCP socket on ``host:port``.

    With ``port`` 0 the kernel picks the UDP port and TCP takes the same number (retried a
    few times if that TCP port is taken). Raises OSError if binding fails.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    last: OSError | None = None
    for _ in range(attempts if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        # IPPROTO_TCP so that asyncio turns Nagle off on accepted connections
        tcp = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
            return udp, tcp
        except OSError as exc:
            last = exc
            for sock in (udp, tcp):
                with contextlib.suppress(OSError):
                    sock.close()
    assert last is not None
    raise last
