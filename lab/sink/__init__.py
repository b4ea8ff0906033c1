"""The MX sink: the genuine receiving MX behind the proxy."""

from lab.sink.server import Sink

__all__ = ["Sink"]
