"""Revocation of the certificates a mail endpoint presents: OCSP (RFC 6960) and CRLs
(RFC 5280), fetched over plain HTTP with the exporter's own client and resolver, each
answer's signature verified against the certificate's issuer.

`verify` holds the pure parts (the URLs a certificate names, its issuer, the OCSP request,
judging an OCSP response or a CRL); `check` fetches; `results` are the frozen result types.
When and how often to ask, and the cache of answers, are the service layer's
(`service/revocation.py`).
"""
