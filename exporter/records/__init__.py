"""Pure parsers for mail-authentication DNS records and policies.

One module per record kind (spf, dmarc, dkim, mtasts, tlsrpt, bimi, tlsa). Each turns
text into a frozen dataclass or raises its own subclass of `RecordError`; none does I/O.
"""

from exporter.records.common import RecordError, RecordWarning

__all__ = ["RecordError", "RecordWarning"]
