"""Names the DNS attacks share: which domain they act on and the ``{domain}`` placeholder.

Not an attack module (no ``name``): importing it registers nothing.
"""

from __future__ import annotations

import string

from lab.world import World, is_test_name, normalize

PLACEHOLDERS: tuple[str, ...] = ("domain",)
"""What a name template may say: ``{domain}`` is the attacked domain."""


def check_test_name(option: str, value: str) -> str:
    """``value`` if it is a reserved ``.test`` name, else ValueError naming the option."""
    if "*" in value or not is_test_name(value):
        raise ValueError(f"{option}: {value!r} is not a reserved .test name "
                         "(the lab only ever uses .test names)")
    return normalize(value)


def check_template(option: str, template: str) -> str:
    """A name template with only the known placeholders that expands to a .test name."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{option}: {template!r}: {exc}") from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise ValueError(f"{option}: unknown placeholder {{{unknown[0]}}} in {template!r} "
                         f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
    check_test_name(option, expand(template, "victim.test"))
    return template


def expand(template: str, domain: str) -> str:
    return normalize(template.format(domain=domain))


def attacked_domain(domain: str | None, world: World) -> str:
    """The domain an attack acts on: its ``domain`` option, else the recipient domain."""
    return normalize(domain) if domain else world.domain.name


def sts_name(domain: str) -> str:
    return f"_mta-sts.{domain}"
