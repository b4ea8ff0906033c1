"""The runner: bring a backend up, drive each sender through each scenario, record verdicts.

A ``Record`` per phase (``lab.run_record``), in a run directory of its own (``lab.run_dirs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import backends, senders
from lab.attacks.base import Attack
from lab.backends.base import Backend
from lab.dane_world import anchors as dane_anchors
from lab.events import RUNNER, EventLog
from lab.oracle import ERROR, INCONCLUSIVE, SKIPPED, Observation, Verdict, decide, observe
from lab.pki import LabPKI
from lab.report_expect import for_domain, report_events, satisfied
from lab.run_dirs import make_run_dir
from lab.run_record import Record, report_summary
from lab.scenario import Phase, Scenario
from lab.sender_options import typed_kwargs
from lab.senders.base import OutgoingMessage, Sender
from lab.waits import reports_settled, services_ready, services_synced
from lab.world import Topology, World
from lab.world_setup import publish, service_config


@dataclass
class RunOptions:
    backend: str = "loopback"
    senders: Sequence[str] = ("reference", "opportunistic")
    grace_s: float = 1.0
    run_dir: Path | None = None
    keep_run_dir: bool = False
    sender_options: dict[str, str] = field(default_factory=dict)
    """KEY=VALUE options handed to each sender whose constructor takes KEY."""
    timeout_s: float | None = None
    """Overrides every scenario's timeout (``run --timeout``)."""
    skip: dict[str, str] = field(default_factory=dict)
    """Scenario id -> reason: reported as skipped (``run --expect``)."""
    retry_inconclusive: int = 1
    """Run a scenario again (sender reset, every phase) this many times while one of its
    phases is ``inconclusive``: the experiment did not happen, so repeating it is honest;
    a pass or a failure is never repeated."""


Progress = Callable[[Record], None]


def configure_world(backend: Backend, topology: Topology, world: World,
                    attacks: Sequence[Attack]) -> None:
    """Publish the world with the phase's attacks applied, on every service."""
    publish(backend.services, service_config(world, topology, attacks))


def sender_kwargs(cls: type[Sender], options: dict[str, str]) -> dict[str, Any]:
    """The options this sender's constructor accepts, typed (lab.sender_options)."""
    return typed_kwargs(cls, options)


def attacks_missing(attacks: Sequence[Attack], backend: Backend) -> list[str]:
    """Why these attacks cannot run here: an optional module, or the backend."""
    out = [m for a in attacks for m in a.missing()]
    return out + [f"{a.name}: {backend.unsupported_attacks[a.name]}" for a in attacks
                  if a.name in backend.unsupported_attacks]


def scenario_missing(scenario: Scenario, backend: Backend) -> list[str]:
    return [m for p in scenario.phases for m in attacks_missing(p.attacks, backend)]


class Runner:
    def __init__(self, options: RunOptions, progress: Progress | None = None) -> None:
        self.options = options
        self.progress = progress
        self.events = EventLog()
        self.records: list[Record] = []
        self.bringup_s: float | None = None
        self.sender_start_s: dict[str, float] = {}
        self.scenario_s: list[tuple[str, str, float]] = []
        """(sender, scenario, seconds) including the reset between scenarios."""

    async def run(self, scenarios: Sequence[Scenario]) -> list[Record]:
        backends.load_all()
        senders.load_all()
        sender_classes = [Sender.registry.get(name) for name in self.options.senders]
        backend = Backend.registry.get(self.options.backend)()
        made_dir = self.options.run_dir is None
        run_dir = self.options.run_dir or make_run_dir()
        if made_dir and self.options.keep_run_dir:
            print(f"mtasts-lab: the run directory is kept: {run_dir}", file=sys.stderr,
                  flush=True)
        t0 = time.monotonic()
        try:
            pki = LabPKI(run_dir / "pki")
            topology = await backend.up(run_dir, pki, self.events)
            topology.extra.update(dane_anchors(pki))  # TLSA data for the worlds (X1)
            self.bringup_s = time.monotonic() - t0
            for cls in sender_classes:
                sender = cls(**sender_kwargs(cls, self.options.sender_options))
                workdir = run_dir / "senders" / cls.name
                workdir.mkdir(parents=True, exist_ok=True)
                t_start = time.monotonic()
                try:
                    await sender.start(backend.sender_env(workdir))
                except Exception as exc:  # every phase of this sender is an error; go on
                    with contextlib.suppress(Exception):
                        await sender.close()
                    self._not_started(sender, scenarios, f"{type(exc).__name__}: {exc}")
                    continue
                self.sender_start_s[cls.name] = time.monotonic() - t_start
                try:
                    for scenario in scenarios:
                        t_scenario = time.monotonic()
                        await self._scenario_until_conclusive(backend, topology, sender,
                                                              scenario)
                        self.scenario_s.append((cls.name, scenario.id,
                                                time.monotonic() - t_scenario))
                finally:
                    await sender.close()
        finally:
            await backend.down()
            if made_dir and not self.options.keep_run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
        return self.records

    def _not_started(self, sender: Sender, scenarios: Sequence[Scenario], why: str) -> None:
        self.events.emit(RUNNER, "sender-error", {"sender": sender.name, "error": why})
        for scenario in scenarios:
            for phase in ([scenario.baseline] if scenario.baseline else []) + \
                    list(scenario.phases):
                self._unobserved(sender, scenario, phase, ERROR,
                                 f"the sender did not start: {why}")

    async def _scenario_until_conclusive(self, backend: Backend, topology: Topology,
                                         sender: Sender, scenario: Scenario) -> None:
        """Run the scenario; again from a reset sender while a phase is inconclusive."""
        first = len(self.records)
        await self._scenario(backend, topology, sender, scenario)
        history: list[str] = []
        for attempt in range(2, self.options.retry_inconclusive + 2):
            odd = [r for r in self.records[first:] if r.verdict == INCONCLUSIVE]
            if not odd:
                break
            why = "; ".join(f"[{r.phase}] {r.why}" for r in odd)
            history.append(f"attempt {attempt - 1} was inconclusive: {why}")
            self.events.emit(RUNNER, "retry", {"scenario": scenario.id, "sender": sender.name,
                                               "attempt": attempt, "why": why})
            del self.records[first:]
            await self._scenario(backend, topology, sender, scenario)
        for record in self.records[first:]:
            record.notes.extend(history)

    async def _scenario(self, backend: Backend, topology: Topology, sender: Sender,
                        scenario: Scenario) -> None:
        await sender.reset()
        baseline_ok: bool | None = None
        if scenario.baseline is not None:
            record = await self._phase(backend, topology, sender, scenario,
                                       scenario.baseline, None)
            baseline_ok = record.verdict == "pass"
            await sender.reset()
        primed = False
        reported: set[str] = set()
        for phase in scenario.phases:
            quiet_from = self.events.mark()
            if phase.wait_s:
                # scenario time (a policy's max_age running out), not a synchronisation wait
                await asyncio.sleep(phase.wait_s)
            record = await self._phase(backend, topology, sender, scenario, phase,
                                       baseline_ok, primed, quiet_from, frozenset(reported))
            primed = primed or any(e.get("source") == "policy" and e.get("kind") == "fetch"
                                   for e in record.evidence)
            reported |= {str(r.get("transport")) for r in record.reports if r.get("delivered")}

    async def _phase(self, backend: Backend, topology: Topology, sender: Sender,
                     scenario: Scenario, phase: Phase, baseline_ok: bool | None,
                     primed: bool = False, quiet_from: int | None = None,
                     reported: frozenset[str] = frozenset()) -> Record:
        started = time.monotonic()
        missing = scenario_missing(scenario, backend) if phase.name == "baseline" else \
            attacks_missing(phase.attacks, backend)
        if scenario.id in self.options.skip:
            missing = [self.options.skip[scenario.id]]
        if phase.world.smart_host and not sender.relays():
            missing = [*missing, f"not exercised: the {sender.name} sender cannot be "
                       f"configured with a smart host on the {self.options.backend} backend "
                       "(a relay the phase sends through)"]
        if missing:
            return self._skip(sender, scenario, phase, missing)
        message = OutgoingMessage.probe(phase.rcpt, scenario.id, phase.name,
                                        phase.world.smart_host)
        known = type(sender).known_failure(scenario.known_failures, phase.name) \
            if phase.bears_known_failures else None
        expect_report = phase.expect.report
        reports: list[Any] = []
        if expect_report is not None and phase.name != "baseline":
            # close the period before the phase, so that its report covers this phase only
            before = self.events.mark()
            await sender.start_period()
            await reports_settled(self.events, before, lambda _ev: False,
                                  sender_reports=type(sender).reports_tlsrpt, grace_s=0.0)
        mark = self.events.mark()
        obs: Observation | None = None
        try:
            configure_world(backend, topology, phase.world, phase.attacks)
            await services_ready(backend.services, self.events)
            self.events.emit(RUNNER, "inject", {"scenario": scenario.id, "phase": phase.name,
                                                "message_id": message.message_id})
            await sender.inject(message)
            obs = await observe(self.events, mark, phase, message.message_id,
                                own_status=type(sender).own_status,
                                timeout_s=self.options.timeout_s or scenario.timeout_s,
                                grace_s=self.options.grace_s,
                                sync=lambda: services_synced(backend.services, self.events))
            # lab evidence that lagged the sender's own status (after the events it saw)
            if await backend.settle(self.events.mark()):
                obs = await observe(self.events, mark, phase, message.message_id,
                                    own_status=type(sender).own_status,
                                    timeout_s=self.options.timeout_s or scenario.timeout_s,
                                    grace_s=self.options.grace_s)
            if expect_report is not None and phase.name != "baseline":
                flushed = self.events.mark()
                domain = phase.world.domain.name
                await sender.flush_reports()
                await reports_settled(
                    self.events, flushed,
                    lambda ev: satisfied(expect_report, domain, ev, every=True),
                    sender_reports=type(sender).reports_tlsrpt, grace_s=self.options.grace_s)
                reports = report_events(self.events.since(mark))
                # the evidence again: attacks on the report's path act after the decision
                obs = await observe(self.events, mark, phase, message.message_id,
                                    own_status=type(sender).own_status,
                                    timeout_s=self.options.timeout_s or scenario.timeout_s,
                                    grace_s=self.options.grace_s)
            if quiet_from is not None:  # what the sender did while no mail was sent (C4)
                obs.quiet = self.events.since(quiet_from)[:mark - quiet_from]
            verdict = decide(phase, obs, known_failure=known, baseline_ok=baseline_ok,
                             primed=primed, reports=reports, reported_before=reported)
        except Exception as exc:  # an error is a verdict of its own, with its reason
            verdict = Verdict(ERROR, f"{type(exc).__name__}: {exc}")
        finished = time.monotonic()
        record = Record(
            scenario=scenario.id, phase=phase.name, sender=sender.name,
            backend=self.options.backend, expected=list(phase.expect.outcome),
            observed=obs.outcome if obs else None, verdict=verdict.verdict,
            level=phase.expect.level,
            attack_fired=(all(obs.fired.values()) if obs and phase.attacks else None),
            duration_s=round(finished - started, 4),
            reason=obs.reason if obs else verdict.why, refs=list(scenario.refs),
            why=verdict.why, advisory=verdict.advisory,
            status=obs.status if obs else None,
            attacks=[a.name for a in phase.attacks],
            fired=obs.fired if obs else {}, engaged=obs.engaged if obs else [],
            sni=obs.sni if obs else [], message_id=message.message_id,
            verdict_delay_ms=(round((finished - obs.decided_at) * 1000, 2)
                              if obs and obs.decided_at else None),
            evidence=[e.as_dict() for e in (obs.events if obs else [])],
            notes=list(verdict.notes), exercise_required=verdict.required,
            report_expected=expect_report.as_dict() if expect_report else None,
            reports=[report_summary(e) for e in
                     (for_domain(reports, phase.world.domain.name) if expect_report else [])],
        )
        return self._record(record)

    def _record(self, record: Record) -> Record:
        self.records.append(record)
        if self.progress:
            self.progress(record)
        return record

    def _skip(self, sender: Sender, scenario: Scenario, phase: Phase,
              missing: list[str]) -> Record:
        return self._unobserved(sender, scenario, phase, SKIPPED,
                                "skipped: " + "; ".join(sorted(set(missing))))

    def _unobserved(self, sender: Sender, scenario: Scenario, phase: Phase, verdict: str,
                    why: str) -> Record:
        """The record of a phase that never ran: skipped, or its sender never started."""
        return self._record(Record(
            scenario=scenario.id, phase=phase.name, sender=sender.name,
            backend=self.options.backend, expected=list(phase.expect.outcome), observed=None,
            verdict=verdict, level=phase.expect.level, attack_fired=None, duration_s=0.0,
            reason=why, refs=list(scenario.refs), why=why,
            attacks=[a.name for a in phase.attacks]))


async def run_catalogue(scenarios: Sequence[Scenario], options: RunOptions,
                        progress: Progress | None = None, jobs: int = 1) -> list[Record]:
    """Run the scenarios; with ``jobs`` > 1 the list is split over that many labs."""
    if jobs <= 1 or len(scenarios) < 2:
        return await Runner(options, progress).run(scenarios)
    chunks = [list(scenarios[i::jobs]) for i in range(jobs)]
    runners = [Runner(options, progress) for _ in chunks if _]
    results = await asyncio.gather(*(r.run(c) for r, c in zip(runners, chunks, strict=False)))
    order = {s.id: i for i, s in enumerate(scenarios)}
    merged = [rec for recs in results for rec in recs]
    merged.sort(key=lambda r: (r.sender, order.get(r.scenario, 0)))
    return merged


class _QuietTlsEof(logging.Filter):
    """asyncio warns on every TLS stream whose protocol keeps the transport open at EOF;
    the lab's streams do that on purpose, so the line is noise to a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


def quiet_tls_eof_warnings() -> None:
    logging.getLogger("asyncio").addFilter(_QuietTlsEof())
