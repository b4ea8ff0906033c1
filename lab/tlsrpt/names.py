"""Where the lab receives TLS reports: one report domain, its MX, its HTTPS host.

Reserved ``.test`` names only. A world that publishes TLS-RPT (``world.Tlsrpt``) gets the
report domain too: its MX takes the MX slot after the recipient domains' (so a proxy, and the
attacks aimed at it, stand on the path to the report mailbox), and the HTTPS host is served
by the policy host's address, chosen by SNI.
"""

from __future__ import annotations

REPORT_DOMAIN = "reports.test"
REPORT_MX = "mx.reports.test"
REPORT_HTTPS_HOST = "tlsrpt.reports.test"
REPORT_PATH = "/v1/tlsrpt"
REPORT_MAILBOX = f"tlsrpt@{REPORT_DOMAIN}"


def https_uri(https_port: int = 443) -> str:
    """The collector's URI; names the port when it is not 443 (the loopback backend)."""
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{REPORT_HTTPS_HOST}{port}{REPORT_PATH}"


def mailto_uri() -> str:
    return f"mailto:{REPORT_MAILBOX}"
