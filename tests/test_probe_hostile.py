"""The mail-endpoint probe against in-process fake servers, good and hostile.

Every hostile server must end as the right labelled failure, within the module's
timeout, without disturbing a good probe running at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import tracemalloc

import pytest

from exporter.config import DNSSettings, Module, Nameserver, MailProtocol, StartTLS, Target, TLSSettings
from exporter.dnsclient import DNSClient
from exporter.probes.endpoint import probe_endpoint
from exporter.results import EndpointResult, FailureReason
from tests.hostile import (
    FakeServer,
    Script,
    closed_port,
    drips,
    floods,
    imap_server,
    issue,
    pop3_server,
    sends,
    server_tls_context,
    silent,
    smtp_server,
    write_pem,
)

TIMEOUT = 1.5
MARGIN = 0.5
SERVER_NAME = "mx.example.test"
LOCAL_DNS = DNSClient(DNSSettings())   # targets are IP literals: it is never asked


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = issue("Test Root CA", is_ca=True)
    leaf = issue(SERVER_NAME, issuer=root, dns_names=(SERVER_NAME,))
    ca_file = write_pem(str(tmp_path_factory.mktemp("pki")), "root.pem", root)
    return server_tls_context(leaf), ca_file


def module(protocol: MailProtocol, starttls: StartTLS = StartTLS.REQUIRED, ca_file: str | None = None,
           server_name: str | None = SERVER_NAME) -> Module:
    return Module(
        name=f"{protocol}_test", protocol=protocol, port=protocol.default_port, starttls=starttls,
        timeout=TIMEOUT, interval=60, tls=TLSSettings(ca_file=ca_file, server_name=server_name),
    )


async def probe(port: int, mod: Module, host: str = "127.0.0.1", dns=LOCAL_DNS) -> EndpointResult:
    result = await probe_endpoint(Target(host, port, mod.name), mod, dns)
    assert result.duration_seconds < TIMEOUT + MARGIN
    assert result.success is (result.failure is None)
    return result


async def probe_server(handler, mod: Module, tls_context=None) -> EndpointResult:
    async with FakeServer(handler, tls_context) as server:
        return await probe(server.port, mod)


# --- good servers ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "protocol, server, capability_after_tls",
    [
        (MailProtocol.SMTP, smtp_server, "AUTH PLAIN LOGIN"),
        (MailProtocol.SUBMISSION, smtp_server, "AUTH PLAIN LOGIN"),
        (MailProtocol.IMAP, imap_server, "AUTH=PLAIN"),
        (MailProtocol.POP3, pop3_server, "USER"),
    ],
)
async def test_starttls_success(pki, protocol, server, capability_after_tls):
    tls_context, ca_file = pki
    result = await probe_server(server(Script(tls_context=tls_context, plaintext_auth=False)),
                                module(protocol, ca_file=ca_file))
    assert result.success, result.failure_detail
    assert result.address == "127.0.0.1"
    assert result.starttls_offered is True
    assert result.plaintext_auth_exposed is False
    assert capability_after_tls in result.capabilities_after_tls
    assert capability_after_tls not in result.capabilities_before_tls
    assert result.tls.version in ("TLSv1.2", "TLSv1.3") and result.tls.cipher
    assert result.tls.leaf.subject == f"CN={SERVER_NAME}"
    assert (result.tls.chain_valid, result.tls.chain_error) == (True, None)
    assert result.tls.hostname_valid and result.tls.verified_name == SERVER_NAME
    assert None not in (result.connect_seconds, result.greeting_seconds, result.tls_handshake_seconds)
    assert any(line.startswith("TLS: TLSv1.") for line in result.transcript)


@pytest.mark.parametrize(
    "protocol, server", [(MailProtocol.SMTPS, smtp_server), (MailProtocol.IMAPS, imap_server), (MailProtocol.POP3S, pop3_server)]
)
async def test_implicit_tls_success(pki, protocol, server):
    tls_context, ca_file = pki
    result = await probe_server(server(Script()), module(protocol, StartTLS.NONE, ca_file), tls_context)
    assert result.success, result.failure_detail
    assert (result.starttls_offered, result.plaintext_auth_exposed, result.capabilities_before_tls) == (None, None, ())
    assert result.capabilities_after_tls and result.tls.chain_valid and result.tls.hostname_valid
    assert result.greeting_seconds is not None


async def test_certificate_facts_are_collected_even_when_invalid(pki):
    tls_context, _ = pki
    result = await probe_server(smtp_server(Script(tls_context=tls_context)),
                                module(MailProtocol.SMTP, server_name="other.example.test"))
    assert result.success   # judging the certificate is the metrics' job, not a probe failure
    assert result.plaintext_auth_exposed is True
    assert result.tls.chain_valid is False
    assert result.tls.chain_error == "unable to get local issuer certificate"
    assert result.tls.hostname_valid is False and result.tls.verified_name == "other.example.test"
    assert result.tls.leaf.subject == f"CN={SERVER_NAME}"


async def test_starttls_optional_and_not_offered_is_a_plaintext_success():
    result = await probe_server(smtp_server(Script()), module(MailProtocol.SMTP, StartTLS.OPTIONAL))
    assert result.success
    assert (result.starttls_offered, result.tls, result.plaintext_auth_exposed) == (False, None, True)


async def test_starttls_none_does_not_upgrade(pki):
    tls_context, _ = pki
    result = await probe_server(imap_server(Script(tls_context=tls_context)), module(MailProtocol.IMAP, StartTLS.NONE))
    assert result.success
    assert result.starttls_offered is True and result.tls is None
    assert not any(line.endswith("STARTTLS") for line in result.transcript if line.startswith("C:"))


async def test_the_next_address_is_tried_after_a_refusal(pki):
    class TwoAddresses:
        async def resolve_addresses(self, host: str) -> list[str]:
            return ["127.0.0.2", "127.0.0.1"]   # nothing listens on 127.0.0.2

    tls_context, _ = pki
    async with FakeServer(smtp_server(Script(tls_context=tls_context))) as server:
        result = await probe(server.port, module(MailProtocol.SMTP), host="mx.example.test", dns=TwoAddresses())
    assert result.success and result.address == "127.0.0.1"


# --- hostile servers ------------------------------------------------------------------

HOSTILE_CASES = {
    "greeting never sent": (silent, MailProtocol.SMTP, FailureReason.TIMEOUT),
    "a line that never ends": (drips(b"220 slowly"), MailProtocol.SMTP, FailureReason.TIMEOUT),
    "a 10 MB banner line": (sends(b"220 " + b"x" * 10_000_000), MailProtocol.SMTP, FailureReason.PROTOCOL_ERROR),
    "endless continuation lines": (sends(b"220-more\r\n" * 100_000), MailProtocol.SMTP, FailureReason.PROTOCOL_ERROR),
    "a 100 MB flood": (floods(100 * 1024 * 1024), MailProtocol.SMTP, FailureReason.PROTOCOL_ERROR),
    "SSH instead of SMTP": (sends(b"SSH-2.0-OpenSSH_9.2p1\r\n"), MailProtocol.SMTP, FailureReason.PROTOCOL_ERROR),
    "binary garbage": (sends(bytes(range(256)) * 4), MailProtocol.SMTP, FailureReason.PROTOCOL_ERROR),
    "421 greeting": (sends(b"421 4.3.2 Service shutting down\r\n"), MailProtocol.SMTP, FailureReason.SERVICE_UNAVAILABLE),
    "554 greeting": (sends(b"554 5.7.1 No SMTP service\r\n"), MailProtocol.SUBMISSION, FailureReason.SERVICE_UNAVAILABLE),
    "354 greeting": (sends(b"354 go ahead\r\n"), MailProtocol.SMTP, FailureReason.PROTOCOL_ERROR),
    "closed after the greeting": (sends(b"220 hi\r\n", then_hang=False), MailProtocol.SMTP, FailureReason.CONNECTION_ERROR),
    "IMAP BYE": (sends(b"* BYE Too many connections\r\n"), MailProtocol.IMAP, FailureReason.SERVICE_UNAVAILABLE),
    "IMAP greeting garbage": (sends(b"220 smtp here\r\n"), MailProtocol.IMAP, FailureReason.PROTOCOL_ERROR),
    "POP3 -ERR": (sends(b"-ERR [SYS/TEMP] busy\r\n"), MailProtocol.POP3, FailureReason.SERVICE_UNAVAILABLE),
    "POP3 greeting garbage": (sends(b"* OK imap here\r\n"), MailProtocol.POP3, FailureReason.PROTOCOL_ERROR),
}


@pytest.mark.parametrize("case", HOSTILE_CASES)
async def test_hostile_server(case):
    handler, protocol, reason = HOSTILE_CASES[case]
    result = await probe_server(handler, module(protocol))
    assert result.failure is reason, result.failure_detail
    assert result.address == "127.0.0.1" and result.connect_seconds is not None


async def test_fast_failures_do_not_wait_for_the_timeout():
    result = await probe_server(sends(b"220 " + b"x" * 10_000_000), module(MailProtocol.SMTP))
    assert result.failure is FailureReason.PROTOCOL_ERROR
    assert result.duration_seconds < TIMEOUT / 3


STARTTLS_CASES = {
    "TLS garbage after STARTTLS": (Script(garbage_instead_of_tls=b"HTTP/1.0 400 Bad Request\r\n\r\n"),
                                   FailureReason.TLS_HANDSHAKE_ERROR),
    "reset during the handshake": (Script(reset_during_handshake=True), FailureReason.TLS_HANDSHAKE_ERROR),
    "closed right after the STARTTLS reply": (Script(close_after_starttls_reply=True),
                                              FailureReason.TLS_HANDSHAKE_ERROR),
    "bytes injected after the STARTTLS reply": (Script(after_starttls_reply=b"250 injected\r\n"),
                                                FailureReason.PROTOCOL_ERROR),
    "STARTTLS refused": (Script(starttls_reply="454 4.7.0 TLS not available due to local problem"),
                         FailureReason.STARTTLS_REFUSED),
}


@pytest.mark.parametrize("protocol, server", [(MailProtocol.SMTP, smtp_server), (MailProtocol.IMAP, imap_server),
                                              (MailProtocol.POP3, pop3_server)])
@pytest.mark.parametrize("case", STARTTLS_CASES)
async def test_hostile_starttls(pki, case, protocol, server):
    tls_context, _ = pki
    script, reason = STARTTLS_CASES[case]
    if script.starttls_reply and protocol is not MailProtocol.SMTP:
        script = Script(starttls_reply={MailProtocol.IMAP: "NO TLS unavailable", MailProtocol.POP3: "-ERR no TLS"}[protocol])
    result = await probe_server(server(Script(**{**script.__dict__, "tls_context": tls_context})), module(protocol))
    assert result.failure is reason, result.failure_detail
    assert result.starttls_offered is True and result.tls is None


@pytest.mark.parametrize("protocol, server", [(MailProtocol.SMTP, smtp_server), (MailProtocol.IMAP, imap_server),
                                              (MailProtocol.POP3, pop3_server)])
async def test_starttls_required_but_not_offered(protocol, server):
    result = await probe_server(server(Script()), module(protocol, StartTLS.REQUIRED))
    assert result.failure is FailureReason.STARTTLS_NOT_OFFERED
    assert result.starttls_offered is False and result.plaintext_auth_exposed is True
    assert result.capabilities_before_tls and result.tls is None


async def test_tls_handshake_failure_carries_openssl_message(pki):
    tls_context, _ = pki
    script = Script(tls_context=tls_context, garbage_instead_of_tls=b"HTTP/1.0 400 Bad Request\r\n\r\n")
    result = await probe_server(smtp_server(script), module(MailProtocol.SMTP))
    assert result.failure_detail == "[SSL: WRONG_VERSION_NUMBER] wrong version number"


async def test_connection_refused():
    result = await probe(closed_port(), module(MailProtocol.SMTP))
    assert result.failure is FailureReason.CONNECTION_REFUSED
    assert result.address == "127.0.0.1"


async def test_connect_timeout():
    # A listener whose accept queue is full and never served: the kernel drops new SYNs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.create_connection(("127.0.0.1", port)) for _ in range(1)]
        try:
            result = await probe(port, module(MailProtocol.SMTP))
        finally:
            for filler in fillers:
                filler.close()
    assert result.failure is FailureReason.CONNECT_TIMEOUT, result.failure_detail


async def test_dns_error():
    unanswered = DNSClient(DNSSettings(nameservers=(Nameserver("127.0.0.1", closed_port(socket.SOCK_DGRAM)),),
                                       timeout=0.5, retries=0))
    result = await probe(25, module(MailProtocol.SMTP), host="x.invalid", dns=unanswered)
    assert result.failure is FailureReason.DNS_ERROR
    assert result.address is None


async def test_hostile_servers_do_not_hold_up_a_good_probe(pki):
    tls_context, ca_file = pki
    hostile = [silent, drips(b"220 slow"), sends(b"220 " + b"x" * 10_000_000), sends(b"421 busy\r\n")]
    async with contextlib.AsyncExitStack() as servers:
        good = await servers.enter_async_context(FakeServer(smtp_server(Script(tls_context=tls_context))))
        bad = [await servers.enter_async_context(FakeServer(handler)) for handler in hostile]
        started = time.monotonic()
        results = await asyncio.gather(
            *(probe(server.port, module(MailProtocol.SMTP)) for server in bad),
            probe(good.port, module(MailProtocol.SMTP, ca_file=ca_file)),
        )
    good_result = results[-1]
    assert good_result.success, good_result.failure_detail
    assert good_result.duration_seconds < TIMEOUT / 2
    assert [result.failure for result in results[:-1]] == [
        FailureReason.TIMEOUT, FailureReason.TIMEOUT, FailureReason.PROTOCOL_ERROR, FailureReason.SERVICE_UNAVAILABLE,
    ]
    assert time.monotonic() - started < TIMEOUT + MARGIN


# --- TLS settings ---------------------------------------------------------------------

@pytest.mark.parametrize("server_name, expected_sni", [("mx.example.test", "mx.example.test"), (None, None)])
async def test_sni_is_the_server_name_and_never_an_ip_literal(server_name, expected_sni):
    leaf = issue(SERVER_NAME, dns_names=(SERVER_NAME,))
    tls_context = server_tls_context(leaf)
    seen = []
    tls_context.sni_callback = lambda ssl_object, name, context: seen.append(name)
    result = await probe_server(smtp_server(Script(tls_context=tls_context)),
                                module(MailProtocol.SMTP, server_name=server_name))
    assert result.success, result.failure_detail
    assert seen == [expected_sni]
    assert result.tls.verified_name == (server_name or "127.0.0.1")


async def test_max_version_is_applied(pki):
    tls_context, _ = pki
    mod = module(MailProtocol.SMTP)
    capped = Module(**{**mod.__dict__, "tls": TLSSettings(max_version="TLSv1.2")})
    result = await probe_server(smtp_server(Script(tls_context=tls_context)), capped)
    assert result.success and result.tls.version == "TLSv1.2"


async def test_a_version_the_server_refuses_is_a_handshake_error():
    strict = server_tls_context(issue(SERVER_NAME, dns_names=(SERVER_NAME,)))
    strict.minimum_version = ssl.TLSVersion.TLSv1_3
    mod = module(MailProtocol.SMTP)
    capped = Module(**{**mod.__dict__, "tls": TLSSettings(max_version="TLSv1.2")})
    result = await probe_server(smtp_server(Script(tls_context=strict)), capped)
    # (asyncio's server side closes without a protocol_version alert, so no detail check)
    assert result.failure is FailureReason.TLS_HANDSHAKE_ERROR


async def test_a_1_mb_certificate_chain_ends_as_a_handshake_error_in_bounded_memory():
    # 20,000 subjectAltNames of ~50 characters: a leaf of about 1 MB.
    names = tuple(f"host{i:05d}-{'x' * 40}.example.test" for i in range(20_000))
    huge = issue(SERVER_NAME, dns_names=names)
    assert len(huge.der) > 1_000_000
    tracemalloc.start()
    try:
        result = await probe_server(smtp_server(Script()), module(MailProtocol.SMTPS, StartTLS.NONE),
                                    tls_context=server_tls_context(huge))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # OpenSSL refuses a certificate list over 100 KiB: the chain is never buffered whole.
    assert result.failure is FailureReason.TLS_HANDSHAKE_ERROR, result.failure_detail
    assert peak < 4 * 1024 * 1024
