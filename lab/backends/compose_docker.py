"""Docker plumbing for the ``compose`` backend and its sender adapters: no lab services here.

Which daemon: ``DOCKER_HOST`` when set, else the private daemon that ``scripts/docker-daemon``
starts (``unix:///var/lib/mtasts-lab-docker/docker.sock``). Containers are found by their
compose labels (project ``mtasts-lab`` unless ``MTASTS_LAB_COMPOSE_PROJECT`` says otherwise).
Commands in containers run through the Docker SDK (``exec_run``); a container's log is read
as it is written (``logs(stream=True, follow=True)``) on a thread that hands each line to the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import images

PRIVATE_SOCKET = "/var/lib/mtasts-lab-docker/docker.sock"
PROJECT = os.environ.get("MTASTS_LAB_COMPOSE_PROJECT", "mtasts-lab")
ROOT = Path(__file__).resolve().parents[2]


def _find_compose_file() -> Path:
    """``$MTASTS_LAB_COMPOSE_FILE``, else the source tree this package runs from, else the
    current folder (an installed package has no compose.yaml of its own: the images and the
    file come with the source tree)."""
    explicit = os.environ.get("MTASTS_LAB_COMPOSE_FILE")
    if explicit:
        return Path(explicit)
    for candidate in (ROOT / "compose.yaml", Path.cwd() / "compose.yaml"):
        if candidate.is_file():
            return candidate
    return ROOT / "compose.yaml"


COMPOSE_FILE = _find_compose_file()
RUN_DIR = Path(os.environ.get("MTASTS_LAB_RUN_DIR", "/run/mtasts-lab-compose"))
SUBNET = "10.254.0.0/24"
LAB_IMAGE = "mtasts-lab/lab:latest"
SENDER_IMAGES = images.SENDER_IMAGES
SENDER_PROFILES = images.SENDER_PROFILES


def all_profiles() -> list[str]:
    """``--profile P`` for every sender profile: ``down`` then removes those containers too."""
    return [arg for p in sorted(set(SENDER_PROFILES.values())) for arg in ("--profile", p)]


class DockerUnavailable(Exception):
    """No Docker daemon, SDK or compose here; the message says what is missing."""


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or f"unix://{PRIVATE_SOCKET}"


def client() -> Any:
    """A Docker SDK client for the lab's daemon (API version negotiated)."""
    try:
        docker: Any = importlib.import_module("docker")
    except ImportError as exc:
        raise DockerUnavailable("the Docker SDK for Python is not installed "
                                "(pip install 'mtasts-lab[compose]')") from exc
    host = docker_host()
    if host.startswith("unix://"):
        # checked here first: the SDK leaks its socket when the connect fails
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError as exc:
                raise DockerUnavailable(f"no Docker daemon answers at {host} "
                                        f"(scripts/docker-daemon start): {exc}") from None
    c = None
    try:
        c = docker.DockerClient(base_url=docker_host(), timeout=60)
        c.api._version = c.api._retrieve_server_version()  # negotiate, as version="auto"
        c.ping()
    except Exception as exc:
        if c is not None:
            c.close()
        raise DockerUnavailable(f"no Docker daemon answers at {docker_host()} "
                                f"(scripts/docker-daemon start): {exc}") from exc
    return c


def compose_command() -> list[str]:
    """``docker compose`` (v2) where the docker CLI has the plugin, else ``docker-compose``
    (v1, Debian 12's package); ``MTASTS_LAB_DOCKER_COMPOSE`` names either explicitly."""
    explicit = os.environ.get("MTASTS_LAB_DOCKER_COMPOSE")
    if explicit:
        base = shlex.split(explicit)
    elif _has_compose_v2():
        base = [str(shutil.which("docker")), "compose"]
    elif shutil.which("docker-compose"):
        base = [str(shutil.which("docker-compose"))]
    else:
        raise DockerUnavailable("neither docker compose (v2) nor docker-compose (v1) found "
                                "(apt-get install docker-compose)")
    return [*base, "-p", PROJECT, "-f", str(COMPOSE_FILE)]


@functools.cache
def _has_compose_v2() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True,
                               timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def compose_env(run_dir: Path) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": docker_host(), "COMPOSE_DOCKER_CLI_BUILD": "0",
            "MTASTS_LAB_RUN_DIR": str(run_dir)}


async def compose(run_dir: Path, *args: str, timeout: float = 120.0) -> str:
    """Run docker-compose for the lab's project; raise with its own words on failure."""
    argv = [*compose_command(), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=compose_env(run_dir), cwd=str(COMPOSE_FILE.parent))
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"docker-compose {' '.join(args)} exited {proc.returncode}: "
                           f"{text.strip()[-2000:]}")
    return text


def containers(docker: Any, service: str | None = None, running: bool = True) -> list[Any]:
    labels = [f"com.docker.compose.project={PROJECT}"]
    if service is not None:
        labels.append(f"com.docker.compose.service={service}")
    found = docker.containers.list(all=not running, filters={"label": labels})
    return list(found)


def container(docker: Any, service: str) -> Any | None:
    found = containers(docker, service)
    return found[0] if found else None


def run_dir_of(ctr: Any) -> Path | None:
    """The host directory bind-mounted at /run/lab in a lab container."""
    for mount in ctr.attrs.get("Mounts", []):
        if mount.get("Destination") == "/run/lab":
            return Path(mount["Source"])
    return None


@dataclass
class ExecResult:
    exit_code: int
    output: str


async def exec_in(ctr: Any, argv: Sequence[str], timeout: float = 30.0,
                  env: dict[str, str] | None = None) -> ExecResult:
    """Run a command in a container (Docker SDK ``exec_run``) to completion.

    Input goes through files in the shared run directory, not stdin: ``exec_run`` then
    returns the exit code as soon as the command's output closes.
    """

    def go() -> ExecResult:
        code, out = ctr.exec_run(list(argv), environment=env, demux=False)
        return ExecResult(code if code is not None else -1, (out or b"").decode(errors="replace"))

    return await asyncio.wait_for(asyncio.to_thread(go), timeout)


class LogFollower:
    """Follow a container's log as it is written; ``on_line`` runs on the event loop."""

    def __init__(self, ctr: Any, on_line: Callable[[str], None],
                 since: float | None = None) -> None:
        self.ctr = ctr
        self.on_line = on_line
        self.since = since if since is not None else time.time()
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._stream: Any = None
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"logs-{ctr.name}")

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        buf = b""
        try:
            since = {"since": int(self.since)} if self.since > 0 else {}  # 0: from the start
            self._stream = self.ctr.logs(stream=True, follow=True, stdout=True, stderr=True,
                                         **since)
            self._ready.set()
            for chunk in self._stream:
                if self._stopped.is_set():
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace").rstrip("\r")
                    with contextlib.suppress(RuntimeError):  # the loop is closed
                        self._loop.call_soon_threadsafe(self.on_line, text)
        except Exception as exc:
            if not self._stopped.is_set():
                self.error = exc
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self.on_line, f"mtasts-lab: log stream "
                                                    f"failed: {exc!r}")
        finally:
            self._ready.set()

    async def stop(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
        await asyncio.to_thread(self._thread.join, 5)
