"""The netns backend's ``Place``: a real MTA's programs run on this host inside the sender's
network namespace (``ip netns exec mtl-<runid>-sender``), which also shows them the lab's
``resolv.conf``.

The instance is a fresh ``/var/tmp/mtasts-lab-<mta>-*`` directory (the MTA's unprivileged
users must reach it; the runner's work directory is private); it and every daemon started are
recorded in a state file, so ``mtasts-lab down`` removes them after a crash.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from lab.backends.netns_net import client_socket
from lab.backends.netns_state import ProcRef, RunState
from lab.senders.place import LineSink, MtaSetup, ProcessPlace


class NetnsPlace(ProcessPlace):
    def __init__(self, netns: str, logs: Path | None = None) -> None:
        super().__init__(prefix=("ip", "netns", "exec", netns),
                         base=Path(os.environ.get("MTASTS_LAB_POSTFIX_DIR", "/var/tmp")),
                         logs=logs)
        self.netns = netns
        self.state: RunState | None = None
        self._kind = "mta"

    async def start(self, mta: MtaSetup, ca_file: Path, on_line: LineSink) -> Path:
        self._kind = mta.name
        return await super().start(mta, ca_file, on_line)

    def on_path(self, path: Path) -> None:
        self.state = RunState(path.name.rpartition("-")[2].lower(), self._kind,
                              ProcRef.of(os.getpid()), paths=[str(path)])
        self.state.save()

    def on_spawn(self, pid: int) -> None:
        if self.state is not None:
            self.state.add_proc(pid)

    async def open_connection(self, host: str, port: int
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = client_socket(self.netns)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def close(self) -> None:
        await super().close()
        state, self.state = self.state, None
        if state is not None:
            # whatever was recorded and still runs (an MTA's children) goes now
            await asyncio.to_thread(state.undo)
