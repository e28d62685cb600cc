"""Check the presented chains: which certificates and methods, the fetches, the verdicts.

`check_chains` asks an `Answers` for each answer it needs: `Fetcher` fetches every time
(the one-shot commands); the service puts its cache in front of one (`service/revocation.py`).
A fetch never raises: each failure is a verdict with its closed-set reason.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import time
import warnings
from typing import Mapping, Protocol

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from ..dnsclient import Resolver
from ..httpclient import AddressAllowed, AnswerRules, HTTPFailure, HTTPFetchError, HTTPRequest, fetch
from ..results import HostResult
from .results import CertificateCheck, RevocationFailure, RevocationMethod, Verdict, failed
from .verify import (
    HTTPLocation,
    find_issuer,
    first_http_url,
    judge_crl,
    judge_ocsp,
    ocsp_request,
    revocation_urls,
    self_issued,
    VerifiedCRL,
    verify_crl,
)

log = logging.getLogger(__name__)

# Real chains are a leaf and one to three intermediates; a server presenting fifty
# certificates, each naming its own responder, must not cost fifty fetches per probe.
MAX_CHAIN_POSITIONS = 4

USER_AGENT = "mailsec-exporter (revocation check)"
FETCH_TIMEOUT_SECONDS = 10.0            # one OCSP or CRL fetch, connection included
OCSP_SIZE_LIMIT = 64 * 1024             # a response with a delegated responder's chain is a few KiB
CRL_SIZE_LIMIT = 16 * 1024 * 1024       # the largest public CRLs are a few MiB
OCSP_RULES = AnswerRules(size_limit=OCSP_SIZE_LIMIT)    # any media type: the DER decides
CRL_RULES = AnswerRules(size_limit=CRL_SIZE_LIMIT)

_FAILURE_OF_HTTP = {
    HTTPFailure.NO_ADDRESS: RevocationFailure.DNS_ERROR,
    HTTPFailure.DNS_ERROR: RevocationFailure.DNS_ERROR,
    HTTPFailure.ADDRESS_NOT_ALLOWED: RevocationFailure.ADDRESS_NOT_ALLOWED,
    HTTPFailure.TIMEOUT: RevocationFailure.TIMEOUT,
    HTTPFailure.TLS_ERROR: RevocationFailure.HTTP_ERROR,
    HTTPFailure.MALFORMED: RevocationFailure.HTTP_ERROR,
    HTTPFailure.REDIRECT: RevocationFailure.HTTP_STATUS,
    HTTPFailure.STATUS: RevocationFailure.HTTP_STATUS,
    HTTPFailure.CONTENT_TYPE: RevocationFailure.HTTP_ERROR,
    HTTPFailure.TOO_LARGE: RevocationFailure.TOO_LARGE,
}



class Answers(Protocol):
    """Where `check_chains` gets its answers: each returns the answer (or the verdict of a
    failed fetch) and when it was fetched."""

    async def ocsp(self, url: str, location: HTTPLocation, cert: x509.Certificate,
                   issuer: x509.Certificate) -> tuple[Verdict, float]: ...

    async def crl(self, url: str, location: HTTPLocation,
                  issuer: x509.Certificate) -> tuple[VerifiedCRL | Verdict, float]: ...


class Fetcher:
    """Fetches each answer it is asked for, through `dns`, within `timeout` seconds each,
    from addresses `address_allowed` lets through (None: any)."""

    def __init__(self, dns: Resolver, *, timeout: float, address_allowed: AddressAllowed | None = None):
        self.dns, self.timeout, self.address_allowed = dns, timeout, address_allowed

    async def _get(self, request: HTTPRequest, rules: AnswerRules) -> bytes:
        return await fetch(request, rules, self.dns, timeout=self.timeout, address_allowed=self.address_allowed)

    async def ocsp(self, url: str, location: HTTPLocation, cert: x509.Certificate,
                   issuer: x509.Certificate) -> tuple[Verdict, float]:
        """POST the request (RFC 6960 §A.1) and judge the answer."""
        request = HTTPRequest(location.host, location.port, location.path, USER_AGENT, method="POST",
                              body=ocsp_request(cert, issuer), body_type="application/ocsp-request")
        try:
            body = await self._get(request, OCSP_RULES)
        except HTTPFetchError as exc:
            return failed(_FAILURE_OF_HTTP[exc.failure], exc.detail), time.time()
        return judge_ocsp(body, cert, issuer, time.time()), time.time()

    async def crl(self, url: str, location: HTTPLocation,
                  issuer: x509.Certificate) -> tuple[VerifiedCRL | Verdict, float]:
        """GET the CRL and verify it against `issuer` (each certificate is judged by it in
        `check_chains`). Parsing, verifying and indexing a CRL of some MiB takes tens of
        milliseconds: off the event loop."""
        request = HTTPRequest(location.host, location.port, location.path, USER_AGENT)
        try:
            body = await self._get(request, CRL_RULES)
        except HTTPFetchError as exc:
            return failed(_FAILURE_OF_HTTP[exc.failure], exc.detail), time.time()
        return await asyncio.to_thread(verify_crl, body, issuer), time.time()


# ---- trust anchors -------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _anchors_in(path: str, file_state: tuple[int, int]) -> tuple[x509.Certificate, ...]:
    with open(path, "rb") as pem:
        data = pem.read()
    try:
        with warnings.catch_warnings():     # system stores hold old roots with a serial of 0
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        return ()


def trust_anchors(ca_file: str | None) -> tuple[x509.Certificate, ...]:
    """The certificates of `ca_file`, or of the system store's bundle (None); read once per
    file version. A missing or unreadable file has none."""
    path = ca_file or ssl.get_default_verify_paths().cafile
    try:
        state = os.stat(path) if path else None
    except OSError:
        return ()
    return _anchors_in(path, (state.st_mtime_ns, state.st_size)) if state else ()


# ---- the chains ----------------------------------------------------------------------

def presented_chains(result: HostResult) -> dict[str, tuple[bytes, ...]]:
    """The chain each address of a probed host presented in its default handshake (leaf first)."""
    return {r.address: tuple(cert.der for cert in r.tls.chain)
            for r in result.addresses if r.address is not None and r.tls is not None and r.tls.chain}


async def check_presented(result: HostResult, ca_file: str | None, dns: Resolver) -> tuple[CertificateCheck, ...]:
    """The revocation checks of the chains one probe of a host saw (the one-shot commands);
    `ca_file`: the module's CA bundle, where an issuer the server did not send may be."""
    return await check_chains(presented_chains(result), trust_anchors(ca_file),
                              Fetcher(dns, timeout=FETCH_TIMEOUT_SECONDS))


def _parsed(chain: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """The presented chain, up to the first certificate that does not parse."""
    certs = []
    for der in chain:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            break
    return tuple(certs)


async def check_chains(chains: Mapping[str, tuple[bytes, ...]], anchors: tuple[x509.Certificate, ...],
                       answers: Answers) -> tuple[CertificateCheck, ...]:
    """Every revocation check the presented chains call for (by address, leaf first): each
    certificate that names an OCSP responder or a CRL distribution point, by each method
    it names, except self-signed ones. All run at once."""
    jobs = []
    for address in sorted(chains):
        chain = _parsed(chains[address])
        for position, cert in enumerate(chain[:MAX_CHAIN_POSITIONS]):
            if self_issued(cert):
                continue
            issuer = find_issuer(position, chain, anchors)
            for method, urls in sorted(revocation_urls(cert).items()):
                jobs.append(_check_one(address, position, cert, issuer, method, urls, answers))
    return tuple(await asyncio.gather(*jobs))


async def _check_one(address: str, position: int, cert: x509.Certificate, issuer: x509.Certificate | None,
                     method: RevocationMethod, urls: tuple[str, ...], answers: Answers) -> CertificateCheck:
    found = first_http_url(urls)
    url = found[0] if found else ""

    def outcome(verdict: Verdict, fetched_at: float) -> CertificateCheck:
        return CertificateCheck(address, position, method, url, cert.subject.rfc4514_string(),
                                format(cert.serial_number, "x"), verdict, fetched_at)

    if found is None:
        return outcome(failed(RevocationFailure.UNSUPPORTED_URL, f"no http: URL among {', '.join(urls)[:300]}"),
                       time.time())
    if issuer is None:
        return outcome(failed(RevocationFailure.NO_ISSUER, "the issuer is neither presented nor a trust anchor"),
                       time.time())
    try:
        if method is RevocationMethod.OCSP:
            return outcome(*await answers.ocsp(url, found[1], cert, issuer))
        answer, fetched_at = await answers.crl(url, found[1], issuer)
    except Exception as exc:   # a bug of ours: this check fails, the others go on
        log.exception("revocation check of %s failed unexpectedly", url)
        return outcome(failed(RevocationFailure.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"), time.time())
    if isinstance(answer, Verdict):
        return outcome(answer, fetched_at)
    return outcome(judge_crl(answer, cert, time.time()), fetched_at)
