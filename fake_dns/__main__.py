"""``python -m fake_dns --zone FILE --listen ADDR:PORT [--log] [--allow-non-loopback]``.

Serves the zone over UDP and TCP on the same port. Prints one ``listening`` line when ready
(with the real port when PORT is 0), one line per query with ``--log``. SIGHUP re-reads the
zone file (a bad file keeps the old zone); SIGINT/SIGTERM stop it with exit status 0.
Exit status 2: a bad zone file, a bad or refused --listen address, or a failed bind.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from fake_dns.errors import ZoneError
from fake_dns.server import DnsServer, QueryLogEntry
from fake_dns.sockets import bind_pair
from fake_dns.zone import Zone


class UsageError(Exception):
    """A one-line reason for exit status 2."""


def parse_listen(text: str, allow_non_loopback: bool) -> tuple[str, int]:
    """``127.0.0.1:53`` or ``[::1]:53`` to (host, port); loopback only unless allowed."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--listen {text!r}: expected ADDR:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen {text!r}: {host!r} is not an IP address") from None
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise UsageError(f"--listen {text!r}: bad port {port_text!r}")
    if not addr.is_loopback and not allow_non_loopback:
        raise UsageError(f"--listen {text!r}: not a loopback address "
                         "(use --allow-non-loopback inside a lab namespace or container)")
    return str(addr), int(port_text)


def load_zone(path: str) -> Zone:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read zone file: {exc}") from None
    try:
        return Zone.from_text(text)
    except ZoneError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else path
        raise UsageError(f"{where}: {exc.message}") from None


def format_entry(e: QueryLogEntry) -> str:
    answers = "; ".join(e.answers) or "-"
    return (f"{e.transport} {e.client[0]}:{e.client[1]} {e.name} {e.qtype} {e.rcode} "
            f"[{answers}] failure={e.failure or '-'} ad={int(e.ad)} tc={int(e.truncated)}")


def _print(line: str, stream: TextIO | None = None) -> None:
    print(line, file=sys.stdout if stream is None else stream, flush=True)


async def serve(zone_path: str, zone: Zone, host: str, port: int, log: bool) -> None:
    try:
        udp, tcp = bind_pair(host, port)
    except OSError as exc:
        raise UsageError(f"--listen {host}:{port}: cannot bind: {exc.strerror or exc}") from None
    server = DnsServer(zone, on_query=(lambda e: _print(format_entry(e))) if log else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            server.set_zone(load_zone(zone_path))
            _print(f"fake_dns: reloaded {zone_path}")
        except UsageError as exc:
            _print(f"fake_dns: reload failed, keeping the old zone: {exc}", sys.stderr)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await server.start(udp, tcp)
        bound = udp.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        _print(f"fake_dns: listening on {shown}:{bound[1]} (udp+tcp), "
               f"{len(zone.records())} records")
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await server.close()
        udp.close()
        tcp.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fake_dns",
                                     description="A small authoritative DNS server for labs.")
    parser.add_argument("--zone", required=True, metavar="FILE", help="zone file to serve")
    parser.add_argument("--listen", required=True, metavar="ADDR:PORT",
                        help="address and port for UDP and TCP (port 0: any free port)")
    parser.add_argument("--log", action="store_true", help="print one line per query")
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help="allow a non-loopback listen address (lab namespaces/containers)")
    args = parser.parse_args(argv)
    try:
        host, port = parse_listen(args.listen, args.allow_non_loopback)
        zone = load_zone(args.zone)
        asyncio.run(serve(args.zone, zone, host, port, args.log))
    except UsageError as exc:
        _print(f"fake_dns: error: {exc}", sys.stderr)
        return 2
    except KeyboardInterrupt:  # a SIGINT before the handlers were installed
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
