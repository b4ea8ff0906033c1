"""``python -m lab.control``: serve one role (a container's command), or check its health."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lab.control.pki_setup import ensure_pki
from lab.control.service import ROLES, ControlServer
from lab.control.transport import ControlClient, ControlError


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
