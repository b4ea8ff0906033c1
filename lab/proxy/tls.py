"""TLS contexts for the proxy's client leg: a fresh context per connection, to see the SNI."""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass

from lab.pki import CertKind, LabPKI

_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


@dataclass
class SniRecorder:
    """Filled in by the context's ``sni_callback`` during the sender's ClientHello."""

    seen: bool = False
    server_name: str | None = None

    def __call__(self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                 ctx: ssl.SSLContext) -> None:
        self.seen, self.server_name = True, server_name


def forged_context(pki: LabPKI, name: str, kind: CertKind,
                   tls_max: str | None = None) -> tuple[ssl.SSLContext, SniRecorder]:
    """Like ``pki.server_context`` but never shared: the SNI callback is per connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls_max is not None:
        # OpenSSL 3 refuses TLS 1.0/1.1 above security level 0; Python warns when a context
        # allows them. Both are the point of a legacy-only MX, so allow and silence.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = _VERSIONS[tls_max]
    cert, key = pki.write_leaf(name, kind)
    ctx.load_cert_chain(cert, key)
    recorder = SniRecorder()
    ctx.sni_callback = recorder
    return ctx, recorder
