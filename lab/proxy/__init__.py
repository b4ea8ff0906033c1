"""The MITM proxy: a thin asyncio shell around the sans-IO relay core (``lab.smtp.relay``)."""

from lab.proxy.server import SmtpProxy

__all__ = ["SmtpProxy"]
