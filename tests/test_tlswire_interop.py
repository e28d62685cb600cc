"""Hellos built here, sent to a real `openssl s_server` on 127.0.0.1, answers parsed here.

Each test starts its own server on a free port and always stops it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.ciphers import SSL2_CIPHER_KINDS, suites_for_version
from exporter.tlswire.grading import Class, ffdhe_group, grade_dh_parameters
from exporter.tlswire.hello import (
    COMPRESSION_DEFLATE,
    build_client_hello,
    build_sslv2_client_hello,
    split_cipher_codes,
)
from exporter.tlswire.parse import (
    Alert,
    Certificate,
    DHParameters,
    ServerFlightParser,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    TLSParseError,
    parse_sslv2_server_hello,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")

V = ProtocolVersion
ALL_TLS12_CODES = [suite.code for suite in suites_for_version(V.TLS1_2)]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("tlswire")
    files = {"rsa_key": directory / "rsa.key", "rsa_cert": directory / "rsa.pem", "dh1024": directory / "dh1024.pem"}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", files["rsa_key"],
                    "-out", files["rsa_cert"], "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "dh_paramgen_prime_len:1024",
                    "-out", files["dh1024"]], check=True, capture_output=True)
    return files


@contextlib.contextmanager
def s_server(keys: dict, *args: str) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-quiet",
         "-cert", str(keys["rsa_cert"]), "-key", str(keys["rsa_key"]), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break       # s_server shrugs off this empty connection and accepts the next
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait()


def exchange(port: int, hello: bytes, *, until=(ServerHelloDone, Alert)) -> list:
    """Send one hello, return the parsed answer up to the first message of a type in `until`."""
    parser = ServerFlightParser()
    messages: list = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(hello)
        while not any(isinstance(message, until) for message in messages):
            data = connection.recv(65536)
            if not data:
                break
            messages += parser.feed(data)
    return messages


def test_tls12_server_picks_its_only_suite(keys):
    with s_server(keys, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256") as port:
        messages = exchange(port, build_client_hello(V.TLS1_2, ALL_TLS12_CODES, server_name="localhost"))
    hello, certificate, key_exchange, done = messages
    assert isinstance(hello, ServerHello) and isinstance(done, ServerHelloDone)
    assert hello.version == V.TLS1_2 and hello.cipher_code == 0xC02F
    assert hello.secure_renegotiation and hello.extended_master_secret
    leaf = x509.load_pem_x509_certificate(keys["rsa_cert"].read_bytes())
    assert certificate == Certificate((leaf.public_bytes(serialization.Encoding.DER),))
    assert key_exchange.parameters.named_curve == NamedGroup.X25519


def test_tls12_server_ignores_deflate_offer(keys):
    with s_server(keys, "-tls1_2") as port:
        (hello, *_) = exchange(port, build_client_hello(V.TLS1_2, [0xC02F, 0xC030],
                                                        compression_methods=(COMPRESSION_DEFLATE, 0)))
    assert hello.compression_method == 0 and hello.cipher_code in (0xC02F, 0xC030)


def test_tls13_server_answers_with_supported_versions_and_key_share(keys):
    with s_server(keys, "-tls1_3") as port:
        (hello,) = exchange(port, build_client_hello(V.TLS1_3, [0x1301, 0x1302, 0x1303], server_name="localhost"),
                            until=(ServerHello, Alert))
    assert hello.legacy_version == 0x0303 and hello.version == V.TLS1_3
    assert hello.cipher_code in (0x1301, 0x1302, 0x1303)
    assert hello.key_share_group in (NamedGroup.X25519, NamedGroup.SECP256R1)
    assert not hello.is_hello_retry_request


def test_tls13_server_asks_for_another_key_share(keys):
    with s_server(keys, "-tls1_3", "-groups", "secp384r1") as port:
        (hrr,) = exchange(port, build_client_hello(V.TLS1_3, [0x1301], key_share_groups=(NamedGroup.X25519,)),
                          until=(ServerHello, Alert))
    assert hrr.is_hello_retry_request and hrr.key_share_group == NamedGroup.SECP384R1


def test_tls12_only_server_refuses_tls10_with_protocol_version(keys):
    with s_server(keys, "-tls1_2") as port:
        messages = exchange(port, build_client_hello(V.TLS1_0, [s.code for s in suites_for_version(V.TLS1_0)]))
    assert messages == [Alert(2, 70)]


def test_tls13_only_server_refuses_a_tls12_hello(keys):
    with s_server(keys, "-tls1_3") as port:
        (alert,) = exchange(port, build_client_hello(V.TLS1_2, ALL_TLS12_CODES[:64]))
    assert alert.fatal and alert.name == "protocol_version"


def test_tls10_server_at_seclevel_0(keys):
    with s_server(keys, "-tls1", "-cipher", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0") as port:
        (hello, *_) = exchange(port, build_client_hello(V.TLS1_0, [0xC013, 0x002F]))
    assert hello.version == V.TLS1_0 and hello.cipher_code == 0xC013


def test_no_shared_suite_gives_handshake_failure(keys):
    with s_server(keys, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384") as port:
        (alert,) = exchange(port, build_client_hello(V.TLS1_2, [0xC02F, 0x009C]))
    assert alert.name == "handshake_failure"


def test_ssl3_hello_without_extensions_is_refused_by_openssl3(keys):
    with s_server(keys) as port:
        (alert,) = exchange(port, build_client_hello(V.SSL3, list(range(0x0001, 0x001C)), with_extensions=False))
    assert alert.fatal and alert.name in ("protocol_version", "handshake_failure")


def test_dhe_server_key_exchange_reports_the_prime_size(keys):
    with s_server(keys, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                  "-dhparam", str(keys["dh1024"])) as port:
        messages = exchange(port, build_client_hello(V.TLS1_2, [0x009E]))
    key_exchange = next(m for m in messages if isinstance(m, ServerKeyExchange))
    parameters = key_exchange.parameters
    assert isinstance(parameters, DHParameters) and parameters.p_bits == 1024
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # cryptography deprecates finite-field DH
        expected = serialization.load_pem_parameters(keys["dh1024"].read_bytes()).parameter_numbers()
    assert (parameters.p, parameters.g) == (expected.p, expected.g)
    assert ffdhe_group(parameters.p, parameters.g) is None
    assert grade_dh_parameters(parameters.p, parameters.g) is Class.INSUFFICIENT


def test_chunked_cipher_lists_find_the_suite_in_a_later_chunk(keys):
    with s_server(keys, "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305") as port_chunks:
        chunks = split_cipher_codes(ALL_TLS12_CODES, 64)
        chosen = None
        for chunk in chunks:
            if 0xCCA8 in chunk:
                (chosen, *_) = exchange(port_chunks, build_client_hello(V.TLS1_2, chunk))
    assert 0xCCA8 not in chunks[0] and chosen.cipher_code == 0xCCA8


def test_sslv2_compatible_hello_reaches_a_tls_server(keys):
    with s_server(keys, "-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0") as port:
        (hello, *_) = exchange(port, build_sslv2_client_hello([0x010080], version=V.TLS1_2,
                                                               tls_cipher_codes=[0x002F, 0x0035]))
    assert hello.version == V.TLS1_2 and hello.cipher_code == 0x002F


def test_pure_sslv2_hello_gets_a_tls_alert_from_openssl3(keys):
    with s_server(keys) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(build_sslv2_client_hello(list(SSL2_CIPHER_KINDS)))
        answer = connection.recv(65536)
    with pytest.raises(TLSParseError):
        parse_sslv2_server_hello(answer)
    assert ServerFlightParser().feed(answer) == [Alert(2, 70)]
