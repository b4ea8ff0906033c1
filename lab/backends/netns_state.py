"""What a lab run made outside its own process, written down so a crashed run can be undone.

Every run of the ``netns`` backend (and every real-sender instance started in it) writes one
JSON state file under ``STATE_DIR`` *before* it creates anything: the namespaces it will add
(all named ``mtl-<runid>-<role>``), the ``/etc/netns`` directories, the processes it starts
(PID plus the kernel's start time, so a reused PID is never killed) and the directories it
fills. A normal ``down()`` removes everything and then the state file.

``cleanup_leftovers()`` (``mtasts-lab down``) reads every state file whose owner process is
gone and removes what it lists: processes recorded by PID, processes still running inside
the run's namespaces (found with ``ip netns pids``), the namespaces, the ``/etc/netns`` entries
and the recorded directories. It never touches a name without the lab's prefix, nor anything
a state file does not list, nor the things of a run whose owner is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("MTASTS_LAB_STATE_DIR", "/run/mtasts-lab"))
NS_PREFIX = "mtl-"
ETC_NETNS = Path("/etc/netns")
NETNS_RUN_DIR = Path("/run/netns")
_NS_NAME = re.compile(r"^mtl-[0-9a-z]+-[0-9a-z-]+$")


def is_lab_namespace(name: str) -> bool:
    return bool(_NS_NAME.match(name))


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


def proc_is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2:].split()[0] in ("Z", "X")


def proc_alive(pid: int, start: int | None) -> bool:
    """``pid`` runs, is not a zombie and (if ``start`` is known) is the same process."""
    now = proc_start_time(pid)
    if now is None or proc_is_zombie(pid):
        return False
    return start is None or now == start


@dataclass(frozen=True)
class ProcRef:
    pid: int
    start: int | None

    @classmethod
    def of(cls, pid: int) -> ProcRef:
        return cls(pid, proc_start_time(pid))

    def alive(self) -> bool:
        return proc_alive(self.pid, self.start)


def kill_procs(procs: Iterable[ProcRef], deadline_s: float = 2.0) -> list[ProcRef]:
    """SIGKILL each still-living process (checked by start time, signalled through a pidfd so
    a reused PID is never hit), wait for its exit on the pidfd (bounded), reap it if it is our
    child. Returns those killed."""
    killed: list[tuple[ProcRef, int]] = []
    for proc in procs:
        if not proc.alive():
            continue
        try:
            fd = os.pidfd_open(proc.pid)
        except (ProcessLookupError, OSError):
            continue
        if not proc.alive():  # the pidfd now pins the process: check it is still ours
            os.close(fd)
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            os.close(fd)
            continue
        killed.append((proc, fd))
    end = time.monotonic() + deadline_s
    for proc, fd in killed:
        try:
            select.select([fd], [], [], max(0.0, end - time.monotonic()))
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, os.WNOHANG)
        finally:
            os.close(fd)
    return [proc for proc, _ in killed]


def netns_pids(*names: str) -> list[ProcRef]:
    """Processes whose network namespace is one of ``names`` (what ``ip netns pids`` does,
    in one scan of /proc for all of them)."""
    wanted = set()
    for name in names:
        with contextlib.suppress(OSError):
            st = os.stat(NETNS_RUN_DIR / name)
            wanted.add((st.st_dev, st.st_ino))
    if not wanted:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in wanted:
            found.append(ProcRef.of(int(entry.name)))
    return found


def existing_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def delete_namespaces(names: Iterable[str]) -> list[str]:
    """``ip netns del`` for each lab namespace that exists; one batch. Returns those removed."""
    present = existing_namespaces()
    todo = [n for n in names if is_lab_namespace(n) and n in present]
    if todo:
        batch = "".join(f"netns del {n}\n" for n in todo)
        subprocess.run(["ip", "-force", "-batch", "-"], input=batch, text=True,
                       capture_output=True, check=False)
    gone = existing_namespaces()
    return [n for n in todo if n not in gone]


@dataclass
class RunState:
    """One state file: what one run (or one sender instance) made."""

    runid: str
    kind: str
    owner: ProcRef
    namespaces: list[str] = field(default_factory=list)
    etc_dirs: list[str] = field(default_factory=list)
    procs: list[ProcRef] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.kind}-{self.runid}.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.path)

    def add_proc(self, pid: int) -> None:
        self.procs.append(ProcRef.of(pid))
        self.save()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @classmethod
    def load(cls, path: Path) -> RunState:
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(
            runid=raw["runid"], kind=raw["kind"], owner=ProcRef(**raw["owner"]),
            namespaces=list(raw.get("namespaces", [])), etc_dirs=list(raw.get("etc_dirs", [])),
            procs=[ProcRef(**p) for p in raw.get("procs", [])],
            paths=list(raw.get("paths", [])),
        )

    def undo(self) -> list[str]:
        """Remove everything this state lists; return a line per thing removed."""
        removed: list[str] = []
        in_ns = netns_pids(*(ns for ns in self.namespaces if is_lab_namespace(ns)))
        for proc in kill_procs([*self.procs, *in_ns]):
            removed.append(f"process {proc.pid}")
        removed += [f"netns {n}" for n in delete_namespaces(self.namespaces)]
        for d in self.etc_dirs:
            path = Path(d)
            if path.parent == ETC_NETNS and is_lab_namespace(path.name) and path.exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"dir {path}")
        for d in self.paths:
            path = Path(d)
            if path.exists() and _is_lab_path(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"dir {path}")
        self.remove()
        return removed


def _is_lab_path(path: Path) -> bool:
    """Only directories the lab names as its own (``mtl-`` or ``mtasts-lab`` in the name)."""
    return path.is_absolute() and any(
        part.startswith(NS_PREFIX) or "mtasts-lab" in part for part in path.parts[1:])


def iter_states() -> Iterator[tuple[Path, RunState | None]]:
    if not STATE_DIR.is_dir():
        return
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            yield path, RunState.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            yield path, None


def cleanup_leftovers() -> list[str]:
    """Undo every run whose owner process is gone; return what was removed.

    Runs that are still alive (their owner process exists with the recorded start time) are
    left alone, so this is safe while another lab run is going on.
    """
    removed: list[str] = []
    for path, state in iter_states():
        if state is None:
            path.unlink(missing_ok=True)
            removed.append(f"unreadable state file {path}")
            continue
        if state.owner.alive():
            continue
        removed += state.undo()
        removed.append(f"state {path.name}")
    return removed
