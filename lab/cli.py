"""``mtasts-lab``: exit 0 when everything is as expected, 1 when something failed, 2 for bad
usage or input (with a one-line error naming the file and the field, never a traceback)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab import __version__, backends, checklist, cli_checks, expectations, report, senders, shard
from lab.attack_options import attack_options, option_type_text
from lab.attacks import Attack, load_all
from lab.backends.base import Backend, BackendUnavailable
from lab.cli_checks import EXIT_USAGE, Parser, UsageError, jobs, outputs, positive_seconds, seconds
from lab.explain import explain
from lab.narrate import narrate
from lab.run_dirs import cleanup_run_dirs
from lab.run_record import Record, exit_code
from lab.runner import Progress, RunOptions, quiet_tls_eof_warnings, run_catalogue, sender_kwargs
from lab.scenario import Scenario, ScenarioError, catalogue_root, load_catalogue, select
from lab.scenario_info import infos
from lab.sender_options import OptionError, typed_kwargs
from lab.senders.base import Sender
from lab.serve import serve_world, served_phases
from lab.yaml_input import one_line

EXIT_OK, EXIT_FAILED = 0, 1


def _load_plugins() -> None:
    load_all()
    senders.load_all()
    backends.load_all()


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    root = Path(args.scenarios_dir) if args.scenarios_dir else catalogue_root()
    if not root.is_dir():
        raise UsageError(f"{root}: scenario folder not found")
    if getattr(args, "scenario", None):
        return select(args.scenario, root)
    return load_catalogue(root)


def _progress(total: int, quiet: bool, narrative: bool = False) -> Progress:
    done = 0

    def show(record: Record) -> None:
        nonlocal done
        done += 1
        if narrative:
            print(narrate(record), flush=True)
        if quiet:
            return
        label = "advisory" if record.advisory else record.verdict
        print(f"[{done:>3}/{max(total, done)}] {record.sender:<14} {record.scenario} "
              f"[{record.phase}] {label} ({record.observed or '-'}, {record.duration_s:.2f}s)",
              file=sys.stderr, flush=True)
    return show


def cmd_run(args: argparse.Namespace) -> int:
    scenarios = _scenarios(args)
    sender_names = args.sender or ["reference", "opportunistic"]
    for name in sender_names:
        if name == cli_checks.ALL_REAL:
            continue
        if not senders.is_known(name):
            raise UsageError(f"--sender {name}: unknown sender "
                             f"(known: {', '.join(senders.known_names())})")
    if args.backend not in Backend.registry:
        raise UsageError(f"--backend {args.backend}: unknown backend "
                         f"(known: {', '.join(Backend.registry.names())})")
    backend_cls = Backend.registry.get(args.backend)
    missing = backend_cls.check()
    if missing:
        raise UsageError(f"--backend {args.backend} cannot run here: {'; '.join(missing)} "
                         "(see mtasts-lab doctor)")
    if cli_checks.ALL_REAL in sender_names:
        sender_names = cli_checks.all_real(sender_names, args.backend, backend_cls)
    for name in sender_names:
        cls = Sender.registry.get(name)
        if args.backend not in cls.backends:
            raise UsageError(f"--sender {name} does not run on --backend {args.backend} "
                             f"(it runs on: {', '.join(cls.backends)})")
    outs = outputs(args)
    json_out, junit_out, html_out = outs["json"], outs["junit"], outs["html"]
    sender_options = _sender_options(args.sender_opt, sender_names)
    for name in sender_names:  # a sender's own check of its options (placeholders, ports)
        check_options = getattr(Sender.registry.get(name), "check_options", None)
        if check_options is not None and (problem := check_options(sender_options)):
            raise UsageError(f"--sender {name}: {problem}")
    if not 0 <= args.retry_inconclusive <= 5:
        raise UsageError(f"--retry-inconclusive {args.retry_inconclusive}: expected 0 to 5")
    if args.timeout is not None and not 0 < args.timeout <= 3600:
        raise UsageError(f"--timeout {args.timeout:g}: expected seconds in (0, 3600]")
    expect = None
    if args.expect:
        root = Path(args.scenarios_dir) if args.scenarios_dir else catalogue_root()
        try:
            expect = expectations.load(Path(args.expect), load_catalogue(root))
        except expectations.ExpectationsError as exc:
            raise UsageError(f"--expect {exc}") from None
        scenarios = expect.apply(scenarios, sender_names)
    spec = shard.parse(args.shard) if args.shard is not None else None
    work = shard.work(spec, scenarios, sender_names)
    phases = sum(len(s.phases) + (1 if s.baseline else 0)
                 for mine in work.values() for s in mine)
    progress = _progress(phases, args.quiet, args.show)
    records: list[Record] = []
    for group in shard.sender_groups(work):
        options = RunOptions(backend=args.backend, senders=group, grace_s=args.grace,
                             keep_run_dir=args.keep, sender_options=sender_options,
                             timeout_s=args.timeout,
                             retry_inconclusive=args.retry_inconclusive,
                             skip=dict(expect.skip) if expect else {})
        records += asyncio.run(run_catalogue(work[group[0]], options, progress,
                                             jobs=args.jobs))
    code = args.result_code = exit_code(records)
    if json_out:
        extra: dict[str, Any] = {"shard": {"index": spec[0], "count": spec[1]}} if spec else {}
        report.write_json(json_out, report.as_json(records, backend=args.backend,
                                                   senders=sender_names, exit_code=code,
                                                   scenarios=infos(scenarios), **extra))
    if junit_out:
        report.write_junit(junit_out, records)
    if html_out:
        report.write_html(html_out, records, infos(scenarios))
    print(report.table(records))
    print()
    print(report.summary(records))
    for line in report.problems(records):
        print("  " + line)
    return code


def cmd_merge(args: argparse.Namespace) -> int:
    outs = outputs(args)
    merged = shard.merge([Path(p) for p in args.files])
    return shard.report_merged(merged, json_out=outs["json"], junit_out=outs["junit"],
                               html_out=outs["html"])


def _sender_options(pairs: Sequence[str], sender_names: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--sender-opt {pair}: expected KEY=VALUE")
        try:
            takers = [n for n in sender_names
                      if sender_kwargs(Sender.registry.get(n), {key: value})]
        except OptionError as exc:
            raise UsageError(f"--sender-opt {exc}") from None
        if not takers:
            raise UsageError(f"--sender-opt {key}: none of the senders "
                             f"({', '.join(sender_names)}) takes this option")
        options[key] = value
    for name in sender_names:
        cls = Sender.registry.get(name)
        try:
            cls(**typed_kwargs(cls, options))
        except (OptionError, TypeError, ValueError) as exc:
            raise UsageError(f"--sender {name}: {exc}") from None
    return options


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what == "scenarios":
        for s in _scenarios(args):
            print(f"{s.id:<44} {s.summary}")
    elif what == "attacks":
        for name, cls in Attack.registry.items():
            opts = ", ".join(f"{f.name}: {option_type_text(f.type)}"
                             for f in attack_options(cls))
            print(f"{name:<22} {cls.place:<7} {cls.summary}")
            if opts:
                print(f"{'':<30} options: {opts}")
    elif what == "senders":
        for name, sender_cls in Sender.registry.items():
            version = sender_cls.version() or "-"
            print(f"{name:<16} {version:<26} {', '.join(sender_cls.backends):<18} "
                  f"{sender_cls.summary}")
            for profile in sender_cls.profiles():  # reference:<profile> (docs/VARIANTS.md)
                print(f"  {name}:{profile}")
    elif what == "backends":
        for name, backend_cls in Backend.registry.items():
            missing = backend_cls.check()
            state = "ready" if not missing else "missing: " + "; ".join(missing)
            print(f"{name:<10} {backend_cls.summary} [{state}]")
    elif what == "checklist":
        for item in checklist.CHECKLIST:
            print(f"{item.id:<4} {item.level:<7} {item.section:<20} {item.text}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    root = Path(args.scenarios_dir) if args.scenarios_dir else None
    for scenario in select([args.scenario_id], root):
        print(explain(scenario))
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    removed: list[str] = []
    for name, backend_cls in Backend.registry.items():
        for item in backend_cls.cleanup_leftovers():
            removed.append(item)
            print(f"{name}: removed {item}")
    for item in cleanup_run_dirs():
        removed.append(item)
        print(f"runner: removed run directory {item}")
    if not removed:
        print("nothing left behind")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    print(f"mtasts-lab {__version__} on Python {sys.version.split()[0]}")
    usable = 0
    print("backends:")
    for name, backend_cls in Backend.registry.items():
        missing = backend_cls.check()
        usable += not missing
        print(f"  {name:<14} " + ("ready" if not missing else "missing:"))
        for item in missing:
            print(f"  {'':<14}   - {item}")
    print("senders:")
    for name, sender_cls in Sender.registry.items():
        missing = sender_cls.check()
        print(f"  {name:<14} " + (f"ready (backends: {', '.join(sender_cls.backends)})"
                                  if not missing else "missing:"))
        for item in missing:
            print(f"  {'':<14}   - {item}")
    return EXIT_OK if usable else EXIT_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    root = Path(args.scenarios_dir) if args.scenarios_dir else None
    (scenario, *_) = select([args.scenario_id or "baseline/enforce-valid-tls"], root)
    phases = served_phases(scenario)
    names = [p.name for p in phases]
    if args.phase and args.phase not in names:
        raise UsageError(f"--phase {args.phase}: {scenario.id} has phases {', '.join(names)}")
    # alone, one phase (the first attack phase unless --phase names one); with --step, every
    # phase from there on (from the baseline unless --phase names one)
    attacked = [p.name for p in scenario.phases if p.attacks] or [scenario.phases[0].name]
    first = names.index(args.phase) if args.phase else \
        0 if args.step else names.index(attacked[0])
    chosen = phases[first:] if args.step else [phases[first]]
    if args.backend not in Backend.registry:
        raise UsageError(f"--backend {args.backend}: unknown backend")
    missing = Backend.registry.get(args.backend).check()
    if missing:
        raise UsageError(f"--backend {args.backend} cannot run here: {'; '.join(missing)}")
    asyncio.run(serve_world(args.backend, scenario, chosen, args.seconds, step=args.step))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mtasts-lab",
        description="Play the on-path attacker against a sending MTA and judge whether it "
                    "honours MTA-STS (RFC 8461). Uses reserved .test names and lab-made "
                    "networks only; never point it at real mail servers.",
        epilog="exit status: 0 all as expected, 1 something failed, 2 bad usage or input")
    parser.add_argument("--version", action="version", version=f"mtasts-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run scenarios against senders and give verdicts")
    run.add_argument("scenario", nargs="*",
                     help="scenario ids, theme folders or YAML files (default: the catalogue)")
    run.add_argument("--sender", action="append", metavar="NAME",
                     help="sender under test, repeatable (default: reference and "
                          "opportunistic); all-real: every real MTA this machine can run on "
                          "the backend")
    run.add_argument("--backend", default="loopback", metavar="NAME",
                     help="where the world runs (default: loopback)")
    run.add_argument("--json", metavar="FILE", help="write the results as JSON")
    run.add_argument("--junit", metavar="FILE", help="write the results as JUnit XML")
    run.add_argument("-j", "--jobs", type=jobs, default=1, metavar="N",
                     help="run N labs in parallel (loopback only; default 1)")
    run.add_argument("--grace", type=seconds, default=1.0, metavar="SECONDS",
                     help="grace window for fallback retries when the sender's own status "
                          "cannot be read (default 1.0)")
    run.add_argument("--keep", action="store_true",
                     help="keep the run directory (CA, certificates, sender files)")
    run.add_argument("--html", metavar="FILE",
                     help="write a self-contained HTML report with every phase's evidence")
    run.add_argument("--show", action="store_true",
                     help="tell each phase step by step as it finishes: DNS, policy fetch, "
                          "the SMTP transcript of both legs, the attack, the verdict")
    run.add_argument("--sender-opt", action="append", default=[], metavar="KEY=VALUE",
                     help="option for the senders that take it, e.g. host=127.0.0.1 for "
                          "--sender smtp, cmd='...' for --sender command (repeatable)")
    run.add_argument("--expect", metavar="FILE",
                     help="YAML: known_failures and skip, scenario id -> reason, for a sender "
                          "the catalogue does not know")
    run.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="per-phase timeout for every scenario (default: each scenario's own)")
    run.add_argument("--retry-inconclusive", type=int, default=1, metavar="N",
                     help="run a scenario again, from a reset sender, up to N times while a "
                          "phase is inconclusive (the experiment did not happen); passes and "
                          "failures are never repeated (default 1; 0: never)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.add_argument("--shard", metavar="K/N",
                     help="run only shard K of N of the (scenario, sender) pairs, a slice "
                          "that is the same on every machine; combine with merge")
    run.set_defaults(func=cmd_run)

    mrg = sub.add_parser("merge", help="combine the JSON results of shards (run --shard "
                                       "K/N --json) into one report")
    mrg.add_argument("files", nargs="+", metavar="FILE", help="JSON results of the shards")
    mrg.add_argument("--json", metavar="FILE", help="write the merged results as JSON")
    mrg.add_argument("--junit", metavar="FILE", help="write the merged results as JUnit XML")
    mrg.add_argument("--html", metavar="FILE", help="write the merged HTML report")
    mrg.set_defaults(func=cmd_merge)

    serve = sub.add_parser("serve", help="keep a world up for a sender you drive by hand; "
                                         "prints the DNS address, CA file and domains, and "
                                         "judges each message as it arrives")
    serve.add_argument("scenario_id", nargs="?", metavar="SCENARIO",
                       help="the world (and first phase's attacks) to serve (default: "
                            "baseline/enforce-valid-tls)")
    serve.add_argument("--backend", default="loopback", metavar="NAME")
    serve.add_argument("--phase", metavar="NAME",
                       help="serve this phase (default: the first attack phase; 'baseline' "
                            "is the scenario's world without attacks)")
    serve.add_argument("--step", action="store_true",
                       help="step through the phases (from the baseline, or from --phase) on "
                            "one live world: Enter moves to the next phase; the DNS server, "
                            "CA and addresses stay, so the sender keeps running")
    serve.add_argument("--for", dest="seconds", type=positive_seconds, metavar="SECONDS",
                       help="stop after this long (default: until Ctrl-C)")
    serve.set_defaults(func=cmd_serve)

    down = sub.add_parser("down", help="remove every namespace, process and container a "
                                       "crashed run left behind (the lab's own only)")
    down.set_defaults(func=cmd_down)

    doctor = sub.add_parser("doctor", help="what this machine can run, and what is missing "
                                           "for each backend and sender")
    doctor.set_defaults(func=cmd_doctor)

    lst = sub.add_parser("list", help="list scenarios, attacks, senders, backends or the "
                                      "checklist (id, level, section)")
    lst.add_argument("what", choices=["scenarios", "attacks", "senders", "backends",
                                      "checklist"])
    lst.set_defaults(func=cmd_list)

    exp = sub.add_parser("explain", help="what a scenario's attack does, what the RFC "
                                         "requires, what to look for")
    exp.add_argument("scenario_id", metavar="SCENARIO")
    exp.set_defaults(func=cmd_explain)

    for p in (run, lst, exp, serve):
        p.add_argument("--scenarios-dir", metavar="DIR",
                       help="use another scenario folder (default: the built-in catalogue)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_tls_eof_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _load_plugins()
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except (ScenarioError, UsageError, shard.ShardError) as exc:
        print(f"mtasts-lab: error: {one_line(str(exc), 1000)}", file=sys.stderr)
        return EXIT_USAGE
    except BackendUnavailable as exc:  # the lab could not come up: nothing was judged
        print(f"mtasts-lab: error: {one_line(str(exc), 1000)}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # the reader went away (| head): say nothing more, and keep the run's own code
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return int(getattr(args, "result_code", EXIT_OK))
    except KeyboardInterrupt:
        print("mtasts-lab: interrupted; everything the run started was stopped",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
