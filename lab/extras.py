"""Install hints for the optional extras, right for how this copy of the lab is installed."""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def checkout_root(start: Path = _CHECKOUT) -> Path | None:
    """The source checkout this package runs from (an editable install), or None."""
    pyproject = start / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return start if 'name = "mtasts-lab"' in text else None


def install_hint(extra: str, start: Path = _CHECKOUT, cwd: Path | None = None) -> str:
    """``pip install -e '.[extra]'`` from a checkout, ``pip install 'mtasts-lab[extra]'``
    from an installed package."""
    root = checkout_root(start)
    if root is None:
        return f"pip install 'mtasts-lab[{extra}]'"
    here = Path(cwd or os.getcwd()).resolve()
    where = "." if here == root else str(root)
    return f"pip install -e '{where}[{extra}]'"
