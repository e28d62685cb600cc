"""Session resumption (tlsscan/resumption.py) and client-initiated renegotiation
(tlsscan/renegotiation.py) against the real servers of the tests: Postfix (SMTP STARTTLS),
Dovecot (IMAP STARTTLS, IMAPS, POP3S), `openssl s_server` with and without client
renegotiation and tickets, `gnutls-serv`. Each verdict is checked against `openssl s_client`
(`-sess_out` / `-sess_in`, and its `R` command) asked the same question, and asked twice of
our checks: a verdict must not change between two runs on an unchanged server."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from exporter.config import MailProtocol, Module, StartTLS
from exporter.tlsscan.connection import Connector
from exporter.tlsscan.renegotiation import MAX_RENEGOTIATIONS, check_client_renegotiation
from exporter.tlsscan.resumption import check_session_resumption
from exporter.tlsscan.results import ClientRenegotiation, Resumption, SessionResumption
from exporter.tlswire import ProtocolVersion
from tests.realservers.pki import MailPKI, generate_pki
from tests.tlsservers import gnutls_server, openssl_server

pytestmark = pytest.mark.integration

BOTH = (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2)
STARTTLS_NAMES = {MailProtocol.SMTP: "smtp", MailProtocol.IMAP: "imap", MailProtocol.POP3: "pop3"}


@pytest.fixture(scope="module")
def pki() -> MailPKI:
    directory = Path(tempfile.mkdtemp(prefix="mailsec-sessions-"))
    return generate_pki(directory)


def module_for(protocol: MailProtocol, port: int) -> Module:
    return Module(name="scan", protocol=protocol, port=port,
                  starttls=StartTLS.NONE if protocol.implicit_tls else StartTLS.REQUIRED, timeout=5.0, interval=300.0)


async def sessions(host: str, port: int, protocol: MailProtocol, versions=BOTH
                   ) -> tuple[SessionResumption, ClientRenegotiation, int]:
    module = module_for(protocol, port)
    connector = Connector(host, port, module, connection_timeout=5.0)
    resumption = await check_session_resumption(connector, module, "mail.good.test", versions)
    renegotiation = await check_client_renegotiation(connector, module, "mail.good.test", versions)
    return resumption, renegotiation, connector.connections


def s_client(host: str, port: int, *options: str, protocol: MailProtocol | None = None,
             commands: tuple[bytes, ...] = ()) -> str:
    """Run `openssl s_client`: each of `commands` typed a second apart, the first a second after
    the start, then end of input (after another second: TLS 1.3 tickets come after the handshake)."""
    command = ["openssl", "s_client", "-connect", f"{host}:{port}", *options]
    if protocol in STARTTLS_NAMES:
        command += ["-starttls", STARTTLS_NAMES[protocol]]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdin is not None
    for line in (*commands, b""):
        time.sleep(1.0)
        try:
            process.stdin.write(line)
            process.stdin.flush()
        except BrokenPipeError:
            break           # s_client is gone (a failed renegotiation ends it)
    try:
        return process.communicate(timeout=10)[0].decode(errors="replace")
    finally:
        process.kill()


def openssl_resumes(host: str, port: int, protocol: MailProtocol | None, tmp: Path, *options: str) -> bool:
    """`openssl s_client -sess_out`, then `-sess_in`: whether the second says "Reused"."""
    session = tmp / "session.pem"
    s_client(host, port, "-sess_out", str(session), *options, protocol=protocol)
    return "Reused," in s_client(host, port, "-sess_in", str(session), *options, protocol=protocol)


def openssl_renegotiates(host: str, port: int, protocol: MailProtocol | None) -> bool:
    """s_client's `R` command on TLS 1.2, twice: the second only runs if the first completed."""
    output = s_client(host, port, "-tls1_2", protocol=protocol, commands=(b"R\n", b"R\n"))
    return output.count("RENEGOTIATING") >= 2 and "no renegotiation" not in output


async def twice(host: str, port: int, protocol: MailProtocol, versions=BOTH
                ) -> tuple[SessionResumption, ClientRenegotiation, int]:
    """The checks, run twice: the verdicts must be the same."""
    first = await sessions(host, port, protocol, versions)
    second = await sessions(host, port, protocol, versions)
    assert first == second
    return first


def verdicts(resumption: SessionResumption, renegotiation: ClientRenegotiation) -> tuple:
    return (resumption.ticket.resumed, resumption.session_id.resumed, renegotiation.accepted, renegotiation.in_a_row)


def ground_truth(host: str, port: int, protocol: MailProtocol | None, tmp: Path) -> tuple:
    ticket = openssl_resumes(host, port, protocol, tmp)
    session_id = openssl_resumes(host, port, protocol, tmp, "-tls1_2", "-no_ticket")
    renegotiates = openssl_renegotiates(host, port, protocol)
    return ticket, session_id, renegotiates, MAX_RENEGOTIATIONS if renegotiates else 0


@pytest.mark.parametrize("name, protocol", [("smtp-good", MailProtocol.SMTP)])
async def test_postfix(postfix_server, tmp_path: Path, name: str, protocol: MailProtocol):
    # Postfix 3.7 without a session cache database: no resumption by ID; TLS 1.3 tickets (its
    # own ticket keys); OpenSSL 3 refuses client-initiated renegotiation by default.
    endpoint = postfix_server.endpoints[name]
    resumption, renegotiation, connections = await twice(endpoint.host, endpoint.port, protocol)
    assert verdicts(resumption, renegotiation) == (True, False, False, 0)
    assert verdicts(resumption, renegotiation) == ground_truth(endpoint.host, endpoint.port, protocol, tmp_path)
    assert resumption.ticket.version is ProtocolVersion.TLS1_3 and resumption.ticket_lifetime_hint == 7200
    assert renegotiation.detail == "refused: no renegotiation"
    assert connections == 5


@pytest.mark.parametrize("name, protocol", [("imaps-good", MailProtocol.IMAPS), ("imap-good", MailProtocol.IMAP),
                                            ("pop3s-good", MailProtocol.POP3S)])
async def test_dovecot(dovecot_server, tmp_path: Path, name: str, protocol: MailProtocol):
    # Dovecot 2.3 hands out TLS 1.3 tickets, but each login process has its own ticket key and
    # session cache: nothing resumes on the next connection. No client renegotiation.
    endpoint = dovecot_server.endpoints[name]
    resumption, renegotiation, connections = await twice(endpoint.host, endpoint.port, protocol)
    assert verdicts(resumption, renegotiation) == (False, False, False, 0)
    assert verdicts(resumption, renegotiation) == ground_truth(endpoint.host, endpoint.port, protocol, tmp_path)
    assert resumption.ticket.detail == "not resumed" and resumption.ticket_lifetime_hint == 7200
    assert connections == 5


@pytest.mark.parametrize("options, expected", [
    ((), (True, True, False, 0)),
    (("-client_renegotiation",), (True, True, True, MAX_RENEGOTIATIONS)),
    # TLS 1.3 resumes without tickets too (OpenSSL's stateful tickets, from its session cache).
    (("-no_ticket",), (True, True, False, 0)),
])
async def test_openssl_server(pki: MailPKI, tmp_path: Path, options: tuple[str, ...], expected: tuple):
    credential = pki.good_rsa
    with openssl_server("127.0.0.61", credential.chain_file, credential.leaf.key_file, *options) as port:
        resumption, renegotiation, connections = await twice("127.0.0.61", port, MailProtocol.SMTPS)
        assert verdicts(resumption, renegotiation) == expected == ground_truth("127.0.0.61", port, None, tmp_path)
    assert resumption.ticket.version is ProtocolVersion.TLS1_3 and resumption.session_id.version is ProtocolVersion.TLS1_2
    assert connections == 5


async def test_openssl_server_tls12_tickets(pki: MailPKI):
    credential = pki.good_rsa
    with openssl_server("127.0.0.61", credential.chain_file, credential.leaf.key_file, "-tls1_2") as port:
        resumption, _, _ = await twice("127.0.0.61", port, MailProtocol.SMTPS, (ProtocolVersion.TLS1_2,))
    assert resumption.ticket == Resumption(True, "resumed", ProtocolVersion.TLS1_2)
    assert resumption.ticket_lifetime_hint == 7200           # OpenSSL: the session timeout
    with openssl_server("127.0.0.61", credential.chain_file, credential.leaf.key_file, "-tls1_2", "-no_ticket") as port:
        resumption, _, connections = await twice("127.0.0.61", port, MailProtocol.SMTPS, (ProtocolVersion.TLS1_2,))
    assert resumption.ticket == Resumption(False, "no ticket given", ProtocolVersion.TLS1_2)
    assert resumption.ticket_lifetime_hint is None and resumption.session_id.resumed is True
    assert connections == 1 + 2 + 1       # no second connection for a ticket never given


async def test_tls13_only_server(pki: MailPKI):
    credential = pki.good_rsa
    with openssl_server("127.0.0.61", credential.chain_file, credential.leaf.key_file, "-tls1_3") as port:
        resumption, renegotiation, connections = await twice("127.0.0.61", port, MailProtocol.SMTPS,
                                                             (ProtocolVersion.TLS1_3,))
    assert resumption.ticket.resumed is True
    assert resumption.session_id.resumed is None and "no TLS 1.2" in resumption.session_id.detail
    assert renegotiation == ClientRenegotiation(None, None, "no TLS 1.2 (TLS 1.3 has no renegotiation)")
    assert connections == 2


async def test_gnutls_server(pki: MailPKI, tmp_path: Path):
    # GnuTLS accepts client-initiated (safe, RFC 5746) renegotiation by default.
    credential = pki.good_rsa
    with gnutls_server("127.0.0.62", credential.chain_file, credential.leaf.key_file, "NORMAL") as port:
        resumption, renegotiation, connections = await twice("127.0.0.62", port, MailProtocol.SMTPS)
        assert verdicts(resumption, renegotiation) == (True, True, True, MAX_RENEGOTIATIONS)
        assert verdicts(resumption, renegotiation) == ground_truth("127.0.0.62", port, None, tmp_path)
    assert resumption.ticket_lifetime_hint == 21600          # GnuTLS's default ticket lifetime, 6 h
    assert connections == 5


async def test_a_server_without_tls_completes_no_handshake():
    # Something that accepts hellos in the scan's eyes but no real handshake: one connection,
    # nothing else tried, every verdict None with the reason.
    import asyncio

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"\x15\x03\x03\x00\x02\x02\x28")    # a fatal handshake_failure alert
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        module = module_for(MailProtocol.SMTPS, port)
        connector = Connector("127.0.0.1", port, module, connection_timeout=5.0)
        resumption = await check_session_resumption(connector, module, "x.test", BOTH)
    assert resumption.handshake_completed is False
    assert resumption.ticket.resumed is None and resumption.ticket.detail.startswith("handshake failed: ")
    assert connector.connections == 1
