"""Reading YAML the lab is given: bounded, plain, one line per error.

Scenario files are small mappings of plain values. Everything else is refused before a
scenario is built, each with ``InputError(path, where, message)`` (``where`` is ``line N``
when the problem has a place): files over ``MAX_BYTES``, more than ``MAX_NODES`` values,
nesting deeper than ``MAX_DEPTH``, anchors and aliases, tags other than the core
scalar/list/mapping ones, lists or mappings used as keys, duplicate keys, text that is not
UTF-8, control characters (NUL included), and a top level that is not a mapping. The checks
are hooks of a ``yaml.SafeLoader`` subclass, so PyYAML's own reader and parser do the scanning.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode

MAX_BYTES = 1 << 20
"""Largest scenario file (1 MiB): the catalogue's biggest is under 3 KiB."""
MAX_DEPTH = 32
"""Deepest nesting of lists and mappings: the catalogue needs 6."""
MAX_NODES = 10_000
"""Most values (scalars, lists, mappings) in one file: the catalogue's biggest has under 100.
Bounds the work: PyYAML's pure-Python parser needs about 35 s for a 1 MiB list of numbers."""
MAX_MESSAGE = 300
"""Longest text of the input quoted in an error."""

_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}"
                       for t in ("str", "int", "float", "bool", "null", "seq", "map"))


class InputError(Exception):
    """Input the lab refuses: ``path: where: message``, always one line."""

    def __init__(self, path: str, where: str, message: str) -> None:
        self.path, self.field, self.message = path, where, one_line(message)
        text = f"{one_line(path)}: {where}: " if where else f"{one_line(path)}: "
        super().__init__(text + self.message)


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` with every line break and control character escaped, cut at ``limit``."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return out if len(out) <= limit else out[:limit] + "..."


class _Refused(yaml.MarkedYAMLError):
    """A construct the lab does not accept, at a place in the text."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses what scenario files never need (see the module text)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refused(f"aliases (*{event.anchor}) are not allowed", event.start_mark)
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _Refused(f"anchors (&{event.anchor}) are not allowed", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _CORE_TAGS:
            shown = str(tag).replace("tag:yaml.org,2002:", "!!")
            raise _Refused(f"the tag {shown} is not allowed (plain values only)",
                           event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values (scalars, lists and mappings)",
                           event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError, TypeError) as exc:
            # e.g. an integer of more than 4300 digits, a date like 2024-13-45
            raise _Refused(f"bad value: {exc}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                kind = "mapping" if isinstance(key_node, MappingNode) else "list"
                raise _Refused(f"a {kind} used as a key (keys are plain names)",
                               key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}",
                                       key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _at(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    return f"line {line}"


def load_text(text: str, path: str) -> dict[Any, Any]:
    """The mapping at the top of ``text``; anything else is an ``InputError``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise InputError(path, "", f"larger than {MAX_BYTES // (1 << 20)} MiB, the limit "
                                   "for scenario files")
    try:
        data = yaml.load(text, Loader=BoundedLoader)  # a SafeLoader subclass
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = "a NUL byte" if code == 0 else f"the control character U+{code:04X}"
        raise InputError(path, _at(text, exc.position),
                         f"{what} (not allowed in YAML text)") from None
    except _Refused as exc:
        mark = exc.problem_mark
        raise InputError(path, f"line {mark.line + 1}" if mark else "",
                         str(exc.problem)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InputError(path, where, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(path, "", f"not valid YAML: {exc}") from None
    except RecursionError:  # the depth hook stops long before this; kept as a last guard
        raise InputError(path, "", f"nested deeper than {MAX_DEPTH} levels") from None
    if data is None:
        raise InputError(path, "", "has no content (empty or only comments)")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else \
            "text" if isinstance(data, str) else f"a {type(data).__name__}"
        raise InputError(path, "(top)", f"must be a mapping of fields, not {kind}")
    return data


def load_bytes(raw: bytes, path: str) -> dict[Any, Any]:
    """``raw`` as UTF-8 YAML (a leading byte order mark is allowed)."""
    if len(raw) > MAX_BYTES:
        raise InputError(path, "", f"{len(raw)} bytes, over the {MAX_BYTES // (1 << 20)} MiB "
                                   "limit for scenario files")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(path, f"line {line}", f"not UTF-8 (byte 0x{raw[exc.start]:02x})") \
            from None
    return load_text(text, path)


def read(path: Path) -> dict[Any, Any]:
    """Read a YAML file: refused by its size before a byte is read."""
    name = str(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(name, "", f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(name, "", "not a regular file")
    if info.st_size > MAX_BYTES:
        raise InputError(name, "", f"{info.st_size} bytes, over the {MAX_BYTES // (1 << 20)} "
                                   "MiB limit for scenario files")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(name, "", f"cannot read: {exc.strerror or exc}") from None
    return load_bytes(raw, name)
