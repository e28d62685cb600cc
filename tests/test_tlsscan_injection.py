"""STARTTLS command injection (exporter/tlsscan/injection.py): the judging of the answers
(table-driven), in-process servers that are and are not vulnerable, for SMTP, IMAP and POP3,
and the real Postfix and Dovecot of the tests (not vulnerable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import MailProtocol, Module, StartTLS
from exporter.tlsscan.connection import Connector
from exporter.tlsscan.injection import answered_injected, check_starttls_injection
from tests.tlsservers.starttls_fake import FakeStartTLSServer, server_context

PROTOCOLS = {"smtp": MailProtocol.SMTP, "imap": MailProtocol.IMAP, "pop3": MailProtocol.POP3}


@pytest.mark.parametrize("family, lines, expected", [
    ("smtp", ["221 2.0.0 Bye"], False),
    ("smtp", ["250 2.0.0 Ok", "221 2.0.0 Bye"], True),
    ("smtp", ["250-a", "250 b", "221 Bye"], True),         # a multi-line reply counts once
    ("smtp", ["221-Bye", "221 now"], False),
    ("smtp", [], False),
    ("imap", ["* BYE Logging out", "Q1 OK Logout completed."], False),
    ("imap", ["I1 OK NOOP completed.", "* BYE", "Q1 OK"], True),
    ("pop3", ["+OK Logging out."], False),
    ("pop3", ["-ERR Unknown command: NOOP", "+OK Logging out."], True),
])
def test_answered_injected(family: str, lines: list[str], expected: bool):
    assert answered_injected(family, lines) is expected


def module_for(family: str, port: int) -> Module:
    return Module(name="scan", protocol=PROTOCOLS[family], port=port, starttls=StartTLS.REQUIRED,
                  timeout=5.0, interval=300.0)


async def check(host: str, port: int, family: str) -> tuple[bool | None, int]:
    connector = Connector(host, port, module_for(family, port), connection_timeout=5.0)
    return await check_starttls_injection(connector, module_for(family, port), "mail.good.test"), connector.connections


@pytest.mark.parametrize("family", PROTOCOLS)
@pytest.mark.parametrize("vulnerable", [True, False])
async def test_fake_servers(tmp_path: Path, family: str, vulnerable: bool):
    async with FakeStartTLSServer(family, server_context(tmp_path), vulnerable=vulnerable) as server:
        verdict, connections = await check("127.0.0.1", server.port, family)
    assert verdict is vulnerable
    assert connections == server.connections == 1


async def test_implicit_tls_is_not_checked():
    module = Module(name="scan", protocol=MailProtocol.SMTPS, port=465, starttls=StartTLS.NONE, timeout=1.0,
                    interval=300.0)
    connector = Connector("127.0.0.1", 465, module, connection_timeout=1.0)
    assert await check_starttls_injection(connector, module, "x.test") is None
    assert connector.connections == 0


@pytest.mark.integration
@pytest.mark.parametrize("endpoint, family", [("imap-good", "imap"), ("pop3-good", "pop3")])
async def test_real_dovecot_is_not_vulnerable(dovecot_server, endpoint: str, family: str):
    address = dovecot_server.endpoints[endpoint]
    verdict, connections = await check(address.host, address.port, family)
    assert verdict is False
    assert connections == 1


@pytest.mark.integration
async def test_real_postfix_is_not_vulnerable(postfix_server):
    endpoint = postfix_server.endpoints["smtp-good"]
    verdict, connections = await check(endpoint.host, endpoint.port, "smtp")
    assert verdict is False
    assert connections == 1
