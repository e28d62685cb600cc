"""The pure parts of the revocation checks (revocation/verify.py): the URLs a certificate
names, its issuer, and the verdict of an OCSP response or a CRL, whose signatures,
subjects and times must all hold before it is believed."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from exporter.revocation.results import RevocationFailure, RevocationMethod, RevocationStatus, Verdict
from exporter.revocation.verify import (
    HTTPLocation,
    find_issuer,
    first_http_url,
    judge_crl,
    judge_ocsp,
    load_crl,
    verify_crl,
    ocsp_request,
    parse_http_url,
    revocation_urls,
    self_issued,
)
from tests.revocation_pki import NOW, crl_der, make_ca, make_crl, make_leaf, make_ocsp, make_responder

CA = make_ca()
OTHER_CA = make_ca("another CA")
LEAF = make_leaf(CA, "mail.good.test", ocsp_url="http://ocsp.ca.test/", crl_url="http://crl.ca.test/ca.crl")
OTHER_LEAF = make_leaf(CA, "other.test")
RESPONDER = make_responder(CA)
NOT_A_RESPONDER = make_responder(CA, ocsp_signing=False)
FOREIGN_RESPONDER = make_responder(OTHER_CA)
T = NOW.timestamp()


def test_urls_a_certificate_names():
    assert revocation_urls(LEAF.cert) == {RevocationMethod.OCSP: ("http://ocsp.ca.test/",),
                                          RevocationMethod.CRL: ("http://crl.ca.test/ca.crl",)}
    assert revocation_urls(OTHER_LEAF.cert) == {}
    assert revocation_urls(make_leaf(CA, "x.test", crl_url="ldap://ca.test/cn=crl").cert) == {
        RevocationMethod.CRL: ("ldap://ca.test/cn=crl",)}


@pytest.mark.parametrize("url, location", [
    ("http://ocsp.ca.test", HTTPLocation("ocsp.ca.test", 80, "/")),
    ("http://OCSP.CA.test:8080/x/y?a=b", HTTPLocation("ocsp.ca.test", 8080, "/x/y?a=b")),
    ("HTTP://127.0.0.1:81/ca.crl", HTTPLocation("127.0.0.1", 81, "/ca.crl")),
    ("http://[2001:db8::1]/", HTTPLocation("2001:db8::1", 80, "/")),
])
def test_http_url(url, location):
    assert parse_http_url(url) == location


@pytest.mark.parametrize("url", [
    "https://ocsp.ca.test/", "ldap://ca.test/cn=x", "http:///path", "http://user@ca.test/", "http://ca.test:99999/",
    "http://ca.test/a b", "http://ca.test/\r\nX-Injected: 1", "ocsp.ca.test", "",
])
def test_not_a_usable_http_url(url):
    with pytest.raises(ValueError):
        parse_http_url(url)


def test_the_first_usable_url_is_taken():
    assert first_http_url(("ldap://x/", "http://b.test/", "http://c.test/")) == ("http://b.test/", HTTPLocation("b.test", 80, "/"))
    assert first_http_url(("ldap://x/",)) is None


def test_issuer_from_the_chain_or_the_anchors():
    intermediate = make_ca("intermediate", parent=CA)
    leaf = make_leaf(intermediate, "deep.test")
    assert find_issuer(0, (leaf.cert, intermediate.cert), ()) == intermediate.cert
    assert find_issuer(1, (leaf.cert, intermediate.cert), (CA.cert,)) == CA.cert
    assert find_issuer(1, (leaf.cert, intermediate.cert), ()) is None
    assert find_issuer(0, (leaf.cert, CA.cert, intermediate.cert), ()) == intermediate.cert   # out of order
    assert find_issuer(0, (LEAF.cert,), (OTHER_CA.cert, CA.cert)) == CA.cert
    # Same name, other key: not the issuer.
    impostor = make_ca("revocation test CA")
    assert impostor.cert.subject == CA.cert.subject
    assert find_issuer(0, (LEAF.cert, impostor.cert), ()) is None
    assert self_issued(CA.cert) and not self_issued(LEAF.cert)


def test_the_request_names_the_certificate():
    request = ocsp.load_der_ocsp_request(ocsp_request(LEAF.cert, CA.cert))
    assert request.serial_number == LEAF.cert.serial_number and request.hash_algorithm.name == "sha1"
    assert list(request.extensions) == []      # no nonce: answers can be cached


GOOD, REVOKED, UNKNOWN = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN
F = RevocationFailure

OCSP_CASES = [
    ("good", make_ocsp(LEAF.cert, CA), RevocationStatus.GOOD, None),
    ("revoked", make_ocsp(LEAF.cert, CA, REVOKED), RevocationStatus.REVOKED, None),
    ("delegated responder", make_ocsp(LEAF.cert, CA, signer=RESPONDER, include_signer=True), RevocationStatus.GOOD, None),
    ("delegated, revoked", make_ocsp(LEAF.cert, CA, REVOKED, signer=RESPONDER, include_signer=True),
     RevocationStatus.REVOKED, None),
    ("responder does not know it", make_ocsp(LEAF.cert, CA, UNKNOWN), None, F.OCSP_UNKNOWN),
    ("tryLater", ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
        serialization.Encoding.DER), None, F.RESPONDER_ERROR),
    ("garbage", b"\x30\x03\x02\x01\x00garbage", None, F.PARSE_ERROR),
    ("empty", b"", None, F.PARSE_ERROR),
    ("about another serial", make_ocsp(LEAF.cert, CA, about=OTHER_LEAF.cert), None, F.WRONG_CERTIFICATE),
    ("signed by another CA's key", make_ocsp(LEAF.cert, CA, signer=OTHER_CA), None, F.SIGNATURE_INVALID),
    ("responder without OCSPSigning", make_ocsp(LEAF.cert, CA, signer=NOT_A_RESPONDER, include_signer=True),
     None, F.SIGNATURE_INVALID),
    ("responder of another CA", make_ocsp(LEAF.cert, CA, signer=FOREIGN_RESPONDER, include_signer=True),
     None, F.SIGNATURE_INVALID),
    ("responder certificate not carried", make_ocsp(LEAF.cert, CA, signer=RESPONDER), None, F.SIGNATURE_INVALID),
    ("nextUpdate passed", make_ocsp(LEAF.cert, CA, this_update=NOW - datetime.timedelta(days=5),
                                    next_update=datetime.timedelta(days=1)), None, F.STALE),
    ("thisUpdate in the future", make_ocsp(LEAF.cert, CA, this_update=NOW + datetime.timedelta(hours=1)), None, F.STALE),
    ("no nextUpdate", make_ocsp(LEAF.cert, CA, next_update=None), RevocationStatus.GOOD, None),
]


@pytest.mark.parametrize("what, der, status, failure", OCSP_CASES, ids=[case[0] for case in OCSP_CASES])
def test_ocsp_verdict(what, der, status, failure):
    verdict = judge_ocsp(der, LEAF.cert, CA.cert, T)
    assert (verdict.status, verdict.failure) == (status, failure), verdict.detail
    if status is RevocationStatus.REVOKED:
        assert verdict.revocation_reason == "key_compromise" and verdict.revoked_at < T


def test_ocsp_times_are_kept():
    verdict = judge_ocsp(make_ocsp(LEAF.cert, CA), LEAF.cert, CA.cert, T)
    assert verdict.this_update == T - 600 and verdict.next_update == T - 600 + 4 * 86400


def test_a_tampered_response_does_not_verify():
    der = bytearray(make_ocsp(LEAF.cert, CA))
    der[-5] ^= 0xFF                  # inside the signature
    assert judge_ocsp(bytes(der), LEAF.cert, CA.cert, T).failure in (F.SIGNATURE_INVALID, F.PARSE_ERROR)


CRL_CASES = [
    ("not listed", make_crl(CA, (OTHER_LEAF.cert,)), RevocationStatus.GOOD, None),
    ("listed", make_crl(CA, (OTHER_LEAF.cert, LEAF.cert)), RevocationStatus.REVOKED, None),
    ("of another issuer", make_crl(OTHER_CA, (LEAF.cert,)), None, F.WRONG_CERTIFICATE),
    ("our issuer's name, another key", make_crl(CA, (LEAF.cert,), signer=OTHER_CA), None, F.SIGNATURE_INVALID),
    ("nextUpdate passed", make_crl(CA, last_update=NOW - datetime.timedelta(days=10)), None, F.STALE),
    ("lastUpdate in the future", make_crl(CA, last_update=NOW + datetime.timedelta(hours=2)), None, F.STALE),
]


@pytest.mark.parametrize("what, crl, status, failure", CRL_CASES, ids=[case[0] for case in CRL_CASES])
def test_crl_verdict(what, crl, status, failure):
    verified = verify_crl(crl_der(crl), CA.cert)
    verdict = verified if isinstance(verified, Verdict) else judge_crl(verified, LEAF.cert, T)
    assert (verdict.status, verdict.failure) == (status, failure), verdict.detail
    if status is RevocationStatus.REVOKED:
        assert verdict.revocation_reason == "key_compromise"


def test_crl_in_der_or_pem():
    crl = make_crl(CA, (LEAF.cert,))
    assert load_crl(crl_der(crl)) == crl
    assert load_crl(crl.public_bytes(serialization.Encoding.PEM)) == crl
    for garbage in (b"", b"\x30\x82\xff\xff", b"-----BEGIN X509 CRL-----\nnope\n-----END X509 CRL-----\n"):
        with pytest.raises(ValueError):
            load_crl(garbage)
        assert verify_crl(garbage, CA.cert).failure is F.PARSE_ERROR
