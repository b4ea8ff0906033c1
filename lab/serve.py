"""``mtasts-lab serve``: keep one world up for a sender a person drives by hand."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import signal
import tempfile
from pathlib import Path

from lab.backends.base import Backend
from lab.events import Event, EventLog
from lab.narrate import step
from lab.pki import LabPKI
from lab.scenario import Phase, Scenario
from lab.senders import placeholders
from lab.senders.base import SenderEnv
from lab.world_setup import publish, service_config


def describe(scenario: Scenario, phase: Phase, backend: Backend, run_dir: Path,
             ca_file: Path) -> str:
    t = backend.topology
    env = backend.sender_env(run_dir)
    lines = [
        f"Serving {scenario.id} [{phase.name}] on the {backend.name} backend.",
        f"  DNS server       {env.dns[0]} port {env.dns[1]} (UDP and TCP)",
        f"  lab CA to trust  {ca_file}"
        + (f" (inside the lab's network: {env.ca_file})" if env.ca_file != ca_file else ""),
        f"  SMTP port        {t.smtp_port}   policy host HTTPS port {t.https_port}",
    ]
    for domain in phase.world.domains:
        policy = domain.policy
        lines.append(f"  domain {domain.name}: MX {', '.join(domain.mx) or '(none)'}; "
                     + (f"policy {policy.mode} at https://{domain.policy_host}"
                        "/.well-known/mta-sts.txt" if policy else "no policy"))
    lines += addresses(scenario, phase, backend)
    attacks = ", ".join(a.name for a in phase.attacks) or "none"
    lines += [f"  attacks          {attacks}", *swaks_lines(phase, env, ca_file),
              f"  send a message to {phase.rcpt}; what happens is printed below. Ctrl-C ends."]
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
    for i, host in enumerate(phase.world.mx_hosts()):
        if i < len(t.mx_fronts):
            out.append(f"  MX {host}: {t.mx_fronts[i]} port {t.smtp_port} (on-path proxy) "
                       f"-> genuine MX {t.mx_backs[i]}")
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


async def serve_world(backend_name: str, scenario: Scenario, phase: Phase,
                      seconds: float | None) -> None:
    events = EventLog()
    run_dir = Path(tempfile.mkdtemp(prefix="mtasts-lab-serve-"))
    backend = Backend.registry.get(backend_name)()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def show(event: Event) -> None:
        for line in step({"source": event.source, "kind": event.kind, **event.data}):
            print(line, flush=True)

    events.listen(show)
    try:
        pki = LabPKI(run_dir / "pki")
        topology = await backend.up(run_dir, pki, events)
        publish(backend.services, service_config(phase.world, topology, phase.attacks))
        print(describe(scenario, phase, backend, run_dir, pki.ca_file), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await backend.down()
        shutil.rmtree(run_dir, ignore_errors=True)
        print("stopped; the world is down", flush=True)
