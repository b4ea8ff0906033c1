"""The one home of the proxy's connection types: what a backend hands the proxy to reach an MX."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
ConnectUpstream = Callable[[], Awaitable[Streams]]
"""Opens a fresh connection to the genuine MX behind one proxy."""
