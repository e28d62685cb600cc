"""Aggregate reports that others send about our domains: DMARC (RFC 7489 appendix C) and
TLS-RPT (RFC 8460), read from a mailbox or received over HTTPS, counted once.

- common:  why a report is rejected (a closed set), and the rejection itself
- archive: gzip and zip unpacking with size and ratio limits (pure)
- dmarc:   the DMARC aggregate XML, RFC 7489 and DMARCbis (pure)
- tlsrpt:  the TLS-RPT JSON (pure)
- mail:    the report attachments of one mail message (pure)
- ingest:  deduplication, counting and the persistent state file
- imap:    the mailbox poller's IMAP session (I/O)
"""
