"""Mail-domain DNS checks: MX, SPF, DMARC, DKIM, MTA-STS, TLS-RPT, BIMI, DNSSEC, PTR, DANE.

`check.check_domain` runs them all for one configured domain and returns a `DomainResult`.
Each check module has one `check_*` coroutine and the frozen result type it returns.
"""
