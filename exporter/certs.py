"""Certificate facts, chain validation and host-name matching: pure functions.

The probe collects the chain a server presents without trusting it (the handshake uses
CERT_NONE so that facts are gathered even for broken chains) and judges it here:
`verify_chain` runs OpenSSL's own verifier (the one Postfix and `openssl s_client` use),
`hostname_matches` applies RFC 6125 / RFC 9525 rules.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from .results import CertificateInfo


def certificate_info(der: bytes) -> CertificateInfo:
    """The facts of one DER certificate. Raises ValueError if it cannot be parsed."""
    cert = x509.load_der_x509_certificate(der)
    key_type, key_bits = _key_type_and_bits(cert)
    return CertificateInfo(
        der=der,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        sans=tuple(_san_dns_names(cert)) + tuple(str(ip) for ip in _san_ip_addresses(cert)),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=_signature_hash(cert),
        self_signed=issued_by(cert, cert),
    )


def _key_type_and_bits(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", 0   # e.g. GOST keys: OpenSSL may speak them, cryptography cannot parse them
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    return "unknown", 0


def _signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


def issued_by(cert: x509.Certificate, candidate: x509.Certificate) -> bool:
    """`candidate` is the issuer of `cert`: names match and its key verifies the signature."""
    if cert.issuer != candidate.subject:
        return False
    try:
        cert.verify_directly_issued_by(candidate)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _subject_alt_names(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _san_dns_names(cert: x509.Certificate) -> list[str]:
    sans = _subject_alt_names(cert)
    return sans.get_values_for_type(x509.DNSName) if sans is not None else []


def _san_ip_addresses(cert: x509.Certificate) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    sans = _subject_alt_names(cert)
    return sans.get_values_for_type(x509.IPAddress) if sans is not None else []


def verify_chain(chain_der: list[bytes], ca_file: str | None, at: float) -> str | None:
    """Verify a presented chain (leaf first) as a TLS client would, at Unix time `at`.

    Returns None when the chain is valid, otherwise OpenSSL's verify error string
    ("certificate has expired", "self-signed certificate", ...). Trust anchors come from
    `ca_file` when given, else from the system store. The purpose is "SSL server", as in
    libssl's client-side verification, so a leaf whose extended key usage excludes
    serverAuth is refused like Postfix would refuse it.
    """
    if not chain_der:
        return "no certificate presented"
    # pyOpenSSL only when a chain is verified: the deep scan (and a `check` whose MX hosts
    # do not answer) never does. A store is not reused: its verification time, once set,
    # cannot be changed through pyOpenSSL.
    from OpenSSL import _util as openssl_binding
    from OpenSSL import crypto

    store = crypto.X509Store()
    if ca_file is not None:
        store.load_locations(ca_file)
    else:
        paths = ssl.get_default_verify_paths()
        store.load_locations(paths.cafile, paths.capath)
    # pyOpenSSL has no public purpose setter; libssl sets this purpose for TLS clients.
    openssl_binding.lib.X509_STORE_set_purpose(store._store, openssl_binding.lib.X509_PURPOSE_SSL_SERVER)
    store.set_time(datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc).replace(tzinfo=None))
    try:
        leaf, *intermediates = [crypto.load_certificate(crypto.FILETYPE_ASN1, der) for der in chain_der]
    except crypto.Error as exc:
        return f"unparsable certificate: {exc}"
    try:
        crypto.X509StoreContext(store, leaf, chain=intermediates).verify_certificate()
    except crypto.X509StoreContextError as exc:
        return str(exc)
    return None


def hostname_matches(cert: CertificateInfo | x509.Certificate, name: str) -> bool:
    """Does the certificate identify `name` (RFC 6125 / RFC 9525)?

    A DNS name is matched against subjectAltName dNSName entries only (no fallback to the
    subject CN), case-insensitively and ignoring a trailing dot; a wildcard is allowed only
    as the whole left-most label and stands for exactly one label. An IP address is matched
    against iPAddress entries only.
    """
    if isinstance(cert, CertificateInfo):
        cert = x509.load_der_x509_certificate(cert.der)
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return any(dns_name_matches(pattern, name) for pattern in _san_dns_names(cert))
    return ip in _san_ip_addresses(cert)


def dns_name_matches(pattern: str, name: str) -> bool:
    """One presented dNSName `pattern` against the reference DNS `name`."""
    pattern_labels = pattern.lower().rstrip(".").split(".")
    name_labels = name.lower().rstrip(".").split(".")
    if "" in pattern_labels or "" in name_labels or len(pattern_labels) != len(name_labels):
        return False
    first, *rest = pattern_labels
    if any("*" in label for label in rest):
        return False
    if first == "*":
        # "*.com" would stand for a whole top-level domain: refused, as OpenSSL does.
        return len(rest) >= 2 and rest == name_labels[1:]
    if "*" in first:
        return False   # partial wildcards ("f*.example.com") are forbidden by RFC 9525
    return pattern_labels == name_labels
