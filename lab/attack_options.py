"""Attacks as scenario files write them: a name, or a name with its options, checked
against the attack's typed option fields (each error names the file and the field)."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from lab.attacks import Attack
from lab.scenario_fields import Fields, ScenarioError, kind_of


def attack_options(cls: type[Attack]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def option_type_text(tp: Any) -> str:
    """A readable name for an option's type (for errors, ``list attacks`` and the README)."""
    choices = _choices(tp)
    if choices is not None:
        return " | ".join(choices)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and _is_optional(tp):
        return option_type_text(args[0]) + " (optional)"
    return getattr(tp, "__name__", str(tp))


def _is_optional(tp: Any) -> bool:
    return (typing.get_origin(tp) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(tp))


def _choices(tp: Any) -> tuple[str, ...] | None:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(str(m.value) for m in tp)
    if typing.get_origin(tp) is Literal:
        return tuple(str(a) for a in typing.get_args(tp))
    return None


def _coerce(path: str, where: str, tp: Any, value: Any) -> Any:
    if _is_optional(tp):
        if value is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    choices = _choices(tp)
    if choices is not None:
        if str(value) not in choices or isinstance(value, bool):
            raise ScenarioError(path, where, f"must be one of {', '.join(choices)}, "
                                             f"not {value!r}")
        return tp(value) if isinstance(tp, type) else value
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(path, where, f"must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(path, where, f"must be a whole number, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(path, where, f"must be a number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(path, where, f"must be a string, not {kind_of(value)}")
        return value
    raise ScenarioError(path, where, f"option type {tp!r} is not supported")


def parse_attack(path: str, where: str, raw: Any) -> Attack:
    options: Any
    if isinstance(raw, str):
        name, options = raw, {}
    elif isinstance(raw, Mapping) and len(raw) == 1:
        name, options = next(iter(raw.items()))
        options = {} if options is None else options
    else:
        raise ScenarioError(path, where, "must be an attack name or {name: {options}}")
    if name not in Attack.registry:
        raise ScenarioError(path, where, f"unknown attack {name!r} "
                                         f"(known: {', '.join(Attack.registry.names())})")
    cls = Attack.registry.get(name)
    fields = {f.name: f for f in attack_options(cls)}
    opts = Fields(path, f"{where}.{name}", options, fields)
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(path, opts.sub(key), hints[key], value)
              for key, value in opts.data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(path, f"{where}.{name}", str(exc)) from None


def build_attack(name: str, options: Mapping[str, Any] | None = None, *,
                 path: str = "<attack>", where: str = "attacks") -> Attack:
    """An attack from its name and options as a scenario writes them, with the loader's
    coercion and checks (``ScenarioError`` naming ``path`` and ``where`` on bad input)."""
    return parse_attack(path, where, {name: dict(options or {})})
