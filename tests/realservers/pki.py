"""A throw-away PKI for the real-server tests: root CA -> intermediate CA -> leaves.

Every certificate is generated at test time, written as PEM, and also kept as a
`cryptography` object so that tests can compare the probe's facts (dates, serials,
fingerprints, key sizes, names) with exactly what the servers were given.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GOOD_NAME = "mail.good.test"
OTHER_NAME = "other.test"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """One certificate, its private key and where both were written."""

    cert: x509.Certificate
    key: PrivateKey
    cert_file: Path   # this certificate alone
    key_file: Path


@dataclass(frozen=True)
class ServerCredential:
    """What a server is configured with: a leaf, the chain it sends, the files."""

    leaf: Issued
    intermediate: x509.Certificate | None   # None for a self-signed leaf
    chain_file: Path                        # leaf first, then the intermediate if any

    @property
    def presented_chain(self) -> tuple[x509.Certificate, ...]:
        """The certificates the server sends, leaf first."""
        if self.intermediate is None:
            return (self.leaf.cert,)
        return (self.leaf.cert, self.intermediate)


@dataclass(frozen=True)
class MailPKI:
    root: Issued
    intermediate: Issued
    good_rsa: ServerCredential       # RSA 2048, SAN mail.good.test, via the intermediate
    good_ecdsa: ServerCredential     # ECDSA P-256, SAN mail.good.test, via the intermediate
    expired: ServerCredential        # like good_rsa, but not_after is in the past
    mismatch: ServerCredential       # SAN other.test, via the intermediate
    self_signed: ServerCredential    # SAN mail.good.test, issuer == subject

    @property
    def ca_file(self) -> Path:
        """The trust anchor the tests configure: the root CA alone."""
        return self.root.cert_file


def _now() -> datetime.datetime:
    # X.509 times have one-second resolution: drop the microseconds so that the
    # dates kept here equal the dates read back from the DER.
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailsec-exporter tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> Issued:
    cert_file = directory / f"{stem}.crt"
    key_file = directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    key_file.chmod(0o600)
    return Issued(cert=cert, key=key, cert_file=cert_file, key_file=key_file)


def _builder(subject: x509.Name, issuer: x509.Name, key: PrivateKey,
             not_before: datetime.datetime, not_after: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _ca(directory: Path, stem: str, common_name: str, key: rsa.RSAPrivateKey,
        issuer: Issued | None, path_length: int | None) -> Issued:
    """A CA certificate, self-signed when `issuer` is None."""
    now = _now()
    signer_name = issuer.cert.subject if issuer else _name(common_name)
    signer_key = issuer.key if issuer else key
    builder = (
        _builder(_name(common_name), signer_name, key,
                 now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return _write(directory, stem, builder.sign(signer_key, hashes.SHA256()), key)


def _leaf(directory: Path, stem: str, dns_name: str, key: PrivateKey, issuer: Issued | None,
          not_before: datetime.datetime, not_after: datetime.datetime) -> ServerCredential:
    """A server certificate for `dns_name`; self-signed when `issuer` is None."""
    subject = _name(dns_name)
    builder = (
        _builder(subject, issuer.cert.subject if issuer else subject, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=isinstance(key, rsa.RSAPrivateKey),
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    leaf = _write(directory, stem, builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)
    chain = [leaf.cert] + ([issuer.cert] if issuer else [])
    chain_file = directory / f"{stem}.chain.pem"
    chain_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return ServerCredential(leaf=leaf, intermediate=issuer.cert if issuer else None, chain_file=chain_file)


def generate_pki(directory: Path) -> MailPKI:
    """Generate the whole test PKI into `directory` (which must exist)."""
    root = _ca(directory, "root-ca", "mailsec test root CA", _rsa_key(), issuer=None, path_length=1)
    intermediate = _ca(directory, "intermediate-ca", "mailsec test intermediate CA", _rsa_key(),
                       issuer=root, path_length=0)
    now = _now()
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=90))
    return MailPKI(
        root=root,
        intermediate=intermediate,
        good_rsa=_leaf(directory, "good-rsa", GOOD_NAME, _rsa_key(), intermediate, *valid),
        good_ecdsa=_leaf(directory, "good-ecdsa", GOOD_NAME, ec.generate_private_key(ec.SECP256R1()),
                         intermediate, *valid),
        expired=_leaf(directory, "expired", GOOD_NAME, _rsa_key(), intermediate,
                      now - datetime.timedelta(days=30), now - datetime.timedelta(days=2)),
        mismatch=_leaf(directory, "mismatch", OTHER_NAME, _rsa_key(), intermediate, *valid),
        self_signed=_leaf(directory, "self-signed", GOOD_NAME, _rsa_key(), None, *valid),
    )
