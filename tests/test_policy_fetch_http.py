"""The HTTP/1.1 parsing of the exporter's own client (httpclient.py), shared by the MTA-STS
policy fetch (domains/policy_fetch.py) and the revocation checks, without a
network: status lines, header lines, chunk sizes, body framing, the RFC 8461 rules on the
head, and the TLS context built once per CA setting."""

from __future__ import annotations

import os
import ssl

import pytest

from exporter.domains.policy_fetch import POLICY_RULES, POLICY_SIZE_LIMIT, tls_context
from exporter.httpclient import (
    AnswerRefused,
    AnswerRules,
    BodyFraming,
    HTTPFailure,
    HTTPRequest,
    ResponseHead,
    body_framing,
    check_head,
    parse_chunk_size,
    parse_field_line,
    parse_status_line,
)
from tests.hostile import issue, write_pem


@pytest.mark.parametrize("line, status", [
    (b"HTTP/1.1 200 OK", 200),
    (b"HTTP/1.0 404 Not Found", 404),
    (b"HTTP/1.1 301", 301),                 # the reason phrase may be absent
    (b"HTTP/1.1 200 ", 200),
    (b"HTTP/1.1 103 Early Hints", 103),
])
def test_status_line(line, status):
    assert parse_status_line(line) == status


@pytest.mark.parametrize("line", [
    b"", b"HTTP/2 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 099 x", b"http/1.1 200 OK",
    b"ICY 200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200\rOK",
])
def test_not_a_status_line(line):
    with pytest.raises(AnswerRefused) as refused:
        parse_status_line(line)
    assert refused.value.failure is HTTPFailure.MALFORMED


@pytest.mark.parametrize("line, field", [
    (b"Content-Type: text/plain", ("content-type", "text/plain")),
    (b"content-length:12", ("content-length", "12")),
    (b"X-Empty:", ("x-empty", "")),
    (b"Location:  https://a.test/x \t", ("location", "https://a.test/x")),
    (b"X-Latin: caf\xe9", ("x-latin", "caf\u00e9")),     # obsolete text: Latin-1, never a decoding error
])
def test_field_line(line, field):
    assert parse_field_line(line) == field


@pytest.mark.parametrize("line", [
    b"no colon here", b" folded: continuation", b"\tX: y", b"Name : value", b": no name", b"Bad Name: x",
    b"N\xe9: x",
])
def test_malformed_field_line(line):
    with pytest.raises(AnswerRefused) as refused:
        parse_field_line(line)
    assert refused.value.failure is HTTPFailure.MALFORMED


@pytest.mark.parametrize("line, size", [
    (b"0", 0), (b"1a", 26), (b"FF", 255), (b"10;name=value", 16), (b"10 ;ext", 16),
    (b"ffffffffffffffffffff", 0xffffffffffffffffffff),    # parsed; the caller finds it too large
])
def test_chunk_size(line, size):
    assert parse_chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b"-1", b"0x10", b"g", b" 10", b"10\x00", b"1 0"])
def test_malformed_chunk_size(line):
    with pytest.raises(AnswerRefused) as refused:
        parse_chunk_size(line)
    assert refused.value.failure is HTTPFailure.MALFORMED


def head(status: int = 200, *fields: tuple[str, str]) -> ResponseHead:
    return ResponseHead(status, tuple((name.lower(), value) for name, value in fields))


@pytest.mark.parametrize("fields, framing", [
    ((), BodyFraming()),
    ((("Content-Length", "120"),), BodyFraming(length=120)),
    ((("Content-Length", "120"), ("Content-Length", "120")), BodyFraming(length=120)),   # repeated, equal
    ((("Transfer-Encoding", "chunked"),), BodyFraming(chunked=True)),
    ((("Transfer-Encoding", " Chunked "),), BodyFraming(chunked=True)),
    ((("Content-Length", "9" * 40),), BodyFraming(length=10 ** 18)),     # over int()'s digit limit: "huge"
])
def test_body_framing(fields, framing):
    assert body_framing(head(200, *fields)) == framing


@pytest.mark.parametrize("fields, detail", [
    ((("Transfer-Encoding", "gzip, chunked"),), "unsupported Transfer-Encoding"),
    ((("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")), "unsupported Transfer-Encoding"),
    ((("Transfer-Encoding", "chunked"), ("Content-Length", "10")), "both Transfer-Encoding and Content-Length"),
    ((("Content-Length", "10"), ("Content-Length", "11")), "invalid Content-Length"),
    ((("Content-Length", "-1"),), "invalid Content-Length"),
    ((("Content-Length", "1e3"),), "invalid Content-Length"),
    ((("Content-Length", "\u00b2"),), "invalid Content-Length"),        # a digit to str.isdigit, not to HTTP
])
def test_ambiguous_or_unsupported_framing(fields, detail):
    with pytest.raises(AnswerRefused) as refused:
        body_framing(head(200, *fields))
    assert refused.value.failure is HTTPFailure.MALFORMED and detail in refused.value.detail


@pytest.mark.parametrize("answer, reason, detail", [
    (head(301, ("Location", "https://elsewhere.test/")), HTTPFailure.REDIRECT,
     "HTTP 301 to https://elsewhere.test/"),
    (head(302), HTTPFailure.REDIRECT, "HTTP 302 to nowhere"),
    (head(404, ("Content-Type", "text/plain")), HTTPFailure.STATUS, "HTTP 404"),
    (head(204), HTTPFailure.STATUS, "HTTP 204"),
    (head(200), HTTPFailure.CONTENT_TYPE, "Content-Type '', not text/plain"),
    (head(200, ("Content-Type", "text/html")), HTTPFailure.CONTENT_TYPE, "'text/html'"),
    (head(200, ("Content-Type", "text/plain"), ("Content-Length", str(POLICY_SIZE_LIMIT + 1))),
     HTTPFailure.TOO_LARGE, f"Content-Length {POLICY_SIZE_LIMIT + 1} over"),
])
def test_check_head_refuses(answer, reason, detail):
    with pytest.raises(AnswerRefused) as refused:
        check_head(answer, POLICY_RULES)
    assert refused.value.failure is reason and detail in refused.value.detail


@pytest.mark.parametrize("content_type", ["text/plain", "Text/Plain; charset=utf-8", " text/plain ;charset=\"x\""])
def test_check_head_accepts(content_type):
    framing = check_head(head(200, ("Content-Type", content_type), ("Content-Length", str(POLICY_SIZE_LIMIT))),
                         POLICY_RULES)
    assert framing == BodyFraming(length=POLICY_SIZE_LIMIT)


def test_one_tls_context_per_ca_setting(tmp_path):
    system = tls_context(None)
    assert tls_context(None) is system and system.verify_mode is ssl.CERT_REQUIRED and system.check_hostname
    ca_file = write_pem(str(tmp_path), "ca.pem", issue("CA one", is_ca=True))
    first = tls_context(ca_file)
    assert tls_context(ca_file) is first and first is not system
    assert len(first.get_ca_certs()) == 1
    # A replaced file (a renewed CA after a reload) is read again.
    write_pem(str(tmp_path), "ca.pem", issue("CA two", is_ca=True), issue("CA three", is_ca=True))
    os.utime(ca_file, ns=(1, 1))
    renewed = tls_context(ca_file)
    assert renewed is not first and len(renewed.get_ca_certs()) == 2


def test_any_media_type_when_none_is_named():
    rules = AnswerRules(size_limit=10)
    assert check_head(head(200, ("Content-Type", "application/pkix-crl")), rules) == BodyFraming()
    assert check_head(head(200), rules) == BodyFraming()
    with pytest.raises(AnswerRefused) as refused:
        check_head(head(200, ("Content-Length", "11")), rules)
    assert refused.value.failure is HTTPFailure.TOO_LARGE


@pytest.mark.parametrize("request_, url, encoded", [
    (HTTPRequest("mta-sts.a.test", 443, "/p", "ua", tls=lambda: None), "https://mta-sts.a.test/p",
     b"GET /p HTTP/1.1\r\nHost: mta-sts.a.test\r\nUser-Agent: ua\r\nAccept-Encoding: identity\r\n"
     b"Connection: close\r\n\r\n"),
    (HTTPRequest("ocsp.ca.test", 8080, "/", "ua", method="POST", body=b"\x30\x00",
                 body_type="application/ocsp-request"), "http://ocsp.ca.test:8080/",
     b"POST / HTTP/1.1\r\nHost: ocsp.ca.test:8080\r\nUser-Agent: ua\r\nAccept-Encoding: identity\r\n"
     b"Connection: close\r\nContent-Type: application/ocsp-request\r\nContent-Length: 2\r\n\r\n\x30\x00"),
    (HTTPRequest("2001:db8::1", 80, "/ca.crl", "ua"), "http://[2001:db8::1]/ca.crl",
     b"GET /ca.crl HTTP/1.1\r\nHost: [2001:db8::1]\r\nUser-Agent: ua\r\nAccept-Encoding: identity\r\n"
     b"Connection: close\r\n\r\n"),
])
def test_request_url_and_bytes(request_, url, encoded):
    assert request_.url == url
    assert request_.encoded() == encoded
