"""Generated parts of the README, from the code and the scenario files.

    python -m lab.docs --write README.md   # regenerate the marked blocks
    python -m lab.docs --check README.md   # exit 1 when the README is out of step (a test runs it)

A block is ``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab import backends, senders
from lab.attack_options import attack_options, option_type_text
from lab.attacks import Attack, load_all
from lab.cli import build_parser
from lab.known_failures import phase_key, split_key
from lab.scenario import Scenario, load_catalogue
from lab.senders.base import Sender

VERDICT_SENDERS = ("reference", "opportunistic", "postfix", "postfix-pypi", "postfix-3.10",
                   "chasquid", "chasquid-1.15", "exim", "exim-4.98", "sendmail")


def _ours(items: Sequence[tuple[str, type[Any]]]) -> list[tuple[str, type[Any]]]:
    """The lab's own plugins (not test doubles a test module registered)."""
    return [(name, cls) for name, cls in items if cls.__module__.startswith("lab.")]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def catalogue_table(scenarios: Sequence[Scenario]) -> str:
    rows = ["| scenario | checklist | attacks | a compliant sender | what is wrong |",
            "| --- | --- | --- | --- | --- |"]
    for s in scenarios:
        expect = " / ".join(dict.fromkeys(" or ".join(p.expect.outcome) for p in s.phases))
        rows.append(f"| `{s.id}` | {', '.join(s.covers)} | "
                    f"{', '.join(s.attack_names()) or '-'} | {expect} | {_md(s.summary)} |")
    return "\n".join(rows)


def attacks_table() -> str:
    rows = ["| attack | where | options | what it does |", "| --- | --- | --- | --- |"]
    for name, cls in _ours(Attack.registry.items()):
        opts = ", ".join(f"`{f.name}`: {option_type_text(f.type)}" for f in attack_options(cls))
        rows.append(f"| `{name}` | {cls.place} | {_md(opts) or '-'} | {_md(cls.summary)} |")
    return "\n".join(rows)


def senders_table() -> str:
    rows = ["| sender | backends | what it is |", "| --- | --- | --- |"]
    for name, cls in _ours(Sender.registry.items()):
        rows.append(f"| `{name}` | {', '.join(cls.backends)} | {_md(cls.summary)} |")
    return "\n".join(rows)


def _cell(sender: type[Sender], scenario: Scenario) -> str:
    """``pass``, or what its known failures make of the scenario's attack and report
    phases (with the phases named when not all of them)."""
    bearing = [p.name for p in scenario.phases if p.bears_known_failures]
    known = {name: sender.known_failure(scenario.known_failures, name) for name in bearing}
    listed = [name for name, reason in known.items() if reason is not None]
    if not listed:
        return "pass"
    kinds = {"not-exercised" if str(known[n]).startswith("not exercised") else "known-failure"
             for n in listed}
    cell = " / ".join(sorted(kinds))
    return cell if len(listed) == len(bearing) else f"{cell} ({', '.join(listed)})"


def verdict_table(scenarios: Sequence[Scenario]) -> str:
    """The verdicts each sender is held to: known failures are strict, so a run that
    differs from this table fails."""
    names = [n for n in VERDICT_SENDERS if n in Sender.registry]
    rows = ["| scenario | " + " | ".join(names) + " |",
            "| --- |" + " --- |" * len(names)]
    table = []
    for s in scenarios:
        relays = any(p.world.smart_host for p in s.phases)
        cells = ["skipped" if relays and not Sender.registry.get(n).smart_host
                 else _cell(Sender.registry.get(n), s) for n in names]
        table.append(cells)
        rows.append(f"| `{s.id}` | " + " | ".join(cells) + " |")
    counts = []
    for i in range(len(names)):
        column = [row[i] for row in table]
        passed = column.count("pass")
        known = len(column) - passed - column.count("skipped")
        counts.append(f"{passed} pass / {known} known"
                      + (f" / {column.count('skipped')} skipped" if "skipped" in column else ""))
    rows.append("| **total** | " + " | ".join(counts) + " |")
    return "\n".join(rows)


def known_failures_list(scenarios: Sequence[Scenario]) -> str:
    lines = []
    for name in VERDICT_SENDERS:
        if name in ("reference", "opportunistic"):
            continue
        items = [(phase_key(s.id, phase), reason) for s in scenarios
                 for key, reason in s.known_failures.items()
                 for sender, phase in [split_key(key)] if sender == name]
        held_as = Sender.registry.get(name).known_failures_as if name in Sender.registry else ""
        if held_as:
            lines += [f"**{name}**: held to the known failures of {held_as} (the same "
                      "program, another version), strictly: a phase that passes there is an "
                      "unexpected pass", ""]
        if items:
            lines.append(f"**{name}**\n")
            lines += [f"- `{sid}`: {_md(reason)}" for sid, reason in items]
            lines.append("")
    return "\n".join(lines).rstrip() or "None recorded."


def _fixed_width(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=92)
    return parser


def help_text() -> str:
    """``mtasts-lab --help`` and ``mtasts-lab run --help``, at a fixed width."""
    parser = _fixed_width(build_parser())
    parser.prog = "mtasts-lab"
    texts = [parser.format_help().rstrip()]
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        if isinstance(action, argparse._SubParsersAction):
            run = _fixed_width(action.choices["run"])
            texts.append("$ mtasts-lab run --help\n" + run.format_help().rstrip())
    return "```\n$ mtasts-lab --help\n" + "\n\n".join(texts) + "\n```"


def blocks() -> dict[str, Callable[[], str]]:
    load_all()
    senders.load_all()
    backends.load_all()
    scenarios = load_catalogue()
    return {
        "catalogue": lambda: catalogue_table(scenarios),
        "attacks": attacks_table,
        "senders": senders_table,
        "verdicts": lambda: verdict_table(scenarios),
        "known-failures": lambda: known_failures_list(scenarios),
        "help": help_text,
        "count": lambda: str(len(scenarios)),
    }


_BLOCK = re.compile(r"(<!-- generated:([a-z-]+) -->)(.*?)(<!-- /generated:\2 -->)", re.S)


def render(text: str) -> str:
    makers = blocks()

    def fill(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in makers:
            raise KeyError(f"unknown generated block {name!r}")
        body = makers[name]()
        inline = "\n" not in m.group(3)
        return m.group(1) + (body if inline else f"\n{body}\n") + m.group(4)

    return _BLOCK.sub(fill, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate or check the README's "
                                                 "generated blocks")
    parser.add_argument("readme", type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = render(text)
    if args.write:
        if new != text:
            args.readme.write_text(new)
        return 0
    if new != text:
        print(f"{args.readme} is out of step with the code: run "
              f"python -m lab.docs --write {args.readme}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
