"""The ``compose`` backend: the lab's hosts as Docker containers from ``compose.yaml``.

Each lab service runs in its own container from one image (``mtasts-lab/lab``), the role
chosen by its command (``python -m lab.control serve --role ...``): the same service classes
as every other backend, driven through the control API (``lab.control``) on unix sockets in
the run directory that every container bind-mounts at ``/run/lab``.

``up()``: exports the run's CAs to the run directory, brings the project up with
docker-compose (or reuses a running one: the containers reload the new CAs and reset their
world), waits until every control socket answers with the run's CA, and starts one task per
service that long-polls its events into the runner's ``EventLog``. ``services`` is a
``lab.control.RemoteServices``: the runner's ``Services``, forwarded to the containers.
``down()`` removes the project's containers and network unless ``MTASTS_LAB_COMPOSE_KEEP=1``
(or ``ComposeBackend(keep=True)``); then the next run reuses them.

Addresses: see compose.yaml (10.254.0.0/24, an internal network with no gateway). One lab per
Docker daemon at a time: the subnet and the addresses are fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from lab.backends import compose_docker as cd
from lab.backends.base import Backend, BackendUnavailable
from lab.backends.compose_place import ComposePlace
from lab.control import ControlClient, ControlError, RemoteServices, ca_fingerprint
from lab.events import RUNNER, EventLog
from lab.pki import LabPKI
from lab.senders.base import Sender, SenderEnv
from lab.world import MAX_MX, Topology

NET = "10.254.0"
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
"""Where a run holds its compose project's lock (``mtasts-lab-compose-<project>.lock``)."""
DNS_ADDR, POLICY_ADDR, ATTACKER_ADDR = f"{NET}.2", f"{NET}.3", f"{NET}.30"
FRONTS = tuple(f"{NET}.{11 + i}" for i in range(MAX_MX))
BACKS = tuple(f"{NET}.{21 + i}" for i in range(MAX_MX))
SENDER_ADDRS = {"postfix": f"{NET}.100", "exim": f"{NET}.101", "sendmail": f"{NET}.102"}
LAB_SERVICES = ("dns", "policy", *(f"mx{i}" for i in range(MAX_MX)),
                *(f"mitm{i}" for i in range(MAX_MX)))
READY_TIMEOUT_S = float(os.environ.get("MTASTS_LAB_COMPOSE_READY_S", "60"))
POLL_WAIT_S = 20.0


class ComposeBackend(Backend):
    name = "compose"
    summary = ("every lab host a Docker container from compose.yaml on an internal network "
               "(10.254.0.0/24, no route out); real ports 25/53/443; needs a Docker daemon")

    _active: ClassVar[set[int]] = set()
    """The labs up in this process: one at a time (fixed subnet and addresses)."""

    def __init__(self, keep: bool | None = None, run_dir: Path | None = None) -> None:
        self.keep = (os.environ.get("MTASTS_LAB_COMPOSE_KEEP", "") == "1"
                     if keep is None else keep)
        self.run_dir = Path(run_dir) if run_dir is not None else cd.RUN_DIR
        self.docker: Any = None
        self._pki: LabPKI | None = None
        self._events: EventLog | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._cursor: dict[str, int] = {}
        self._started = False
        self.reused = False
        self.bringup_s: float | None = None
        self._lock: tuple[int, Path] | None = None

    @classmethod
    def check(cls) -> list[str]:
        missing = []
        try:
            docker = cd.client()
        except cd.DockerUnavailable as exc:
            return [str(exc)]
        try:
            cd.compose_command()
        except cd.DockerUnavailable as exc:
            missing.append(str(exc))
        images = [cd.LAB_IMAGE, *cd.SENDER_IMAGES.values()]
        for image in images[:1]:
            try:
                docker.images.get(image)
            except Exception:
                missing.append(f"image {image} (scripts/build-images)")
        if not cd.COMPOSE_FILE.exists():
            missing.append(f"compose.yaml not found ({cd.COMPOSE_FILE}): run from the "
                           "mtasts-lab source tree or set MTASTS_LAB_COMPOSE_FILE")
        docker.close()
        return missing

    @classmethod
    def sender_missing(cls, sender: type[Sender]) -> list[str]:
        image = cd.SENDER_IMAGES.get(sender.name)
        if image is None:
            return [f"no image for {sender.name} in lab/images.txt"]
        try:
            docker = cd.client()
        except cd.DockerUnavailable as exc:
            return [str(exc)]
        try:
            docker.images.get(image)
        except Exception:
            return [f"image {image} (scripts/build-images --only {sender.name})"]
        finally:
            docker.close()
        return []

    @classmethod
    def cleanup_leftovers(cls) -> list[str]:
        """``mtasts-lab down``: remove the lab's compose project (containers, network), kept
        or left by a crash. Nothing when no daemon answers, and nothing while a run holds
        the project (it is in use, not left behind)."""
        try:
            lock = hold_project_lock()
        except ProjectInUse as exc:
            print(f"compose: project {cd.PROJECT} is in use by a run (pid {exc.holder}): "
                  "left alone", file=sys.stderr)
            return []
        try:
            return cls._remove_leftovers()
        finally:
            release_project_lock(lock)

    @classmethod
    def _remove_leftovers(cls) -> list[str]:
        try:
            docker = cd.client()
        except cd.DockerUnavailable:
            return []
        try:
            found = [c.name for c in cd.containers(docker, running=False)]
            nets = [n.name for n in docker.networks.list(
                filters={"label": f"com.docker.compose.project={cd.PROJECT}"})]
        finally:
            docker.close()
        if not found and not nets:
            return []
        asyncio.run(remove_project())
        return [f"container {name}" for name in found] + [f"network {name}" for name in nets]

    # -- one run per project ------------------------------------------------------------------

    def _hold_project(self) -> None:
        """Hold the project's lock for this run: a second run on the same project (another
        process) would reset and remove the first one's containers under it."""
        try:
            self._lock = hold_project_lock()
        except ProjectInUse as exc:
            raise BackendUnavailable(
                f"compose: another mtasts-lab run (pid {exc.holder}) is using project "
                f"{cd.PROJECT}; one lab at a time per project (fixed addresses)") from None

    def _release_project(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            release_project_lock(lock)

    # -- up ---------------------------------------------------------------------------------

    async def up(self, run_dir: Path, pki: LabPKI, events: EventLog) -> Topology:
        started = time.monotonic()
        missing = await asyncio.to_thread(self.check)
        if missing:
            raise BackendUnavailable("compose backend: missing " + "; ".join(missing))
        if self._active:
            raise BackendUnavailable("compose runs one lab at a time (fixed addresses): "
                                     "use -j 1")
        self._hold_project()
        self._active.add(id(self))
        self._pki, self._events = pki, events
        self._started = True
        try:
            self.docker = await asyncio.to_thread(cd.client)
            running = await asyncio.to_thread(
                lambda: {s: cd.container(self.docker, s) for s in LAB_SERVICES})
            self.reused = all(running.values())
            if self.reused:
                dns = running["dns"]
                self.run_dir = cd.run_dir_of(dns) or self.run_dir
            self.run_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.run_dir, 0o711)
            pki.export(self.run_dir / "pki")
            self.inject_dir.mkdir(exist_ok=True)
            if not self.reused:
                if any(running.values()):  # a partial lab (a crash): start from nothing
                    await remove_project()
                await self._compose_up()
            clients = {s: ControlClient(self.run_dir / f"{s}.sock") for s in LAB_SERVICES}
            await self._ready(clients, ca_fingerprint(pki), reload=self.reused)
            self.services = services = RemoteServices(clients)
            await services.reset()
            extra = os.environ.get("MTASTS_LAB_COMPOSE_SENDER")
            if extra:  # a sender container for generic senders (`command`) to run in
                await self._sender_up(extra, ca_fingerprint(pki))
            self._pumps = [asyncio.ensure_future(self._pump(s, c)) for s, c in clients.items()]
        except BaseException:
            await self.down()
            raise
        self.topology = Topology(
            dns=DNS_ADDR, policy=POLICY_ADDR, mx_fronts=FRONTS, mx_backs=BACKS,
            attacker=ATTACKER_ADDR, dns_port=53, smtp_port=25, https_port=443,
            extra={"compose_project": cd.PROJECT, "compose_file": str(cd.COMPOSE_FILE),
                   "run_dir": str(self.run_dir), "docker_host": cd.docker_host(),
                   "subnet": cd.SUBNET, **{f"sender_{k}": v for k, v in SENDER_ADDRS.items()}},
        )
        self.bringup_s = time.monotonic() - started
        events.emit(RUNNER, "backend-up", {"backend": self.name, "reused": self.reused,
                                           "bringup_s": round(self.bringup_s, 4)})
        return self.topology

    @property
    def inject_dir(self) -> Path:
        return self.run_dir / "inject"

    async def _compose_up(self) -> None:
        # Old sockets would answer for nothing: the services make new ones when ready.
        for service in LAB_SERVICES:
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / f"{service}.sock").unlink()
        await cd.compose(self.run_dir, "up", "-d", "--no-build", "--remove-orphans",
                         *LAB_SERVICES)

    async def _ready(self, clients: Mapping[str, ControlClient], ca: str, reload: bool) -> None:
        """Wait until every service answers with this run's CA (reused ones reload it)."""
        deadline = time.monotonic() + READY_TIMEOUT_S

        async def one(service: str, client: ControlClient) -> None:
            if not reload:
                await self._wait_log(service, "lab.control:", deadline)
            else:
                await client.request("POST", "/pki")
            health = await client.health()
            if health["ca"] != ca:
                raise BackendUnavailable(f"compose: {service} uses another CA than this run's")
            if service == "policy" and not health.get("mitm"):
                # an image built before the lab image shipped mitmproxy: skip, with the reason
                self.unsupported_attacks = {
                    "policy-mitm": "the policy container's image has no mitmproxy: rebuild "
                                   "the images (scripts/build-images)"}

        await asyncio.gather(*(one(s, c) for s, c in clients.items()))

    async def _wait_log(self, service: str, marker: str, deadline: float) -> None:
        """Wait for a container's ready line in its log (event-driven, with a deadline)."""
        ctr = await asyncio.to_thread(cd.container, self.docker, service)
        if ctr is None:
            raise BackendUnavailable(f"compose: no running container for {service}")
        seen = asyncio.Event()

        def on_line(line: str) -> None:
            if marker in line:
                seen.set()

        follower = cd.LogFollower(ctr, on_line, since=0)
        await asyncio.to_thread(follower.start)
        try:
            await asyncio.wait_for(seen.wait(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            state = await asyncio.to_thread(lambda: (ctr.reload(), ctr.status)[1])
            logs = await asyncio.to_thread(lambda: ctr.logs(tail=20).decode(errors="replace"))
            raise BackendUnavailable(f"compose: {service} not ready within "
                                     f"{READY_TIMEOUT_S:.0f} s (status {state}): {logs}") from None
        finally:
            await follower.stop()

    async def _sender_up(self, service: str, ca: str) -> None:
        """Start (or SIGHUP) a sender service; wait for its agent's ready line with this CA."""
        from lab.senders.agent import READY

        ctr = await asyncio.to_thread(cd.container, self.docker, service)
        if ctr is None:
            await cd.compose(self.run_dir, *cd.all_profiles(), "up", "-d", "--no-build",
                             service)
        else:
            await asyncio.to_thread(ctr.kill, "SIGHUP")
        await self._wait_log(service, READY + ca, time.monotonic() + READY_TIMEOUT_S)

    async def _pump(self, service: str, client: ControlClient) -> None:
        """Long-poll one service's events into the runner's event log."""
        assert self._events is not None
        since = (await client.request("GET", "/events?since=0&wait=0"))["next"]
        self._cursor[service] = max(since, self._cursor.get(service, 0))
        while True:
            try:
                batch = await client.events(self._cursor[service], POLL_WAIT_S)
            except ControlError as exc:
                self._events.emit(RUNNER, "backend-error", {"service": service,
                                                            "error": str(exc)})
                return
            self._take(service, batch)

    def _take(self, service: str, batch: Mapping[str, Any]) -> int:
        """Emit the events of a batch not emitted yet (the pump and ``settle`` both read)."""
        assert self._events is not None
        cursor, taken = self._cursor.get(service, 0), 0
        for event in batch["events"]:
            if int(event.get("seq", cursor)) < cursor:
                continue
            self._events.emit(event["source"], event["kind"],
                              {**event["data"], "container": service})
            taken += 1
        self._cursor[service] = max(cursor, int(batch["next"]))
        return taken

    async def settle(self, judged: int) -> bool:
        """Fetch every service's events up to now (a pump may be mid long-poll): the sender's
        own status arrives through the container log, often before the lab's evidence. True
        also when a pump delivered events after ``judged`` while this asked (it then finds
        nothing new itself, yet the observation did not see them)."""
        services = getattr(self, "services", None)
        if not self._pumps or not isinstance(services, RemoteServices):
            return False
        assert self._events is not None

        async def one(service: str, client: ControlClient) -> int:
            try:
                return self._take(service, await client.events(self._cursor.get(service, 0),
                                                               0))
            except ControlError:
                return 0

        counts = await asyncio.gather(*(one(s, c) for s, c in services.clients.items()
                                        if s in self._cursor))
        return sum(counts) > 0 or self._events.mark() > judged

    # -- senders ----------------------------------------------------------------------------

    def sender_env(self, workdir: Path) -> SenderEnv:
        assert self._pki is not None and self._events is not None, "up() first"
        service = os.environ.get("MTASTS_LAB_COMPOSE_SENDER", "postfix")
        # Under the run directory, which sender containers also mount at its host path: a
        # file an adapter writes there is at the same path for the programs it runs there.
        shared = self.run_dir / "work" / workdir.name
        shared.mkdir(parents=True, exist_ok=True)
        return SenderEnv(
            dns=(DNS_ADDR, 53), smtp_port=25, https_port=443,
            # the exported copy: the same path on the host and in the sender containers
            ca_file=self.run_dir / "pki" / self._pki.ca_file.name, workdir=shared,
            emit=self._events.emit,
            topology=self.topology, backend=self.name,
            place=ComposePlace(self.run_dir),
            # programs run in the sender's container (the `command` sender)
            exec_prefix=(os.environ.get("MTASTS_LAB_DOCKER_CLIENT", "/usr/bin/docker"),
                         "-H", cd.docker_host(), "exec", "-i", self._container_name(service)),
            exec_env_flag="-e",  # docker exec hands the program none of its own environment
        )

    def _container_name(self, service: str) -> str:
        """The service's container, found by its compose labels (compose v1 names it
        ``project_service_1``, v2 ``project-service-1``)."""
        found = cd.container(self.docker, service) if self.docker is not None else None
        return str(found.name) if found is not None else f"{cd.PROJECT}_{service}_1"

    # -- down -------------------------------------------------------------------------------

    async def down(self) -> None:
        """Stop the pumps; remove the project's containers and network unless kept.
        Idempotent."""
        pumps, self._pumps = self._pumps, []
        for task in pumps:
            task.cancel()
        if pumps:
            await asyncio.wait(pumps, timeout=5)
        if not self._started:
            self._release_project()
            return
        self._started = False
        self._active.discard(id(self))
        try:
            if not self.keep:
                await cd.compose(self.run_dir, *cd.all_profiles(), "down", "-v",
                                 "--remove-orphans", "-t", "5")
                # the run's CA keys and messages go with the lab (a kept lab keeps them)
                for sub in ("pki", "inject", "work"):
                    shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        finally:
            if self.docker is not None:
                await asyncio.to_thread(self.docker.close)
                self.docker = None
            self._release_project()


class ProjectInUse(Exception):
    """Another process holds the compose project's lock (``holder``: its pid)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def hold_project_lock() -> tuple[int, Path]:
    """Take the compose project's lock (``LOCK_DIR/mtasts-lab-compose-<project>.lock``,
    holding this process's pid) or raise ``ProjectInUse``."""
    path = LOCK_DIR / f"mtasts-lab-compose-{cd.PROJECT}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ProjectInUse(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd, path


def release_project_lock(lock: tuple[int, Path]) -> None:
    with contextlib.suppress(OSError):
        lock[1].unlink()
    os.close(lock[0])


async def remove_project() -> str:
    """Remove every container and network of the lab's compose project (``mtasts-lab down``)."""
    return await cd.compose(cd.RUN_DIR, *cd.all_profiles(), "down", "-v", "--remove-orphans",
                            "-t", "5")
