"""The deep scan against in-process fake servers: what OpenSSL 3 cannot serve (SSLv3, RC4,
EXPORT, NULL, SSL 2.0) and hostile answers. Each fake server decides from the hello it
received, like a real one, so the findings and the connection counts are the scanner's own."""

from __future__ import annotations

import os
import time
import tracemalloc

import pytest

from exporter.config import DNSSettings, Module, MailProtocol, StartTLS, Target
from exporter.dnsclient import DNSClient
from exporter.results import FailureReason
from exporter.tlsscan.scanner import scan_endpoint
from exporter.tlswire import ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES
from exporter.tlswire.grading import Class
from tests.tlsservers.fake import (
    SERVER_HELLO_DONE, FakeTLSServer, OfferedHello, alert, server_hello, sslv2_server_hello,
)

HANDSHAKE_FAILURE, PROTOCOL_VERSION = 40, 70
RENEGOTIATION_INFO = b"\xff\x01\x00\x01\x00"


async def scan(port: int, *, timeout: float = 2.0, budget: float = 30.0):
    module = Module(name="fake", protocol=MailProtocol.SMTPS, port=port, starttls=StartTLS.NONE,
                    timeout=timeout, interval=300.0)
    return await scan_endpoint(Target(host="127.0.0.1", port=port, module="fake"), module,
                               DNSClient(DNSSettings()), budget=budget)


def legacy_sslv3_server(supported: tuple[int, ...]):
    """SSL 3.0 only, picking by its own preference (`supported` order), with DEFLATE if offered."""
    def respond(hello: OfferedHello) -> bytes:
        if hello.sslv2 or hello.version != ProtocolVersion.SSL3:
            return alert(PROTOCOL_VERSION)
        for code in supported:
            if code in hello.cipher_codes:
                compression = 1 if 1 in hello.compression_methods else 0
                return server_hello(ProtocolVersion.SSL3, code, compression=compression) + SERVER_HELLO_DONE
        return alert(HANDSHAKE_FAILURE)
    return respond


async def test_sslv3_rc4_export_null_are_found_graded_and_cheap():
    # RC4, an EXPORT suite, a NULL suite: what the 1990s left behind.
    supported = (0x0002, 0x0003, 0x0005)
    async with FakeTLSServer(legacy_sslv3_server(supported)) as server:
        result = await scan(server.port)

    assert result.success, result.failure_detail
    assert result.supported_versions() == (ProtocolVersion.SSL3,)
    reasons = {v.version: v.reason for v in result.versions}
    assert reasons[ProtocolVersion.TLS1_2] == "alert_protocol_version"
    # It answers the SSL 2.0 hello with a TLS alert record: a refusal, not garbage.
    assert reasons[ProtocolVersion.SSL2] == "alert_protocol_version"
    found = [c.code for c in result.ciphers_for(ProtocolVersion.SSL3)]
    assert found == list(supported)          # server order: enumerated in its preference
    assert {c.name for c in result.ciphers} == {CIPHER_SUITES[code].name for code in supported}
    assert dict(result.server_cipher_order) == {ProtocolVersion.SSL3: True}
    assert result.compression is True
    assert result.secure_renegotiation is False
    assert result.grade is Class.INSUFFICIENT
    # 4 refused TLS versions + SSLv2 + (3 accepted + 1 refusal) for SSLv3; the enumeration
    # already showed the server's own order (the scan offers the highest code first, and the
    # server picked NULL-SHA, 0x0002, before the RC4 suites listed ahead of it), so no order hello.
    assert server.connections == result.connections == 4 + 1 + (len(supported) + 1)


async def test_a_server_order_that_matches_the_offered_order_costs_one_order_test():
    supported = (0x0005, 0x0003, 0x0002)        # its preference happens to be the scan's offer order
    async with FakeTLSServer(legacy_sslv3_server(supported)) as server:
        result = await scan(server.port)
    assert [c.code for c in result.ciphers] == list(supported)
    assert dict(result.server_cipher_order) == {ProtocolVersion.SSL3: True}
    assert server.connections == result.connections == 4 + 1 + (len(supported) + 1) + 1


async def test_client_order_and_renegotiation_info_of_a_tls12_server():
    supported = {0x009C, 0x002F, 0xC02F}
    def respond(hello: OfferedHello) -> bytes:
        if hello.sslv2 or hello.version != ProtocolVersion.TLS1_2:
            return alert(PROTOCOL_VERSION)
        for code in hello.cipher_codes:                   # the client's order
            if code in supported:
                return server_hello(0x0303, code, extensions=RENEGOTIATION_INFO) + SERVER_HELLO_DONE
        return alert(HANDSHAKE_FAILURE)

    async with FakeTLSServer(respond) as server:
        result = await scan(server.port)
    assert {c.code for c in result.ciphers} == supported
    assert dict(result.server_cipher_order) == {ProtocolVersion.TLS1_2: False}
    assert result.secure_renegotiation is True
    assert result.compression is False
    assert result.connections == server.connections


async def test_a_server_that_closes_on_the_suite_it_cannot_serve_still_shows_the_others():
    # Like Dovecot without ssl_dh: DHE suites are in its list, it picks one in client order,
    # fails for lack of DH parameters and closes without an alert.
    dhe, working = {0x0033, 0x009E}, {0xC02F, 0xC013, 0x002F}
    def respond(hello: OfferedHello) -> bytes:
        if hello.sslv2 or hello.version != ProtocolVersion.TLS1_2:
            return b""
        for code in hello.cipher_codes:
            if code in dhe:
                return b""
            if code in working:
                return server_hello(0x0303, code, extensions=RENEGOTIATION_INFO) + SERVER_HELLO_DONE
        return b""

    async with FakeTLSServer(respond) as server:
        result = await scan(server.port)
    assert result.success, result.failure_detail
    assert {c.code for c in result.ciphers} == working
    assert result.connections == server.connections


async def test_a_tls12_answer_to_a_tls10_hello_means_tls10_unsupported():
    def respond(hello: OfferedHello) -> bytes:
        if hello.sslv2 or hello.version > ProtocolVersion.TLS1_2:
            return alert(PROTOCOL_VERSION)
        return server_hello(0x0303, hello.cipher_codes[0]) + SERVER_HELLO_DONE   # always TLS 1.2

    async with FakeTLSServer(respond) as server:
        result = await scan(server.port)
    support = {v.version: v for v in result.versions}
    assert support[ProtocolVersion.TLS1_2].supported
    for version in (ProtocolVersion.TLS1_1, ProtocolVersion.TLS1_0, ProtocolVersion.SSL3):
        assert not support[version].supported
        assert support[version].reason == "answered_TLSv1.2"


async def test_sslv2_server_hello_lists_the_accepted_kinds():
    kinds = (0x010080, 0x020080)       # SSL_CK_RC4_128_WITH_MD5, SSL_CK_RC4_128_EXPORT40_WITH_MD5
    def respond(hello: OfferedHello) -> bytes:
        if hello.sslv2:
            return sslv2_server_hello(kinds, b"\x30\x03\x02\x01\x00")   # not a real certificate
        return alert(PROTOCOL_VERSION)

    async with FakeTLSServer(respond) as server:
        result = await scan(server.port)
    assert result.supported_versions() == (ProtocolVersion.SSL2,)
    assert [c.code for c in result.ciphers_for(ProtocolVersion.SSL2)] == list(kinds)
    assert {c.name for c in result.ciphers} == {"SSL_CK_RC4_128_WITH_MD5", "SSL_CK_RC4_128_EXPORT40_WITH_MD5"}
    assert result.grade is Class.INSUFFICIENT
    assert result.certificates == ()     # unparsable certificate: skipped, not a crash


async def test_a_suite_never_offered_is_not_accepted():
    def respond(hello: OfferedHello) -> bytes:
        return alert(PROTOCOL_VERSION) if hello.sslv2 else server_hello(0x0303, 0x1234) + SERVER_HELLO_DONE

    async with FakeTLSServer(respond) as server:
        result = await scan(server.port)
    assert result.ciphers == ()
    assert {v.version: v.reason for v in result.versions}[ProtocolVersion.TLS1_2] == "suite_not_offered"


@pytest.mark.parametrize("garbage", [
    b"\xff" + os.urandom(300),                        # no TLS content type starts with 0xff
    b"220 mail ESMTP ready\r\n",
    b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00",     # a ServerHello far too short for its length
    b"\x15\x03\x03\x00\x01\x02",                       # an alert record of odd length
])
async def test_garbage_fails_the_scan_with_protocol_error(garbage: bytes):
    async with FakeTLSServer(lambda hello: garbage) as server:
        result = await scan(server.port)
    assert not result.success
    assert result.failure is FailureReason.PROTOCOL_ERROR
    assert result.supported_versions() == ()
    assert result.connections == server.connections


TRUNCATED_SERVER_HELLO = server_hello(0x0303, 0xC02F, extensions=RENEGOTIATION_INFO)


@pytest.mark.parametrize("answer", [
    TRUNCATED_SERVER_HELLO[:3],                       # inside the record header
    TRUNCATED_SERVER_HELLO[:-5],                      # inside the record
    # a whole record that holds only the start of the ServerHello message
    b"\x16\x03\x03\x00\x0a" + TRUNCATED_SERVER_HELLO[5:15],
])
async def test_a_truncated_server_hello_then_close_is_a_protocol_error(answer: bytes):
    async with FakeTLSServer(lambda hello: alert(PROTOCOL_VERSION) if hello.sslv2 else answer) as server:
        result = await scan(server.port)
    tls_versions = [v for v in result.versions if v.version is not ProtocolVersion.SSL2]
    assert {v.reason for v in tls_versions} == {"protocol_error"}
    assert result.failure is FailureReason.PROTOCOL_ERROR
    assert result.connections == server.connections


async def test_a_truncated_sslv2_server_hello_then_close_is_a_protocol_error():
    answer = sslv2_server_hello((0x010080,), b"\x30\x03\x02\x01\x00")[:-4]
    async with FakeTLSServer(lambda hello: answer if hello.sslv2 else alert(PROTOCOL_VERSION)) as server:
        result = await scan(server.port)
    assert {v.version: v.reason for v in result.versions}[ProtocolVersion.SSL2] == "protocol_error"
    assert result.ciphers == ()


async def test_a_close_between_messages_is_a_refusal_not_a_protocol_error():
    def respond(hello: OfferedHello) -> bytes:
        if hello.sslv2 or hello.version != ProtocolVersion.TLS1_2:
            return b""                                # closes without a byte
        return TRUNCATED_SERVER_HELLO if 0xC02F in hello.cipher_codes else b""

    async with FakeTLSServer(respond) as server:
        result = await scan(server.port)
    assert result.success, result.failure_detail
    assert [c.code for c in result.ciphers] == [0xC02F]     # a whole ServerHello, then a close: accepted
    assert {v.version: v.reason for v in result.versions}[ProtocolVersion.TLS1_1] == "closed"


async def test_a_silent_server_costs_one_timeout_per_hello_and_the_budget_stops_the_scan():
    async with FakeTLSServer(lambda hello: b"", hold_open=True) as server:
        started = time.monotonic()
        result = await scan(server.port, timeout=0.2)
        assert time.monotonic() - started < 6 * 0.2 + 1.0
        assert {v.reason for v in result.versions} == {"timeout"}
        assert result.success and result.supported_versions() == ()

        started = time.monotonic()
        bounded = await scan(server.port, timeout=0.2, budget=0.5)
        assert time.monotonic() - started < 1.0
        assert bounded.failure is FailureReason.TIMEOUT
        assert 1 <= bounded.connections <= 3


async def test_connection_refused_is_a_failure_not_an_exception():
    async with FakeTLSServer(lambda hello: b"") as server:
        port = server.port
    result = await scan(port)
    assert result.failure is FailureReason.CONNECTION_REFUSED
    assert result.connections == 0


async def test_a_1_mb_certificate_chain_is_never_buffered_whole():
    from tests.hostile import FakeServer, issue, server_tls_context, silent

    names = tuple(f"host{i:05d}-{'x' * 40}.example.test" for i in range(20_000))
    context = server_tls_context(issue("mx.example.test", dns_names=names))
    tracemalloc.start()
    try:
        async with FakeServer(silent, tls_context=context) as server:
            result = await scan(server.port)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The ServerHello before it tells version and suite; handshake messages are reassembled
    # up to 64 KiB only, so the oversized Certificate is dropped, not kept.
    assert ProtocolVersion.TLS1_3 in result.supported_versions(), result
    assert result.certificates == ()
    assert peak < 8 * 1024 * 1024
