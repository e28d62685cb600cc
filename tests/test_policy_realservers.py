"""Mail-policy facts against real Postfix and Dovecot on loopback, and real DNS (Knot and
Unbound) for the PTR of the connected address.

Every expectation follows from how tests/realservers configured the scenario:
`smtpd_tls_security_level`, `smtpd_tls_auth_only`, `mynetworks`/`smtpd_relay_restrictions`,
Dovecot's `disable_plaintext_auth` and `auth_mechanisms = plain login`, the names given with
`myhostname`/`smtpd_banner`, and the DNS lab's PTR records.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Mapping

import pytest

from exporter.config import DNSSettings, Module, StartTLS, Target, TLSSettings
from exporter.config.model import OpenRelayTest
from exporter.dnsclient import DNSClient
from exporter.probes.endpoint import probe_endpoint
from exporter.results import AuthMechanism as M
from exporter.results import Capability as C
from exporter.results import EndpointResult
from exporter.results import NamePair as P
from tests.dnsfixtures import running_dns_lab
from tests.realservers import Endpoint

pytestmark = pytest.mark.integration

CANARY = "canary@example.org"   # never receives anything: the probe stops before DATA


async def probe(endpoint: Endpoint, dns: DNSSettings | None = None, **module_settings) -> EndpointResult:
    module = Module(
        name=endpoint.scenario, protocol=endpoint.protocol, port=endpoint.port,
        starttls=StartTLS.NONE if endpoint.protocol.implicit_tls else StartTLS.REQUIRED,
        timeout=10.0, interval=300.0,
        tls=TLSSettings(ca_file=endpoint.ca_file, server_name=endpoint.server_name), **module_settings,
    )
    target = Target(host=endpoint.host, port=endpoint.port, module=module.name)
    # Without check_ptr the probe asks no DNS question about an IP literal: no resolver needed.
    return await probe_endpoint(target, module, DNSClient(dns or DNSSettings()))


def sent_commands(result: EndpointResult) -> list[str]:
    return [line[3:] for line in result.transcript if line.startswith("C: ")]


ENFORCEMENT = {
    "submission-good": True,         # smtpd_tls_security_level = encrypt: 530 to MAIL FROM
    "submission-clear": False,       # may: MAIL FROM accepted in clear
    "smtp-good": False,              # port 25 with may, as a public MX must be
    "smtp-auth-before-tls": False,   # AUTH advertised in clear
    "smtps-good": None,              # implicit TLS: nothing in clear
    "imap-good": True,               # LOGINDISABLED, no AUTH= before STARTTLS
    "imap-plaintext-auth": False,
    "pop3-good": True,               # no USER, no SASL mechanism before STLS
    "pop3-plaintext-auth": False,
    "imaps-good": None,
}


@pytest.mark.parametrize("scenario", ENFORCEMENT)
async def test_starttls_enforcement(mail_endpoints: Mapping[str, Endpoint], scenario: str):
    result = await probe(mail_endpoints[scenario])
    assert result.success, result.transcript
    assert result.starttls_enforced is ENFORCEMENT[scenario]
    commands = sent_commands(result)
    assert not any(c.startswith(("DATA", "RCPT")) for c in commands)
    if scenario == "submission-clear":
        mail = commands.index("MAIL FROM:<>")
        assert commands[mail + 1] == "RSET" and commands.index("STARTTLS") > mail + 1
    if scenario == "submission-good":
        assert any(line.startswith("S: 530 5.7.0") for line in result.transcript), result.transcript
        assert "RSET" not in commands


async def test_smtp_capabilities_before_and_after_tls(mail_endpoints: Mapping[str, Endpoint]):
    result = await probe(mail_endpoints["smtp-good"])    # smtpd_tls_auth_only = yes
    before, after = result.offered_before_tls, result.offered_after_tls
    assert {C.STARTTLS, C.PIPELINING, C.EIGHTBITMIME, C.ENHANCEDSTATUSCODES} <= before.capabilities
    assert C.AUTH not in before.capabilities and before.auth_mechanisms == set()
    assert C.STARTTLS not in after.capabilities and C.AUTH in after.capabilities
    assert after.auth_mechanisms == {M.PLAIN, M.LOGIN}      # Dovecot's auth_mechanisms = plain login
    assert before.unknown == after.unknown == 0             # everything Postfix offers is on the list

    exposed = await probe(mail_endpoints["smtp-auth-before-tls"])   # smtpd_tls_auth_only = no
    assert exposed.offered_before_tls.auth_mechanisms == {M.PLAIN, M.LOGIN}


async def test_imap_and_pop3_capabilities_before_and_after_tls(mail_endpoints: Mapping[str, Endpoint]):
    imap = await probe(mail_endpoints["imap-good"])
    assert {C.STARTTLS, C.LOGINDISABLED, C.IMAP4REV1} <= imap.offered_before_tls.capabilities
    assert imap.offered_before_tls.auth_mechanisms == set()
    assert C.LOGINDISABLED not in imap.offered_after_tls.capabilities
    assert imap.offered_after_tls.auth_mechanisms == {M.PLAIN, M.LOGIN}
    clear = await probe(mail_endpoints["imap-plaintext-auth"])       # disable_plaintext_auth = no
    assert clear.offered_before_tls.auth_mechanisms == {M.PLAIN, M.LOGIN}
    assert C.LOGINDISABLED not in clear.offered_before_tls.capabilities

    pop3 = await probe(mail_endpoints["pop3-good"])
    assert C.STLS in pop3.offered_before_tls.capabilities
    assert C.USER not in pop3.offered_before_tls.capabilities
    assert pop3.offered_before_tls.auth_mechanisms == set()        # a bare "SASL" before STLS
    assert {C.USER, C.SASL} <= pop3.offered_after_tls.capabilities
    assert pop3.offered_after_tls.auth_mechanisms == {M.PLAIN, M.LOGIN}


RELAY = {
    "smtp-good": True,             # mynetworks = 127.0.0.0/8 holds the probe: relays for it
    "smtp-open-relay": True,       # smtpd_relay_restrictions = permit: relays for anybody
    "smtp-relay-refused": False,   # the probe outside mynetworks: 554 Relay access denied
}


def queued_files(queue_dir: Path) -> list[Path]:
    return [path for name in ("maildrop", "incoming", "active", "deferred", "hold")
            for path in (queue_dir / name).rglob("*") if path.is_file()]


async def queue_after_cleanup(queue_dir: Path) -> list[Path]:
    """The queue once Postfix's cleanup has dropped the file it opened for an accepted RCPT
    (RSET aborts it, asynchronously)."""
    deadline = time.monotonic() + 5
    while (files := queued_files(queue_dir)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return files


@pytest.mark.parametrize("scenario", RELAY)
async def test_open_relay(mail_endpoints: Mapping[str, Endpoint], postfix_server, scenario: str):
    result = await probe(mail_endpoints[scenario], open_relay_test=OpenRelayTest(recipient=CANARY))
    assert result.success, result.transcript
    assert result.open_relay is RELAY[scenario]
    commands = sent_commands(result)
    tls_start = commands.index("STARTTLS")
    assert commands[tls_start + 1:] == [
        "EHLO mailsec-exporter.localhost", "MAIL FROM:<>", f"RCPT TO:<{CANARY}>", "RSET", "QUIT"]
    assert await queue_after_cleanup(postfix_server.queue_dir) == []    # nothing queued, let alone sent
    assert "status=" not in postfix_server.maillog.read_text()


async def test_without_the_relay_test_nothing_is_sent_after_tls(mail_endpoints: Mapping[str, Endpoint]):
    result = await probe(mail_endpoints["smtp-open-relay"])
    assert result.open_relay is None
    commands = sent_commands(result)
    assert commands[commands.index("STARTTLS") + 1:] == ["EHLO mailsec-exporter.localhost", "QUIT"]


async def test_names_of_a_server_whose_names_disagree(mail_endpoints: Mapping[str, Endpoint]):
    # smtpd_banner greeting.other.test, myhostname mx1.good.test, certificate mail.good.test;
    # the address 127.77.1.1 has the PTR mx1.good.test, which resolves back to it.
    result = await probe(mail_endpoints["smtp-names-disagree"], running_dns_lab().resolver, check_ptr=True)
    assert result.success, result.transcript
    names = result.names
    assert (names.greeting_name, names.ehlo_name) == ("greeting.other.test", "mx1.good.test")
    assert names.ptr_names == names.ptr_confirmed == ("mx1.good.test",)
    assert names.cert_names == ("mail.good.test",)
    assert names.compared == set(P)
    assert names.disagreeing == {P.GREETING_EHLO, P.GREETING_PTR, P.GREETING_CERT, P.EHLO_CERT, P.PTR_CERT}


async def test_a_ptr_that_does_not_resolve_back_disagrees(mail_endpoints: Mapping[str, Endpoint]):
    result = await probe(mail_endpoints["smtp-ptr-unconfirmed"], running_dns_lab().resolver, check_ptr=True)
    names = result.names
    assert names.ptr_names == ("elsewhere.test",) and names.ptr_confirmed == ()
    assert names.disagreeing == {P.GREETING_PTR, P.EHLO_PTR, P.PTR_CERT}


async def test_agreeing_names_without_ptr_lookup(mail_endpoints: Mapping[str, Endpoint]):
    result = await probe(mail_endpoints["smtp-good"])     # myhostname = the certificate's name
    assert result.names.greeting_name == result.names.ehlo_name == "mail.good.test"
    assert result.names.ptr_names is None
    assert result.names.compared == {P.GREETING_EHLO, P.GREETING_CERT, P.EHLO_CERT}
    assert result.names.disagreeing == set()
