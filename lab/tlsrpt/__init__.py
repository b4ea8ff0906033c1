"""TLS-RPT (RFC 8460), the receiving side: the ``_smtp._tls`` record, report validation,
the HTTPS collector (``lab.tlsrpt.collector``) and the report mailbox on the sink.

Public surface: ``parse_record``/``format_record``/``discover`` (RFC 8460 3),
``validate_report`` (4.3, 4.4), ``examine``/``validate_submission`` (5.1-5.3), ``Finding``.
"""

from lab.events import COLLECTOR
from lab.tlsrpt.findings import Finding
from lab.tlsrpt.names import (
    REPORT_DOMAIN,
    REPORT_HTTPS_HOST,
    REPORT_MAILBOX,
    REPORT_MX,
    REPORT_PATH,
    https_uri,
    mailto_uri,
)
from lab.tlsrpt.record import RecordError, TlsrptRecord, discover, format_record
from lab.tlsrpt.record import parse as parse_record
from lab.tlsrpt.report import RESULT_TYPES, validate_report
from lab.tlsrpt.submission import (
    GZIP_TYPE,
    JSON_TYPE,
    MAX_BODY_BYTES,
    Submission,
    examine,
    validate_submission,
)

REPORT_EVENT = "tlsrpt-report"
"""The one event kind both transports emit (declared in ``lab.events.KINDS``)."""

__all__ = [
    "COLLECTOR", "GZIP_TYPE", "JSON_TYPE", "MAX_BODY_BYTES", "REPORT_DOMAIN", "REPORT_EVENT",
    "REPORT_HTTPS_HOST", "REPORT_MAILBOX", "REPORT_MX", "REPORT_PATH", "RESULT_TYPES",
    "Finding", "RecordError", "Submission", "TlsrptRecord", "discover", "examine",
    "format_record", "https_uri", "mailto_uri", "parse_record", "validate_report",
    "validate_submission",
]
