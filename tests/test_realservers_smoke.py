"""The real-server fixtures serve what they claim, as seen by tools other than the exporter.

TLS is checked with `openssl s_client`, plaintext capabilities with a bare socket, so
that a bug in the exporter's probe cannot hide a bug in the fixtures (or the reverse).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import subprocess
from pathlib import Path
from typing import Mapping

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.realservers import Endpoint
from tests.realservers.dovecot import SASL_PASSWORD, SASL_USER, DovecotInstance, running_dovecot
from tests.realservers.pki import MailPKI
from tests.realservers.postfix import PostfixInstance, check, running_postfix

pytestmark = pytest.mark.integration

# OpenSSL's X509_V_* codes, as printed in "Verify return code: N (...)".
VERIFY_OK = 0
VERIFY_CERT_HAS_EXPIRED = 10
VERIFY_SELF_SIGNED = 18
VERIFY_HOSTNAME_MISMATCH = 62

# What each dialogue sends once the TLS session is up, to be polite and to see the
# post-TLS capabilities.
_AFTER_HANDSHAKE = {
    "smtp": b"EHLO smoke.test\r\nQUIT\r\n",
    "imap": b"a CAPABILITY\r\nb LOGOUT\r\n",
    "pop3": b"CAPA\r\nQUIT\r\n",
}


def s_client(endpoint: Endpoint, *options: str, after_handshake: bytes | None = None) -> str:
    """Run `openssl s_client` against the endpoint; return everything it printed."""
    command = [
        "openssl", "s_client", "-connect", f"{endpoint.host}:{endpoint.port}",
        "-servername", endpoint.server_name, "-verify_hostname", endpoint.server_name,
        "-CAfile", endpoint.ca_file, "-showcerts", "-ign_eof", *options,
    ]
    if not endpoint.protocol.implicit_tls:
        command += ["-starttls", endpoint.protocol.family]
    if after_handshake is None:
        after_handshake = _AFTER_HANDSHAKE[endpoint.protocol.family]
    done = subprocess.run(command, input=after_handshake,
                          capture_output=True, timeout=20)
    return (done.stdout + done.stderr).decode("utf-8", "replace")


def verify_code(output: str) -> int:
    return int(re.search(r"Verify return code: (\d+)", output).group(1))


def presented_certificates(output: str) -> list[x509.Certificate]:
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", output, re.S)
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


TLS_SCENARIOS = [
    ("smtp-good", VERIFY_OK),
    ("submission-good", VERIFY_OK),
    ("smtps-good", VERIFY_OK),
    ("smtp-ecdsa", VERIFY_OK),
    ("smtp-auth-before-tls", VERIFY_OK),
    ("smtp-tls13-only", VERIFY_OK),
    ("smtp-expired", VERIFY_CERT_HAS_EXPIRED),
    ("smtp-mismatch", VERIFY_HOSTNAME_MISMATCH),
    ("smtp-self-signed", VERIFY_SELF_SIGNED),
    ("imap-good", VERIFY_OK),
    ("imaps-good", VERIFY_OK),
    ("pop3-good", VERIFY_OK),
    ("pop3s-good", VERIFY_OK),
    ("imap-plaintext-auth", VERIFY_OK),
    ("pop3-plaintext-auth", VERIFY_OK),
]


@pytest.mark.parametrize(("scenario", "expected_verify_code"), TLS_SCENARIOS)
def test_tls_endpoint_presents_its_chain(mail_endpoints: Mapping[str, Endpoint],
                                         scenario: str, expected_verify_code: int):
    endpoint = mail_endpoints[scenario]
    output = s_client(endpoint)
    assert verify_code(output) == expected_verify_code, output
    assert [der(c) for c in presented_certificates(output)] == [der(c) for c in endpoint.presented_chain]
    assert re.search(r"Protocol *: *TLSv1\.[23]\b|New, TLSv1\.[23]", output), output


def test_every_endpoint_is_a_distinct_loopback_listener(mail_endpoints: Mapping[str, Endpoint]):
    addresses = [(e.host, e.port) for e in mail_endpoints.values()]
    assert len(set(addresses)) == len(addresses)
    # 127.0.0.x, and the DNS lab's 127.77.1.x for the scenarios about the address's PTR
    assert all(ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8") for host, _ in addresses)


def test_good_chain_is_leaf_then_intermediate_of_the_test_root(mail_endpoints: Mapping[str, Endpoint],
                                                               mail_pki: MailPKI):
    chain = mail_endpoints["smtp-good"].presented_chain
    assert [c.subject for c in chain] == [mail_pki.good_rsa.leaf.cert.subject, mail_pki.intermediate.cert.subject]
    assert chain[1].issuer == mail_pki.root.cert.subject


def _smtp_ehlo_keywords(endpoint: Endpoint) -> list[str]:
    with socket.create_connection((endpoint.host, endpoint.port), timeout=5) as conn:
        lines = conn.makefile("rwb")
        assert lines.readline().startswith(b"220 ")
        lines.write(b"EHLO smoke.test\r\n")
        lines.flush()
        keywords = []
        while True:
            line = lines.readline().decode("ascii").rstrip("\r\n")
            keywords.append(line[4:].split(" ")[0].upper())
            if line[3] == " ":
                break
        lines.write(b"QUIT\r\n")
        lines.flush()
        return keywords[1:]   # the first line is the greeting's domain, not a keyword


@pytest.mark.parametrize(("scenario", "starttls", "auth"), [
    ("smtp-good", True, False),
    ("submission-good", True, False),
    ("smtp-auth-before-tls", True, True),
    ("smtp-no-tls", False, False),
])
def test_smtp_capabilities_before_tls(mail_endpoints: Mapping[str, Endpoint],
                                      scenario: str, starttls: bool, auth: bool):
    keywords = _smtp_ehlo_keywords(mail_endpoints[scenario])
    assert ("STARTTLS" in keywords) is starttls, keywords
    assert ("AUTH" in keywords) is auth, keywords


def test_smtp_good_offers_auth_after_starttls(mail_endpoints: Mapping[str, Endpoint]):
    output = s_client(mail_endpoints["smtp-good"])
    assert "250-AUTH PLAIN LOGIN" in output, output


def test_tls13_only_server_refuses_tls12(mail_endpoints: Mapping[str, Endpoint]):
    refused = s_client(mail_endpoints["smtp-tls13-only"], "-tls1_2")
    assert "alert protocol version" in refused, refused
    assert "TLSv1.3" in s_client(mail_endpoints["smtp-tls13-only"], "-tls1_3")


def test_smtp_auth_after_starttls_is_backed_by_dovecot(mail_endpoints: Mapping[str, Endpoint]):
    credentials = base64.b64encode(f"\0{SASL_USER}\0{SASL_PASSWORD}".encode())
    output = s_client(mail_endpoints["smtp-good"],
                      after_handshake=b"EHLO smoke.test\r\nAUTH PLAIN " + credentials + b"\r\nQUIT\r\n")
    assert "235 2.7.0 Authentication successful" in output, output


def test_openssl_finds_no_starttls_on_the_plaintext_server(mail_endpoints: Mapping[str, Endpoint]):
    output = s_client(mail_endpoints["smtp-no-tls"])
    assert "Didn't find STARTTLS in server response" in output, output
    assert "BEGIN CERTIFICATE" not in output


def _first_lines(endpoint: Endpoint, command: bytes, end: bytes) -> str:
    """The greeting and the reply to `command`, up to the line starting with `end`."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=5) as conn:
        lines = conn.makefile("rwb")
        text = lines.readline()
        lines.write(command)
        lines.flush()
        while not (line := lines.readline()).startswith(end):
            text += line
        return text.decode("ascii")


@pytest.mark.parametrize(("scenario", "login_disabled", "auth_plain"), [
    ("imap-good", True, False),
    ("imap-plaintext-auth", False, True),
])
def test_imap_capabilities_before_tls(mail_endpoints: Mapping[str, Endpoint],
                                      scenario: str, login_disabled: bool, auth_plain: bool):
    capabilities = _first_lines(mail_endpoints[scenario], b"a CAPABILITY\r\n", b"a OK").split()
    assert "STARTTLS" in capabilities
    assert ("LOGINDISABLED" in capabilities) is login_disabled
    assert ("AUTH=PLAIN" in capabilities) is auth_plain


@pytest.mark.parametrize(("scenario", "user_offered"), [
    ("pop3-good", False),
    ("pop3-plaintext-auth", True),
])
def test_pop3_capabilities_before_tls(mail_endpoints: Mapping[str, Endpoint], scenario: str, user_offered: bool):
    capabilities = _first_lines(mail_endpoints[scenario], b"CAPA\r\n", b".").splitlines()
    assert "STLS" in capabilities
    assert ("USER" in capabilities) is user_offered


def test_postfix_check_accepts_the_instance(postfix_server: PostfixInstance):
    done = check(postfix_server)
    assert done.returncode == 0, done.stderr + postfix_server.maillog.read_text()


def _connection_refused(endpoint: Endpoint) -> bool:
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _processes_inside(directory: Path) -> list[int]:
    """PIDs whose working or root directory lies in `directory` (Postfix and Dovecot chdir there)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for link in ("cwd", "root"):
            try:
                if Path(proc / link).resolve().is_relative_to(directory):
                    pids.append(int(proc.name))
            except OSError:   # the process is gone, or a kernel thread
                pass
    return pids


class _Boom(Exception):
    pass


def test_dovecot_is_stopped_even_when_the_test_body_fails(realservers_dir: Path, mail_pki: MailPKI):
    workdir = realservers_dir / "dovecot-stop-test"
    with pytest.raises(_Boom):
        with running_dovecot(workdir, mail_pki) as instance:
            assert _processes_inside(workdir)
            raise _Boom
    assert _processes_inside(workdir) == []
    assert all(_connection_refused(e) for e in instance.endpoints.values())


def test_postfix_is_stopped_even_when_the_test_body_fails(realservers_dir: Path, mail_pki: MailPKI,
                                                         dovecot_server: DovecotInstance):
    workdir = realservers_dir / "postfix-stop-test"
    with pytest.raises(_Boom):
        with running_postfix(workdir, mail_pki, dovecot_server.sasl_socket) as instance:
            assert _processes_inside(workdir)
            raise _Boom
    assert _processes_inside(workdir) == []
    assert all(_connection_refused(e) for e in instance.endpoints.values())
