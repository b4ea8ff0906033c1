"""Reading one scenario file's fields: each error names the file and the field
(``ScenarioError``: ``file: field: what is wrong``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ScenarioError(Exception):
    """A scenario file is malformed: ``file: field: what is wrong``."""

    def __init__(self, path: str, fieldname: str, message: str) -> None:
        self.path, self.field, self.message = path, fieldname, message
        where = f"{path}: {fieldname}: " if fieldname else f"{path}: "
        super().__init__(where + message)




class Fields:
    """Reads a mapping, naming the path of every field it complains about."""

    def __init__(self, path: str, where: str, data: Any, allowed: Iterable[str]) -> None:
        self.path, self.where = path, where
        if not isinstance(data, Mapping):
            raise ScenarioError(path, where or "(top)", f"must be a mapping, not {kind_of(data)}")
        unknown = sorted(set(map(str, data)) - set(allowed))
        if unknown:
            raise ScenarioError(path, self.sub(unknown[0]),
                                f"unknown field (known: {', '.join(sorted(allowed))})")
        self.data = data

    def sub(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.where}[{key}]"
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(self.path, self.sub(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "is required")
            return default if default is not None else ""
        value = self.data[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.error(key, f"must be a non-empty string, not {kind_of(value)}")
        return value

    def str_list(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        if required and not value:
            raise self.error(key, "must not be empty")
        return tuple(value)

    def whole(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, not {kind_of(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"must be between {lo} and {hi}, not {value}")
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, not {kind_of(value)}")
        if not lo <= value <= hi:
            raise self.error(key, f"must be between {lo} and {hi}, not {value}")
        return float(value)

    def choice(self, key: str, choices: Iterable[str], default: str | None = None) -> str:
        choices = tuple(choices)
        value = self.data.get(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return str(value)


def kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
