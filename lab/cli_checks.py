"""Checks of the command line's values, made before any work starts (one line, exit 2)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lab.yaml_input import one_line

if TYPE_CHECKING:
    from lab.backends.base import Backend

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad usage or input: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block): the lab's input rule."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} "
                              f"(see {self.prog} --help)\n")


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds, "
                                         "0 or more")
    return value


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 to 64")
    return value


def _writable(path: str | None, flag: str) -> Path | None:
    """An output file that can be written, checked before the run so no result is lost."""
    if path is None:
        return None
    out = Path(path)
    if not path or out.is_dir() or path.endswith(os.sep):
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    if out.exists() and not out.is_file():
        raise UsageError(f"{flag} {path}: exists and is not a regular file")
    if not out.parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {out.parent} does not exist")
    try:  # the reports are written through a temp file beside the target: probe that
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: folder {out.parent} cannot be written "
                         f"({exc.strerror or exc})") from None
    return out


def outputs(args: argparse.Namespace) -> dict[str, Path | None]:
    outs = {flag: _writable(getattr(args, flag), f"--{flag}") for flag in ("json", "junit",
                                                                           "html")}
    named = [(flag, p.resolve()) for flag, p in outs.items() if p is not None]
    for i, (flag, resolved) in enumerate(named):
        for other, again in named[i + 1:]:
            if resolved == again:
                raise UsageError(f"--{flag} and --{other} name the same file {resolved}")
    return outs


ALL_REAL = "all-real"
"""``--sender all-real``: every real MTA that runs on the backend and on this machine."""


def all_real(names: Sequence[str], backend: str, backend_cls: type[Backend]) -> list[str]:
    """``names`` with ``all-real`` replaced by every real MTA (an ``MtaSender``) that runs on
    ``backend`` and on this machine; the ones left out are named on stderr."""
    from lab.senders.base import Sender
    from lab.senders.mta import MtaSender

    real: list[str] = []
    absent: list[str] = []
    for name, cls in Sender.registry.items():
        if not issubclass(cls, MtaSender) or backend not in cls.backends:
            continue
        missing = backend_cls.sender_missing(cls)
        (absent.append(f"{name} ({'; '.join(missing)})") if missing else real.append(name))
    for line in absent:
        print(f"--sender {ALL_REAL}: left out {line}", file=sys.stderr)
    if not real:
        raise UsageError(f"--sender {ALL_REAL}: no real MTA can run on --backend {backend} "
                         "here (see mtasts-lab doctor)")
    chosen = [n for n in names if n != ALL_REAL]
    return chosen + [n for n in real if n not in chosen]
