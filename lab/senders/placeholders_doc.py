"""The placeholder table of docs/BRING-YOUR-OWN-MTA.md, generated from
``lab.senders.placeholders`` (``python -m lab.senders.placeholders_doc`` prints it; a test
checks the document holds exactly this text)."""

from __future__ import annotations

from lab.senders.placeholders import ENV_PREFIX, PLACEHOLDERS


def table() -> str:
    rows = ["| placeholder | environment variable | value |", "|---|---|---|"]
    rows += [f"| `{{{name}}}` | `{ENV_PREFIX}{name.upper()}` | {text} |"
             for name, text in PLACEHOLDERS.items()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
