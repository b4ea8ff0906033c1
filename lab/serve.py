"""``mtasts-lab serve``: keep one world up for a sender a person drives by hand."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Sequence
from pathlib import Path

from lab.backends.base import Backend
from lab.dane_world import anchors as dane_anchors
from lab.events import PROXY, Event, EventLog
from lab.live_judge import LiveJudge
from lab.narrate import step as step_lines
from lab.pki import LabPKI
from lab.runner import configure_world
from lab.scenario import Phase, Scenario
from lab.senders import placeholders
from lab.senders.base import SenderEnv
from lab.waits import SYNC_S, services_ready, services_synced
from lab.world_setup import attacker_hosts


def describe(scenario: Scenario, backend: Backend, run_dir: Path, ca_file: Path) -> str:
    """What stays the same for the whole session: the DNS server, the CA, the ports."""
    t = backend.topology
    env = backend.sender_env(run_dir)
    return "\n".join([
        f"Serving {scenario.id} on the {backend.name} backend: {scenario.summary}",
        f"  DNS server       {env.dns[0]} port {env.dns[1]} (UDP and TCP)",
        f"  lab CA to trust  {ca_file}"
        + (f" (inside the lab's network: {env.ca_file})" if env.ca_file != ca_file else ""),
        f"  SMTP port        {t.smtp_port}   policy host HTTPS port {t.https_port}",
    ])


def describe_phase(scenario: Scenario, phase: Phase, backend: Backend, run_dir: Path,
                   ca_file: Path, position: tuple[int, int]) -> str:
    """The served phase: its world, its attacks, what a compliant sender does, swaks lines."""
    env = backend.sender_env(run_dir)
    number, count = position
    lines = [f"Phase {phase.name} ({number} of {count}) of {scenario.id}:"]
    for domain in phase.world.domains:
        policy = domain.policy
        lines.append(f"  domain {domain.name}: MX {', '.join(domain.mx) or '(none)'}; "
                     + (f"policy {policy.mode} at https://{domain.policy_host}"
                        "/.well-known/mta-sts.txt" if policy else "no policy"))
    lines += addresses(scenario, phase, backend)
    attacks = ", ".join(a.name for a in phase.attacks) or "none"
    expect = phase.expect
    lines += [f"  attacks          {attacks}",
              f"  expected         {' or '.join(expect.outcome)} ({expect.level})"
              + (f"; also allowed, stricter: {', '.join(expect.stricter)}"
                 if expect.stricter else ""),
              *swaks_lines(phase, env, ca_file),
              f"  send a message to {phase.rcpt}; each message (or refused session) is judged "
              "below."]
    return "\n".join(lines)


SWAKS = "swaks --server {mx} --to {rcpt} --from {from} --helo sender.test"
SWAKS_TLS = {"strict": "--tls --tls-verify --tls-ca-path {ca_file}",
             "opportunistic": "--tls-optional"}


def addresses(scenario: Scenario, phase: Phase, backend: Backend) -> list[str]:
    t = backend.topology
    netns = t.extra.get("sender_netns")
    out = [f"  sender runs in   network namespace {netns} (ip netns exec {netns} ...)"
           if netns else "  sender runs in   this host's loopback (no namespace)",
           f"  policy hosts     {t.policy} port {t.https_port}   attacker {t.attacker}"]
    attacker = attacker_hosts(phase.world, phase.attacks)
    for i, host in enumerate([*phase.world.mx_hosts(), *attacker]):
        if i < len(t.mx_fronts):
            behind = "the attacker's MX" if host in attacker else "genuine MX"
            out.append(f"  MX {host}: {t.mx_fronts[i]} port {t.smtp_port} (on-path proxy) "
                       f"-> {behind} {t.mx_backs[i]}")
    return out


def swaks_lines(phase: Phase, env: SenderEnv, ca_file: Path) -> list[str]:
    """Paste-ready swaks lines (they go to the first MX: swaks does no MX lookup itself)."""
    vals = {**placeholders.run_values(env), "ca_file": str(ca_file), "rcpt": phase.rcpt,
            "from": "probe@sender.test"}
    out = []
    for kind, tls in SWAKS_TLS.items():
        words = [placeholders.fill(w, vals) for w in shlex.split(f"{SWAKS} {tls}")]
        out.append(f"  swaks, {kind + ':':<14} {shlex.join([*env.exec_prefix, *words])}")
    return out


STEP_PROMPT = "Press Enter for the next phase ({name}); Ctrl-C ends."
LAST_PROMPT = "This is the last phase; Ctrl-C ends."
READY = "Ctrl-C ends."


def served_phases(scenario: Scenario) -> list[Phase]:
    """Every phase ``serve`` can step through, in the runner's order: the baseline first."""
    return [*([scenario.baseline] if scenario.baseline else []), *scenario.phases]


class _Lines:
    """Lines a person types on stdin (Enter steps to the next phase), read without a thread:
    asyncio watches the descriptor. At end of input the current phase stays up."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._fd = sys.stdin.fileno()
        self._buffer = b""
        try:
            self._loop.add_reader(self._fd, self._read)
        except (OSError, ValueError):  # a regular file or /dev/null cannot be watched
            print("serve: --step reads Enter from a terminal or a pipe; this standard input "
                  "cannot be watched, so the first phase stays up", file=sys.stderr,
                  flush=True)
            self.queue.put_nowait(None)

    def _read(self) -> None:
        chunk = os.read(self._fd, 4096)
        if not chunk:
            self.close()
            self.queue.put_nowait(None)
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self.queue.put_nowait(line.decode(errors="replace"))

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._fd)


async def _first(*aws: Awaitable[object]) -> None:
    """Wait for the first of these to finish; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve_world(backend_name: str, scenario: Scenario, phases: Sequence[Phase],
                      seconds: float | None, step: bool = False) -> None:
    """Serve ``phases`` one after the other on one backend: the DNS server, the CA and the
    addresses stay; each phase's world and attacks replace the last (as the runner does
    between phases). With ``step``, Enter moves on; each session is judged as it ends."""
    events = EventLog()
    run_dir = Path(tempfile.mkdtemp(prefix="mtasts-lab-serve-"))
    backend = Backend.registry.get(backend_name)()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    judge = LiveJudge(lambda line: print(line, flush=True))
    pending: set[asyncio.Task[None]] = set()
    phase_mark = 0

    async def judge_later(close: Event) -> None:
        # events that travel by another channel (containers) catch up first
        await services_synced(backend.services, events)
        judge.session_ended(events.since(phase_mark), close)

    def show(event: Event) -> None:
        for line in step_lines({"source": event.source, "kind": event.kind, **event.data}):
            print(line, flush=True)
        if event.source == PROXY and event.kind == "close":
            task = loop.create_task(judge_later(event))
            pending.add(task)
            task.add_done_callback(pending.discard)

    events.listen(show)
    lines = _Lines() if step else None
    deadline = None if seconds is None else loop.time() + seconds
    try:
        pki = LabPKI(run_dir / "pki")
        topology = await backend.up(run_dir, pki, events)
        topology.extra.update(dane_anchors(pki))  # TLSA data for the worlds (X1)
        print(describe(scenario, backend, run_dir, pki.ca_file), flush=True)
        for number, phase in enumerate(phases, 1):
            if number > 1 and phase.wait_s:
                print(f"Scenario time: {phase.wait_s:g} s pass before {phase.name} (as in "
                      "`mtasts-lab run`), so that the sender's cached state ages.", flush=True)
                await _first(stop.wait(), asyncio.sleep(phase.wait_s))
            if stop.is_set():
                break
            if pending:  # judge the last phase's sessions against the last phase
                await asyncio.wait(pending)
            configure_world(backend, topology, phase.world, phase.attacks)
            await services_ready(backend.services, events)
            judge.start_phase(phase, events.mark(), events.since(phase_mark))
            phase_mark = events.mark()
            print(describe_phase(scenario, phase, backend, run_dir, pki.ca_file,
                                 (number, len(phases))), flush=True)
            more = number < len(phases)
            prompt = STEP_PROMPT.format(name=phases[number].name) if more and step \
                else LAST_PROMPT if step else ""
            print(prompt or READY, flush=True)
            waits: list[Awaitable[object]] = [stop.wait()]
            if deadline is not None:
                waits.append(asyncio.sleep(max(0.0, deadline - loop.time())))
            if lines is not None and more:
                waits.append(_next_line(lines))
            await _first(*waits)
            if stop.is_set() or (deadline is not None and loop.time() >= deadline) \
                    or not (lines is not None and more):
                break
        if pending:
            await asyncio.wait(pending, timeout=SYNC_S)
    finally:
        if lines is not None:
            lines.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await backend.down()
        shutil.rmtree(run_dir, ignore_errors=True)
        print("stopped; the world is down", flush=True)


async def _next_line(lines: _Lines) -> None:
    """Until Enter; at end of input, forever (the phase stays up until Ctrl-C or --for)."""
    if await lines.queue.get() is None:
        await asyncio.Event().wait()
