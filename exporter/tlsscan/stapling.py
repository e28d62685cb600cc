"""What an OCSP response stapled in a CertificateStatus message says. Pure: DER in, facts out.

A server "staples" only when it sends a CertificateStatus message holding an OCSP response
that parses and says "successful" (RFC 6066 8); echoing the status_request extension in its
ServerHello is a promise, not a staple (OpenSSL servers echo it and then send nothing when
they have no response to give).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.x509 import ocsp


class StapledStatus(enum.StrEnum):
    """The certificate status the stapled response gives (RFC 6960 CertStatus)."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class StapledResponse:
    status: StapledStatus
    this_update: float                 # Unix seconds
    next_update: float | None          # Unix seconds; None: the responder gave none


def parse_stapled_response(der: bytes) -> StapledResponse | None:
    """The facts of a stapled OCSPResponse; None when it does not parse or is not "successful"
    (a responder error such as tryLater carries no certificate status)."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        status = StapledStatus(response.certificate_status.name.lower())
        next_update = response.next_update_utc
        return StapledResponse(status, response.this_update_utc.timestamp(),
                               next_update.timestamp() if next_update is not None else None)
    except ValueError:
        return None
