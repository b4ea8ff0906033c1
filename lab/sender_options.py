"""``--sender-opt KEY=VALUE``: which sender takes which option, and the value typed.

A sender's options are its constructor's keyword parameters annotated with plain types
(``str``, ``int``, ``float``, ``bool``, optionally ``| None``). A value is converted to the
first of ``bool``, ``int``, ``float`` its annotation names, else kept as text; a value that does
not convert is an ``OptionError`` naming the option, before any work starts.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class OptionError(ValueError):
    """A sender option that cannot be used: the message names the option."""


def option_types(cls: type[Any]) -> dict[str, tuple[type, ...]]:
    """The command-line options of a sender class and the plain types each accepts."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    out: dict[str, tuple[type, ...]] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(name, str)
        args = typing.get_args(hint) if typing.get_origin(hint) in (
            typing.Union, types.UnionType) else (hint,)
        plain = tuple(a for a in args if a in (str, int, float, bool))
        if plain:
            out[name] = plain
    return out


def convert(key: str, value: str, accepted: tuple[type, ...]) -> Any:
    """``value`` as the richest plain type ``accepted`` names."""
    text = value.strip()
    if bool in accepted:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise OptionError(f"{key}={value}: must be true or false")
    if int in accepted:
        try:
            whole = int(text)
        except ValueError:
            raise OptionError(f"{key}={value}: must be a whole number") from None
        if key == "port" and not 1 <= whole <= 65535:
            raise OptionError(f"{key}={value}: must be a port number, 1 to 65535")
        return whole
    if float in accepted:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise OptionError(f"{key}={value}: must be a number of 0 or more") from None
        return number
    return value


def typed_kwargs(cls: type[Any], options: Mapping[str, str]) -> dict[str, Any]:
    """The options ``cls`` takes, converted; raises ``OptionError`` for a bad value."""
    types_of = option_types(cls)
    return {key: convert(key, value, types_of[key])
            for key, value in options.items() if key in types_of}
