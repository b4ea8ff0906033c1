"""What a foreign sender is told: the placeholders of ``--sender command`` and their
environment variables (``MTASTS_LAB_`` + the name in capitals), one table for the code, the
validation and docs/BRING-YOUR-OWN-MTA.md."""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path

from lab.senders.base import OutgoingMessage, SenderEnv

ENV_PREFIX = "MTASTS_LAB_"

PLACEHOLDERS: dict[str, str] = {
    "rcpt": "the recipient address (its domain is the scenario's recipient domain)",
    "from": "the envelope sender address",
    "message_file": "path of the RFC 5322 message (CRLF line ends, with the Message-ID)",
    "message_id": "the probe's Message-ID, with angle brackets",
    "ca_file": "path of the lab CA certificate (PEM): the only root the lab's MX certificates "
               "chain to",
    "dns_host": "address of the lab's DNS server (the only resolver that knows the world)",
    "dns_port": "port of the lab's DNS server (UDP and TCP)",
    "mx_host": "address of the first MX slot: what the lab's DNS gives for the recipient "
               "domain's first MX (the on-path proxy in front of the genuine MX)",
    "mx_hosts": "addresses of every MX slot, comma-separated, in slot order",
    "mx_port": "the SMTP port every MX slot listens on",
    "mx": "mx_host:mx_port, as swaks --server takes it",
    "https_port": "the port of the policy hosts (HTTPS)",
    "workdir": "a directory for the sender's own files, kept for the whole run",
}


class PlaceholderError(ValueError):
    """A command names a placeholder the lab does not fill, or is malformed."""


def _one_line(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def fields(template: str) -> list[str]:
    """The placeholder names in ``template``; PlaceholderError for a malformed one."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise PlaceholderError(f"{_one_line(template)}: {exc}") from None
    names = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if spec or conv or not name:
            raise PlaceholderError(f"{{{_one_line(name)}}}: a placeholder is a known name, "
                                   "without format spec or conversion (write {{ and }} for "
                                   "literal braces)")
        names.append(name)
    return names


def check(template: str) -> None:
    """PlaceholderError naming the first placeholder the lab does not fill."""
    for name in fields(template):
        if name not in PLACEHOLDERS:
            raise PlaceholderError(f"unknown placeholder {{{_one_line(name)}}} (known: "
                                   f"{', '.join('{' + k + '}' for k in PLACEHOLDERS)})")


PER_MESSAGE = ("rcpt", "from", "message_file", "message_id")


def run_values(env: SenderEnv) -> dict[str, str]:
    """The placeholders that stay the same for the whole run (not the per-message ones)."""
    mx_hosts = list(env.topology.mx_fronts)
    return {
        "ca_file": str(env.ca_file), "dns_host": env.dns[0], "dns_port": str(env.dns[1]),
        "mx_host": mx_hosts[0] if mx_hosts else "", "mx_hosts": ",".join(mx_hosts),
        "mx_port": str(env.smtp_port),
        "mx": f"{mx_hosts[0]}:{env.smtp_port}" if mx_hosts else "",
        "https_port": str(env.https_port), "workdir": str(env.workdir),
    }


def values(env: SenderEnv, message: OutgoingMessage, message_file: Path) -> dict[str, str]:
    """Every placeholder's value for one probe."""
    out = {"rcpt": message.rcpt_to, "from": message.mail_from,
           "message_file": str(message_file), "message_id": message.message_id,
           **run_values(env)}
    assert out.keys() == PLACEHOLDERS.keys()
    return out


def environment(vals: Mapping[str, str]) -> dict[str, str]:
    return {ENV_PREFIX + k.upper(): v for k, v in vals.items()}


def fill(template: str, vals: Mapping[str, str]) -> str:
    return template.format_map(vals)
