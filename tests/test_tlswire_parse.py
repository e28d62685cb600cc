"""Record reassembly and server-message parsing, on recorded server responses and fuzzed bytes."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.parse import (
    HELLO_RETRY_REQUEST_RANDOM,
    MAX_HANDSHAKE_MESSAGE,
    Alert,
    Certificate,
    CertificateStatus,
    DHParameters,
    ECDHParameters,
    HandshakeReassembler,
    OtherHandshake,
    RecordReader,
    ServerFlightParser,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    SSLv2Error,
    SSLv2ServerHello,
    TLSParseError,
    parse_server_hello,
    parse_server_key_exchange,
    parse_sslv2_server_hello,
)
from tests.tlsservers.recordings import HELLO_RETRY, PROTOCOL_VERSION_ALERT, TLS12_FLIGHT, TLS13_START


def _record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return bytes([content_type]) + version.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _server_hello_body(cipher: int, extensions: bytes = b"", random: bytes = bytes(32)) -> bytes:
    block = len(extensions).to_bytes(2, "big") + extensions if extensions is not None else b""
    return b"\x03\x03" + random + b"\x00" + cipher.to_bytes(2, "big") + b"\x00" + block


def test_tls12_flight():
    messages = ServerFlightParser().feed(TLS12_FLIGHT)
    assert [type(m) for m in messages] == [ServerHello, Certificate, ServerKeyExchange, ServerHelloDone]
    hello, certificate, key_exchange, _ = messages
    assert hello.version == ProtocolVersion.TLS1_2 and hello.cipher_code == 0xC02B
    assert hello.compression_method == 0 and not hello.is_hello_retry_request
    assert hello.secure_renegotiation and hello.extended_master_secret and hello.session_ticket
    assert hello.ec_point_formats == (0, 1, 2) and hello.alpn_protocol is None and not hello.status_request
    assert hello.downgrade_sentinel is None
    assert len(certificate.chain) == 1
    assert x509.load_der_x509_certificate(certificate.chain[0]).subject.rfc4514_string() == "CN=t"
    assert key_exchange.parameters == ECDHParameters(3, NamedGroup.X25519, key_exchange.parameters.public_key)
    assert len(key_exchange.parameters.public_key) == 32


def test_tls13_server_hello_then_encrypted_records_are_skipped():
    parser = ServerFlightParser()
    messages = parser.feed(TLS13_START)
    assert len(messages) == 1
    hello = messages[0]
    assert hello.legacy_version == 0x0303 and hello.version == ProtocolVersion.TLS1_3
    assert hello.cipher_code == 0x1301 and hello.key_share_group == NamedGroup.X25519
    assert len(hello.session_id) == 32
    assert parser.server_hello is hello


def test_hello_retry_request():
    (hrr,) = ServerFlightParser().feed(HELLO_RETRY)
    assert hrr.random == hashlib.sha256(b"HelloRetryRequest").digest() == HELLO_RETRY_REQUEST_RANDOM
    assert hrr.is_hello_retry_request and hrr.version == ProtocolVersion.TLS1_3
    assert hrr.key_share_group == NamedGroup.SECP384R1


def test_alert():
    (alert,) = ServerFlightParser().feed(PROTOCOL_VERSION_ALERT)
    assert alert == Alert(2, 70) and alert.fatal and alert.name == "protocol_version"
    assert Alert(2, 40).name == "handshake_failure" and Alert(2, 71).name == "insufficient_security"
    assert Alert(1, 112).name == "unrecognized_name" and not Alert(1, 112).fatal
    assert Alert(2, 250).name == "unknown_250"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_byte_stream_cut_anywhere_gives_the_same_messages(chunk):
    parser = ServerFlightParser()
    messages = []
    for start in range(0, len(TLS12_FLIGHT), chunk):
        messages += parser.feed(TLS12_FLIGHT[start:start + chunk])
    assert messages == ServerFlightParser().feed(TLS12_FLIGHT)


def test_several_messages_in_one_record_and_one_message_over_several_records():
    hello = _handshake(2, _server_hello_body(0xC02F))
    done = _handshake(14, b"")
    certificate = _handshake(11, (6).to_bytes(3, "big") + (3).to_bytes(3, "big") + b"abc")
    stream = _record(22, hello + certificate[:5]) + _record(22, certificate[5:]) + _record(22, done)
    messages = ServerFlightParser().feed(stream)
    assert [type(m) for m in messages] == [ServerHello, Certificate, ServerHelloDone]
    assert messages[1].chain == (b"abc",)


def test_certificate_status_and_other_messages():
    stream = _record(22, _handshake(2, _server_hello_body(0xC02F, b"\x00\x05\x00\x00"))
                     + _handshake(22, b"\x01" + (4).to_bytes(3, "big") + b"\x30\x02\x0a\x00")
                     + _handshake(13, b"\x01\x01\x00\x00\x00"))
    hello, status, other = ServerFlightParser().feed(stream)
    assert hello.status_request
    assert status == CertificateStatus(1, b"\x30\x02\x0a\x00")
    assert other == OtherHandshake(13, b"\x01\x01\x00\x00\x00")


def test_dhe_server_key_exchange():
    p = (1 << 1023) | 0x1234567
    body = (128).to_bytes(2, "big") + p.to_bytes(128, "big") + b"\x00\x01\x02" + b"\x00\x02\xab\xcd" + b"sig"
    parameters = parse_server_key_exchange(body, 0x009E).parameters
    assert parameters == DHParameters(p, 2, b"\xab\xcd") and parameters.p_bits == 1024
    # DHE_PSK: a PSK identity hint comes first
    psk = parse_server_key_exchange(b"\x00\x02hi" + body, 0x00AA).parameters
    assert psk.p_bits == 1024
    with pytest.raises(TLSParseError):
        parse_server_key_exchange(body[:100], 0x009E)


def test_export_rsa_server_key_exchange_and_unknown_suites():
    modulus = (1 << 511) | 1
    body = (64).to_bytes(2, "big") + modulus.to_bytes(64, "big") + b"\x00\x03\x01\x00\x01"
    assert parse_server_key_exchange(body, 0x0003).parameters.modulus_bits == 512
    assert parse_server_key_exchange(b"whatever", 0xFAFA).parameters is None


@pytest.mark.parametrize("data", [
    b"220 mail.example.org ESMTP\r\n",            # a plaintext greeting instead of TLS
    b"\x16\x02\x00",                               # version major 2
    b"\x16\x03\x03\x48\x01",                       # record longer than 16384 + 2048
    b"\x16\x03\x03\x00\x00",                       # empty handshake record
    b"\x15\x03\x03\x00\x03\x02\x28\x00",           # alert of odd length
    _record(22, _handshake(11, b"\x00\x00\x00")),  # Certificate before ServerHello
    _record(23, b"early data"),                    # application data in a TLS 1.2 handshake
])
def test_garbage_is_refused(data):
    with pytest.raises(TLSParseError):
        ServerFlightParser().feed(data)


def test_garbage_is_refused_from_its_first_byte():
    with pytest.raises(TLSParseError):
        RecordReader().feed(b"2")
    reader = RecordReader()
    assert reader.feed(b"\x16") == [] and reader.pending == 1


_HELLO_MESSAGE = _handshake(2, _server_hello_body(0xC02F))


@pytest.mark.parametrize("stream, pending", [
    (b"", 0),
    (b"\x16\x03", 2),                                               # inside a record header
    (_record(22, _HELLO_MESSAGE)[:20], 20),                          # inside a record
    (_record(22, _HELLO_MESSAGE), 0),                                # one whole record and message
    (_record(22, _HELLO_MESSAGE[:10]), 10),                          # whole record, message cut short
    (_record(22, _HELLO_MESSAGE[:10]) + _record(22, _HELLO_MESSAGE[10:])[:7], 10 + 7),
    (_record(22, _HELLO_MESSAGE[:10]) + _record(22, _HELLO_MESSAGE[10:]), 0),
    (TLS12_FLIGHT, 0),
    (TLS12_FLIGHT[:-1], 8),                                          # the ServerHelloDone record minus a byte
    (PROTOCOL_VERSION_ALERT, 0),
])
def test_pending_counts_the_bytes_of_what_is_not_complete_yet(stream, pending):
    parser = ServerFlightParser()
    parser.feed(stream)
    assert parser.pending == pending


def test_handshake_message_size_is_bounded():
    reassembler = HandshakeReassembler()
    with pytest.raises(TLSParseError):
        reassembler.feed(b"\x0b" + (MAX_HANDSHAKE_MESSAGE + 1).to_bytes(3, "big"))
    assert HandshakeReassembler().feed(b"\x0b\x00\x10\x00" + b"x" * 100) == []


@pytest.mark.parametrize("body", [
    _server_hello_body(0xC02F)[:-3],                               # truncated
    _server_hello_body(0xC02F, b"\xff\x01\x00\x01\x00" * 2),       # duplicate extension
    _server_hello_body(0x1301, b"\x00\x2b\x00\x03\x03\x04\x00"),   # supported_versions of 3 bytes
    _server_hello_body(0xC02F) + b"\x00",                          # trailing byte
    b"\x02\x00" + _server_hello_body(0xC02F)[2:],                  # version 0x0200
])
def test_malformed_server_hellos(body):
    with pytest.raises(TLSParseError):
        parse_server_hello(body)


def test_server_hello_without_extension_block_and_downgrade_sentinel():
    body = b"\x03\x01" + bytes(24) + b"DOWNGRD\x00" + b"\x00" + b"\x00\x2f" + b"\x00"
    hello = parse_server_hello(body)
    assert hello.version == ProtocolVersion.TLS1_0 and hello.extensions == ()
    assert hello.downgrade_sentinel == ProtocolVersion.TLS1_1


def test_alpn_in_server_hello():
    hello = parse_server_hello(_server_hello_body(0xC02F, b"\x00\x10\x00\x07\x00\x05\x04smtp"))
    assert hello.alpn_protocol == "smtp"


# --- SSLv2 -----------------------------------------------------------------------------------

def _sslv2_server_hello(certificate: bytes, kinds: list[int], connection_id: bytes = bytes(16)) -> bytes:
    specs = b"".join(kind.to_bytes(3, "big") for kind in kinds)
    body = (b"\x04\x00\x01\x00\x02" + len(certificate).to_bytes(2, "big") + len(specs).to_bytes(2, "big")
            + len(connection_id).to_bytes(2, "big") + certificate + specs + connection_id)
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def test_sslv2_server_hello():
    data = _sslv2_server_hello(b"\x30\x03\x02\x01\x05", [0x010080, 0x0700C0])
    assert parse_sslv2_server_hello(data[:10]) is None
    hello = parse_sslv2_server_hello(data)
    assert hello == SSLv2ServerHello(False, 1, 2, b"\x30\x03\x02\x01\x05", (0x010080, 0x0700C0), bytes(16))


def test_sslv2_error_and_refusals():
    assert parse_sslv2_server_hello(b"\x80\x03\x00\x00\x01") == SSLv2Error(1)
    with pytest.raises(TLSParseError):
        parse_sslv2_server_hello(PROTOCOL_VERSION_ALERT)        # a TLS answer, not SSLv2
    with pytest.raises(TLSParseError):
        parse_sslv2_server_hello(b"\x80\x02\x05\x00")           # not a SERVER-HELLO
    with pytest.raises(TLSParseError):
        parse_sslv2_server_hello(b"220 mail.example.org ESMTP")  # plaintext
    assert parse_sslv2_server_hello(b"\x80") is None
    assert parse_sslv2_server_hello(b"") is None


# --- fuzzing: any bytes give typed values or TLSParseError, nothing else ----------------------

def _feed_all(chunks: list[bytes]) -> list:
    parser = ServerFlightParser()
    messages = []
    for chunk in chunks:
        messages += parser.feed(chunk)
    return messages


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=5))
def test_fuzz_random_bytes(chunks):
    try:
        _feed_all(chunks)
    except TLSParseError:
        pass


@settings(max_examples=300)
@given(st.sampled_from([TLS12_FLIGHT, TLS13_START, HELLO_RETRY]), st.data())
def test_fuzz_mutated_recordings(recording, data):
    mutated = bytearray(recording)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    try:
        _feed_all([bytes(mutated[:cut]), bytes(mutated[cut:])])
    except TLSParseError:
        pass


@settings(max_examples=100)
@given(st.sampled_from([TLS12_FLIGHT, HELLO_RETRY]), st.data())
def test_truncated_recordings_yield_a_prefix_of_the_messages(recording, data):
    cut = data.draw(st.integers(0, len(recording)))
    prefix = _feed_all([recording[:cut]])
    assert prefix == _feed_all([recording])[:len(prefix)]


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_sslv2(data):
    try:
        parse_sslv2_server_hello(data)
    except TLSParseError:
        pass


@settings(max_examples=200)
@given(st.binary(max_size=300), st.sampled_from([0x009E, 0xC02F, 0x00AA, 0xC035, 0x0003, 0x002F, 0xC01D]))
def test_fuzz_server_key_exchange(body, cipher):
    try:
        parse_server_key_exchange(body, cipher)
    except TLSParseError:
        pass
