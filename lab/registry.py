"""One way to register plugins: a ``name`` class attribute, registered on subclassing.

Attacks, senders and backends all use it, so ``mtasts-lab list``, the README catalogue and
the scenario schema come from the code.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T", bound="Registered")


class DuplicateName(Exception):
    """Two plugins of one kind claim the same name."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type[T]] = {}

    def add(self, cls: type[T]) -> None:
        name = cls.name
        if name in self._items and self._items[name] is not cls:
            raise DuplicateName(f"{self.kind} {name!r} is registered twice: "
                                f"{self._items[name].__module__} and {cls.__module__}")
        self._items[name] = cls

    def get(self, name: str) -> type[T]:
        """A plugin by name; ``name:profile`` is that plugin's profile (``with_profile``)."""
        base, colon, profile = name.partition(":")
        try:
            cls = self._items[base]
            return cls.with_profile(profile) if colon else cls
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, type[T]]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        base, colon, profile = name.partition(":")
        return base in self._items and (not colon or profile in self._items[base].profiles())


class Registered:
    """Base of every plugin kind. A subclass with ``name`` set is registered.

    A plugin kind declares ``registry = Registry("kind")`` once; concrete plugins set ``name``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    registry: ClassVar[Registry[Any]]

    @classmethod
    def profiles(cls) -> list[str]:
        """The profile names ``name:profile`` selects (none by default)."""
        return []

    @classmethod
    def with_profile(cls, profile: str) -> type[Any]:
        """This plugin under a named profile; ``KeyError`` when there is no such profile."""
        raise KeyError(profile)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            cls.registry.add(cls)
