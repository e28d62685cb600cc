"""A throw-away CA for the revocation tests: leaves that name an OCSP responder and a CRL
distribution point, a delegated OCSP responder, CRLs and OCSP responses made to order,
and the files `openssl ocsp` and nginx serve them from."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tests.hostile import Issued

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailsec revocation tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "revocation test CA", parent: Issued | None = None,
            ocsp_url: str | None = None, crl_url: str | None = None) -> Issued:
    """A CA: self-signed, or an intermediate under `parent` (naming `parent`'s URLs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(common_name))
               .issuer_name(parent.cert.subject if parent else _name(common_name)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=2)).not_valid_after(NOW + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True))
    builder = _with_urls(builder, ocsp_url, crl_url)
    return Issued(builder.sign(parent.key if parent else key, hashes.SHA256()), key)


def _with_urls(builder: x509.CertificateBuilder, ocsp_url: str | None, crl_url: str | None) -> x509.CertificateBuilder:
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    if crl_url:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    return builder


def make_leaf(ca: Issued, name: str, *, ocsp_url: str | None = None, crl_url: str | None = None,
              usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,)) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False))
    return Issued(_with_urls(builder, ocsp_url, crl_url).sign(ca.key, hashes.SHA256()), key)


def make_responder(ca: Issued, ocsp_signing: bool = True) -> Issued:
    """A delegated OCSP responder of `ca` (with id-kp-OCSPSigning unless told otherwise)."""
    usage = ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.SERVER_AUTH
    return make_leaf(ca, "ocsp responder", usages=(usage,))


def make_crl(ca: Issued, revoked: tuple[x509.Certificate, ...] = (), *, signer: Issued | None = None,
             last_update: datetime.datetime | None = None, next_update: datetime.timedelta = datetime.timedelta(days=7),
             ) -> x509.CertificateRevocationList:
    """A CRL of `ca` listing `revoked` (reason keyCompromise), signed by `signer` (default: `ca`)."""
    last_update = last_update or NOW - datetime.timedelta(hours=1)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
               .last_update(last_update).next_update(last_update + next_update))
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
            .revocation_date(NOW - datetime.timedelta(hours=2))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build())
    return builder.sign((signer or ca).key, hashes.SHA256())


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def make_ocsp(cert: x509.Certificate, ca: Issued, status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD, *,
              signer: Issued | None = None, include_signer: bool = False, about: x509.Certificate | None = None,
              this_update: datetime.datetime | None = None, next_update: datetime.timedelta | None = datetime.timedelta(days=4),
              ) -> bytes:
    """A DER OCSP response about `about` (default `cert`), signed by `signer` (default `ca`)."""
    this_update = this_update or NOW - datetime.timedelta(minutes=10)
    revoked = status is ocsp.OCSPCertStatus.REVOKED
    signer = signer or ca
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=about or cert, issuer=ca.cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=this_update + next_update if next_update else None,
        revocation_time=NOW - datetime.timedelta(hours=2) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if include_signer:
        builder = builder.certificates([signer.cert])
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def write_pem(path: Path, *items: Issued | x509.Certificate) -> Path:
    path.write_bytes(b"".join((i.cert if isinstance(i, Issued) else i).public_bytes(serialization.Encoding.PEM)
                              for i in items))
    return path


def write_key(path: Path, issued: Issued) -> Path:
    path.write_bytes(issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def openssl_index_line(cert: x509.Certificate, revoked: bool) -> str:
    """One line of an `openssl ca` index.txt, which `openssl ocsp -index` answers from."""
    expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    serial = format(cert.serial_number, "X")
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    subject = "".join(f"/{a.oid._name}={a.value}" for a in cert.subject)
    if revoked:
        when = (NOW - datetime.timedelta(hours=2)).strftime("%y%m%d%H%M%SZ")
        return f"R\t{expiry}\t{when},keyCompromise\t{serial}\tunknown\t{subject}\n"
    return f"V\t{expiry}\t\t{serial}\tunknown\t{subject}\n"
