"""The pure parts of a revocation check: DER in, verdicts out.

* Where to ask: the OCSP responders of the Authority Information Access extension and the
  distribution points of the CRL Distribution Points extension; only http: URLs are used
  (RFC 5280 §4.2.1.13 and RFC 6960 name HTTP; ldap: and https: are not fetched).
* Who issued a certificate: the next presented certificate when it signed it, else any
  other presented one, else a trust anchor (the module's CA file or the system store).
* An OCSP response counts only when it is "successful", answers for this certificate's
  CertID, is signed by the issuer itself or by a responder the issuer certified for
  OCSP signing (id-kp-OCSPSigning, valid now), and is current (RFC 6960 §3.2).
* A CRL counts only when the issuer named in it is the certificate's issuer, its
  signature verifies with the issuer's key (checked once per CRL and issuer:
  `verify_crl`), and it is current (nextUpdate not passed).
  Delta CRLs and indirect CRLs are not followed.

Times may be off by CLOCK_SKEW_SECONDS between the CA and the exporter.
"""

from __future__ import annotations

import datetime
import urllib.parse
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, SignatureAlgorithmOID

from ..certs import issued_by
from .results import RevocationFailure, RevocationMethod, RevocationStatus, Verdict, failed

CLOCK_SKEW_SECONDS = 300.0


# ---- where to ask --------------------------------------------------------------------

def revocation_urls(cert: x509.Certificate) -> dict[RevocationMethod, tuple[str, ...]]:
    """The OCSP responder and CRL distribution point URLs a certificate names, in order;
    a method it names none for is left out."""
    urls: dict[RevocationMethod, tuple[str, ...]] = {}
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp_urls = tuple(d.access_location.value for d in access
                          if d.access_method == AuthorityInformationAccessOID.OCSP
                          and isinstance(d.access_location, x509.UniformResourceIdentifier))
        if ocsp_urls:
            urls[RevocationMethod.OCSP] = ocsp_urls
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crl_urls = tuple(name.value for point in points for name in point.full_name or ()
                         if isinstance(name, x509.UniformResourceIdentifier))
        if crl_urls:
            urls[RevocationMethod.CRL] = crl_urls
    except (x509.ExtensionNotFound, ValueError):
        pass
    return urls


@dataclass(frozen=True)
class HTTPLocation:
    host: str          # a lower-case DNS name, or an IP literal (IPv6 without brackets)
    port: int
    path: str          # with the query; "/" at least


def parse_http_url(url: str) -> HTTPLocation:
    """The parts of an http: URL; ValueError for any other scheme, user info, or no host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http":
        raise ValueError(f"not an http: URL: {url[:200]!r}")
    if not parts.hostname or "@" in parts.netloc or any(c in url for c in " \r\n\t"):
        raise ValueError(f"no usable host in {url[:200]!r}")
    port = parts.port or 80          # ValueError for a port out of range
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HTTPLocation(parts.hostname.lower(), port, path)


def first_http_url(urls: tuple[str, ...]) -> tuple[str, HTTPLocation] | None:
    """The first usable http: URL of `urls`, with its parts."""
    for url in urls:
        try:
            return url, parse_http_url(url)
        except ValueError:
            continue
    return None


# ---- who issued it -------------------------------------------------------------------

def find_issuer(position: int, chain: tuple[x509.Certificate, ...],
                anchors: tuple[x509.Certificate, ...]) -> x509.Certificate | None:
    """The issuer of `chain[position]`: the next presented certificate, any other presented
    one, or a trust anchor; None when none signed it."""
    cert = chain[position]
    candidates = chain[position + 1:] + chain[:position] + anchors
    return next((candidate for candidate in candidates if issued_by(cert, candidate)), None)


def self_issued(cert: x509.Certificate) -> bool:
    """A root (or other self-signed certificate): nothing above it can revoke it."""
    return issued_by(cert, cert)


# ---- OCSP ----------------------------------------------------------------------------

def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """A DER OCSPRequest for `cert`, with a SHA-1 CertID as RFC 5019 (the profile every
    public responder serves) requires; no nonce, so that answers can be cached."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def _timestamp(value: datetime.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def verify_signature(key: object, signature: bytes, data: bytes, hash_algorithm: hashes.HashAlgorithm | None,
                     algorithm_oid: x509.ObjectIdentifier | None = None) -> bool:
    """Whether `signature` over `data` verifies with the public `key`."""
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad = (padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
                   if algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS else padding.PKCS1v15())
            key.verify(signature, data, pad, hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, hash_algorithm)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _responder_named(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """The response's ResponderID names `cert` (by name, or by the SHA-1 of its key)."""
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    # byKey: the SHA-1 of the key's BIT STRING, which is how a key identifier is computed.
    try:
        return response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    except (ValueError, UnsupportedAlgorithm):
        return False


def _delegated_for_ocsp(responder: x509.Certificate, issuer: x509.Certificate, now: float) -> bool:
    """`responder` was certified by `issuer` for OCSP signing, and is valid at `now`."""
    if not issued_by(responder, issuer):
        return False
    if not responder.not_valid_before_utc.timestamp() <= now <= responder.not_valid_after_utc.timestamp():
        return False
    try:
        usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usages


def ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: float) -> x509.Certificate | None:
    """Who signed `response`, when it is someone allowed to: the issuer, or a responder the
    issuer delegated to and whose certificate the response carries."""
    for signer in (issuer, *response.certificates):
        if signer is not issuer and not _delegated_for_ocsp(signer, issuer, now):
            continue
        if _responder_named(response, signer) and verify_signature(
                signer.public_key(), response.signature, response.tbs_response_bytes,
                response.signature_hash_algorithm, response.signature_algorithm_oid):
            return signer
    return None


def _same_cert_id(single: ocsp.OCSPSingleResponse, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if single.serial_number != cert.serial_number:
        return False
    try:
        expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, single.hash_algorithm).build()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return (single.issuer_name_hash, single.issuer_key_hash) == (expected.issuer_name_hash, expected.issuer_key_hash)


def judge_ocsp(der: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: float) -> Verdict:
    """What an OCSP response says about `cert`, when it may be believed (see the module)."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return failed(RevocationFailure.PARSE_ERROR, f"not an OCSP response: {exc}")
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return failed(RevocationFailure.RESPONDER_ERROR, f"responder answered {response.response_status.name}")
    try:
        single = next((s for s in response.responses if _same_cert_id(s, cert, issuer)), None)
        if single is None:
            serials = ", ".join(format(s.serial_number, "x") for s in response.responses)
            return failed(RevocationFailure.WRONG_CERTIFICATE, f"the response is about serial {serials[:200]}, "
                                                               f"not {cert.serial_number:x}")
        if ocsp_signer(response, issuer, now) is None:
            return failed(RevocationFailure.SIGNATURE_INVALID,
                          "not signed by the issuer nor by a responder it certified for OCSP signing")
        return _ocsp_verdict(single, now)
    except ValueError as exc:     # an extension or field cryptography refuses, read late
        return failed(RevocationFailure.PARSE_ERROR, f"malformed OCSP response: {exc}")


def _ocsp_verdict(single: ocsp.OCSPSingleResponse, now: float) -> Verdict:
    this_update, next_update = single.this_update_utc.timestamp(), _timestamp(single.next_update_utc)
    stale = _staleness(this_update, next_update, now)
    if stale is not None:
        return failed(RevocationFailure.STALE, f"OCSP response {stale}")
    if single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
        return Verdict(None, RevocationFailure.OCSP_UNKNOWN, "the responder does not know the certificate",
                       this_update=this_update, next_update=next_update)
    if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        return Verdict(RevocationStatus.REVOKED, None, "revoked", this_update, next_update,
                       _timestamp(single.revocation_time_utc), reason.name if reason is not None else None)
    return Verdict(RevocationStatus.GOOD, None, "good", this_update, next_update)


def _staleness(this_update: float, next_update: float | None, now: float) -> str | None:
    """Why an answer with these times is not current at `now`; None when it is."""
    if this_update > now + CLOCK_SKEW_SECONDS:
        return f"thisUpdate is {this_update - now:.0f}s in the future"
    if next_update is not None and next_update < now - CLOCK_SKEW_SECONDS:
        return f"nextUpdate passed {now - next_update:.0f}s ago"
    return None


# ---- CRL -----------------------------------------------------------------------------

def load_crl(body: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER (RFC 5280 §4.2.1.13) or, as some CAs serve it, PEM; ValueError otherwise."""
    if body.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(body)
    return x509.load_der_x509_crl(body)


@dataclass(frozen=True)
class VerifiedCRL:
    """A CRL whose issuer and signature were checked against one issuer, with its revoked
    serials indexed: judging a certificate by it is a set lookup, however long the CRL."""

    crl: x509.CertificateRevocationList
    this_update: float
    next_update: float | None
    revoked_serials: frozenset[int]


def verify_crl(body: bytes, issuer: x509.Certificate) -> VerifiedCRL | Verdict:
    """The CRL in `body` when `issuer` issued and signed it; the failed verdict otherwise.
    Milliseconds for a CRL of some MiB (the signature, the index): run it off the event loop."""
    try:
        crl = load_crl(body)
        if crl.issuer != issuer.subject:
            return failed(RevocationFailure.WRONG_CERTIFICATE,
                          f"the CRL is issued by {crl.issuer.rfc4514_string()[:200]}, not the certificate's issuer")
        try:
            signed = crl.is_signature_valid(issuer.public_key())
        except (TypeError, UnsupportedAlgorithm):
            signed = False
        if not signed:
            return failed(RevocationFailure.SIGNATURE_INVALID, "the CRL's signature does not verify with the issuer's key")
        return VerifiedCRL(crl, crl.last_update_utc.timestamp(), _timestamp(crl.next_update_utc),
                           frozenset(entry.serial_number for entry in crl))
    except ValueError as exc:
        return failed(RevocationFailure.PARSE_ERROR, f"not a CRL: {exc}")


def judge_crl(crl: VerifiedCRL, cert: x509.Certificate, now: float) -> Verdict:
    """What a verified CRL says about `cert` at `now`: nothing when it is not current."""
    stale = _staleness(crl.this_update, crl.next_update, now)
    if stale is not None:
        return failed(RevocationFailure.STALE, f"CRL {stale}")
    if cert.serial_number not in crl.revoked_serials:
        return Verdict(RevocationStatus.GOOD, None, "good", crl.this_update, crl.next_update)
    entry = crl.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    return Verdict(RevocationStatus.REVOKED, None, "revoked", crl.this_update, crl.next_update,
                   entry.revocation_date_utc.timestamp() if entry else None, _crl_reason(entry) if entry else None)


def _crl_reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except (x509.ExtensionNotFound, ValueError):
        return None
