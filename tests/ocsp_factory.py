"""OCSP responses made with cryptography, signed by a test CA: the staples of the stapling tests
and the answers of the revocation tests."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.realservers.pki import Issued


def ocsp_response(leaf: x509.Certificate, issuer: Issued, *, revoked: bool = False,
                  next_update: datetime.datetime | None = None,
                  this_update: datetime.datetime | None = None) -> bytes:
    """A successful DER OCSPResponse for `leaf`, signed by its issuer."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf, issuer=issuer.cert, algorithm=hashes.SHA256(),
        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
        this_update=this_update or now - datetime.timedelta(minutes=5), next_update=next_update,
        revocation_time=now - datetime.timedelta(hours=1) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def unsuccessful_response() -> bytes:
    """An OCSPResponse with status tryLater: no certificate status in it."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
        serialization.Encoding.DER)
