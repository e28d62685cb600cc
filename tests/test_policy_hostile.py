"""The mail-policy tests (STARTTLS enforcement, capabilities, names, open relay) against an
in-process SMTP fake that records every command it receives, for the edge cases a real
Postfix will not produce: AUTH spread over several lines, 500 capabilities, names in odd
case with final dots, a server that accepts MAIL FROM before TLS, odd replies.

What the fake received is asserted too: RSET after an accepted MAIL FROM, never DATA.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field, replace

import pytest

from exporter.config import DNSSettings, MailProtocol, Module, StartTLS, Target, TLSSettings
from exporter.config.model import OpenRelayTest
from exporter.dnsclient import DNSClient
from exporter.metrics.endpoint import ENDPOINT_METRICS, add_endpoint_samples
from exporter.metrics.specs import Families
from exporter.probes.endpoint import probe_endpoint
from exporter.results import AuthMechanism, Capability, EndpointResult, FailureReason, NamePair
from results_factory import host_result
from tests.hostile import FakeServer, issue, read_line, server_tls_context

TIMEOUT = 2.0
LOCAL_DNS = DNSClient(DNSSettings())   # targets are IP literals and check_ptr is off: never asked
CANARY = "canary@example.org"


@dataclass
class Fake:
    """A scripted SMTP server with STARTTLS; `received` is every command line, in order."""

    tls_context: ssl.SSLContext
    greeting: str = "220 mx.example.test ESMTP fake"
    ehlo_before_tls: tuple[str, ...] = ("mx.example.test", "PIPELINING", "STARTTLS")
    ehlo_after_tls: tuple[str, ...] = ("mx.example.test", "PIPELINING", "AUTH PLAIN")
    mail_reply: str = "530 5.7.0 Must issue a STARTTLS command first"
    mail_reply_in_tls: str = "250 2.1.0 Ok"
    rcpt_reply: str = "554 5.7.1 Relay access denied"
    received: list[str] = field(default_factory=list)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_tls = writer.get_extra_info("ssl_object") is not None   # implicit TLS
        writer.write(self.greeting.encode() + b"\r\n")
        while True:
            line = await read_line(reader)
            self.received.append(line)
            verb = line.split(":")[0].split(" ")[0].upper()
            if verb == "EHLO":
                lines = self.ehlo_after_tls if in_tls else self.ehlo_before_tls
                writer.write("".join(f"250-{text}\r\n" for text in lines[:-1]).encode()
                             + f"250 {lines[-1]}\r\n".encode())
            elif verb == "STARTTLS" and not in_tls:
                writer.write(b"220 2.0.0 go ahead\r\n")
                await writer.drain()
                await writer.start_tls(self.tls_context)
                in_tls = True
            elif verb == "MAIL":
                writer.write((self.mail_reply_in_tls if in_tls else self.mail_reply).encode() + b"\r\n")
            elif verb == "RCPT":
                writer.write(self.rcpt_reply.encode() + b"\r\n")
            elif verb == "RSET":
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:   # DATA included: the probe must never get here with it
                writer.write(b"502 5.5.2 not here\r\n")

    @property
    def verbs(self) -> list[str]:
        return [line.split(":")[0].split(" ")[0].upper() for line in self.received]


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A server context whose leaf has odd-case names with a final dot and a wildcard."""
    leaf = issue("mx.example.test", dns_names=("MX.Example.TEST.", "*.Mail.Example.Test"))
    return server_tls_context(leaf)


def smtp_module(relay: OpenRelayTest | None = None, protocol: MailProtocol = MailProtocol.SUBMISSION) -> Module:
    return Module(name="policy", protocol=protocol, port=587, starttls=StartTLS.REQUIRED, timeout=TIMEOUT,
                  interval=60, tls=TLSSettings(server_name="mx.example.test"), open_relay_test=relay)


async def run(fake: Fake, module: Module | None = None) -> EndpointResult:
    module = module or smtp_module()
    async with FakeServer(fake) as server:
        return await probe_endpoint(Target("127.0.0.1", server.port, module.name), module, LOCAL_DNS)


async def test_mail_accepted_before_tls_is_withdrawn_with_rset_and_never_followed_by_data(tls):
    fake = Fake(tls, mail_reply="250 2.1.0 Ok")
    result = await run(fake)
    assert result.success, result.transcript
    assert result.starttls_enforced is False
    assert fake.received[:3] == ["EHLO mailsec-exporter.localhost", "MAIL FROM:<>", "RSET"]
    assert fake.verbs[3:] == ["STARTTLS", "EHLO", "QUIT"]
    assert "DATA" not in fake.verbs and "RCPT" not in fake.verbs


@pytest.mark.parametrize("mail_reply, enforced", [
    ("530 5.7.0 Must issue a STARTTLS command first", True),
    ("530 Authentication required", True),                     # no enhanced code: 530 is enough
    ("550 5.7.1 Encryption required for requested authentication mechanism", True),
    ("554 5.7.10 Encryption needed", True),
    ("550 5.1.8 Sender address rejected", None),                # not about TLS: no verdict
    ("451 4.3.0 Try again later", None),                        # transient: no verdict
    ("503 5.5.1 Bad sequence", None),
])
async def test_enforcement_verdict_follows_the_reply_to_mail_from(tls, mail_reply, enforced):
    fake = Fake(tls, mail_reply=mail_reply)
    result = await run(fake)
    assert result.success, result.transcript
    assert result.starttls_enforced is enforced
    assert "RSET" not in fake.verbs[:fake.verbs.index("STARTTLS")]   # nothing to withdraw
    assert "DATA" not in fake.verbs


async def test_auth_spread_over_lines_before_tls_is_not_enforced_and_mail_from_is_not_tried(tls):
    fake = Fake(tls, ehlo_before_tls=("mx.example.test", "AUTH PLAIN", "auth login", "AUTH=CRAM-MD5 plain",
                                      "STARTTLS"))
    result = await run(fake)
    assert result.success, result.transcript
    assert result.starttls_enforced is False
    assert result.offered_before_tls.auth_mechanisms == {AuthMechanism.PLAIN, AuthMechanism.LOGIN,
                                                         AuthMechanism.CRAM_MD5}
    assert Capability.AUTH in result.offered_before_tls.capabilities
    assert "MAIL" not in fake.verbs[:fake.verbs.index("STARTTLS")]


async def test_500_capabilities_are_counted_and_the_labels_stay_bounded(tls):
    many = tuple(f"X-VENDOR-{n}" for n in range(500))
    fake = Fake(tls, ehlo_before_tls=("mx.example.test", *many, "STARTTLS"),
                ehlo_after_tls=("mx.example.test", *many, "AUTH PLAIN XFANCY"))
    result = await run(fake)
    assert result.success, result.transcript
    assert result.offered_before_tls.unknown == 500
    assert result.offered_after_tls.unknown == 501          # the mechanism XFANCY too
    families = Families(ENDPOINT_METRICS)
    add_endpoint_samples(families, Target("127.0.0.1", 587, "policy"), host_result(result))
    samples = {family.name: family.samples for family in families}
    assert len(samples["mailsec_capability_offered"]) == 2 * 13
    assert len(samples["mailsec_auth_mechanism_offered"]) == 2 * len(AuthMechanism)
    assert {s.labels["phase"]: s.value for s in samples["mailsec_capabilities_unknown"]} == {
        "before_tls": 500, "after_tls": 501}
    assert not any("X-VENDOR" in value for family in samples.values() for s in family for value in s.labels.values())


@pytest.mark.parametrize("greeting, ehlo, disagreeing", [
    # odd case and final dots; the certificate has "MX.Example.TEST." and "*.Mail.Example.Test"
    ("220 MX.EXAMPLE.test. ESMTP", "Mx.Example.Test.", set()),
    ("220 relay.mail.example.test ESMTP", "mx.example.test", {NamePair.GREETING_EHLO}),
    # a wildcard stands for exactly one label
    ("220 a.b.mail.example.test ESMTP", "mx.example.test", {NamePair.GREETING_EHLO, NamePair.GREETING_CERT}),
    ("220 mx.example.test", "other.example.test hello", {NamePair.GREETING_EHLO, NamePair.EHLO_CERT}),
])
async def test_names_are_compared_without_case_final_dots_and_by_rfc_6125(tls, greeting, ehlo, disagreeing):
    fake = Fake(tls, greeting=greeting, ehlo_before_tls=(ehlo, "STARTTLS"))
    result = await run(fake)
    assert result.success, result.transcript
    assert result.names.compared == {NamePair.GREETING_EHLO, NamePair.GREETING_CERT, NamePair.EHLO_CERT}
    assert result.names.disagreeing == disagreeing


async def test_a_greeting_without_a_host_name_compares_nothing_with_it(tls):
    fake = Fake(tls, greeting="220 [192.0.2.1] ESMTP")
    result = await run(fake)
    assert result.names.greeting_name is None
    assert result.names.compared == {NamePair.EHLO_CERT}


@pytest.mark.parametrize("mail_reply, rcpt_reply, relays, verbs_after_ehlo", [
    ("250 2.1.0 Ok", "250 2.1.5 Ok", True, ["MAIL", "RCPT", "RSET", "QUIT"]),
    ("250 2.1.0 Ok", "251 2.1.5 will forward", True, ["MAIL", "RCPT", "RSET", "QUIT"]),
    ("250 2.1.0 Ok", "554 5.7.1 Relay access denied", False, ["MAIL", "RCPT", "RSET", "QUIT"]),
    ("250 2.1.0 Ok", "450 4.7.1 Greylisted", None, ["MAIL", "RCPT", "RSET", "QUIT"]),
    ("553 5.7.1 Sender refused", None, False, ["MAIL", "RSET", "QUIT"]),
    ("451 4.3.0 Later", None, None, ["MAIL", "RSET", "QUIT"]),
])
async def test_open_relay_test_inside_tls(tls, mail_reply, rcpt_reply, relays, verbs_after_ehlo):
    fake = Fake(tls, mail_reply_in_tls=mail_reply, rcpt_reply=rcpt_reply or "500 unused")
    result = await run(fake, smtp_module(OpenRelayTest(recipient=CANARY, sender="probe@example.net"),
                                         protocol=MailProtocol.SMTP))
    assert result.success, result.transcript
    assert result.open_relay is relays
    tls_start = fake.verbs.index("STARTTLS")
    assert fake.verbs[tls_start + 2:] == verbs_after_ehlo
    assert "MAIL FROM:<probe@example.net>" in fake.received[tls_start:]
    if rcpt_reply:
        assert f"RCPT TO:<{CANARY}>" in fake.received
    assert "DATA" not in fake.verbs


async def test_the_null_sender_is_the_default_and_no_relay_test_runs_unless_configured(tls):
    fake = Fake(tls, mail_reply_in_tls="250 2.1.0 Ok", rcpt_reply="250 2.1.5 Ok")
    result = await run(fake, smtp_module(OpenRelayTest(recipient=CANARY)))
    assert result.open_relay is True
    assert fake.received[-4:-2] == ["MAIL FROM:<>", f"RCPT TO:<{CANARY}>"]
    fake = Fake(tls, mail_reply_in_tls="250 2.1.0 Ok", rcpt_reply="250 2.1.5 Ok")
    result = await run(fake, smtp_module(None))
    assert result.open_relay is None
    assert "RCPT" not in fake.verbs


async def test_421_to_mail_from_fails_the_probe_as_service_unavailable(tls):
    fake = Fake(tls, mail_reply="421 4.7.0 closing")
    result = await run(fake)
    assert result.failure is FailureReason.SERVICE_UNAVAILABLE
    assert "421" in result.failure_detail


async def test_implicit_tls_has_no_before_tls_facts_and_no_enforcement(tls):
    module = replace(smtp_module(), protocol=MailProtocol.SMTPS, starttls=StartTLS.NONE)
    fake = Fake(tls)
    async with FakeServer(fake, tls) as server:
        result = await probe_endpoint(Target("127.0.0.1", server.port, "policy"), module, LOCAL_DNS)
    assert result.success, result.transcript
    assert result.offered_before_tls is None and result.starttls_enforced is None
    assert result.offered_after_tls.auth_mechanisms == {AuthMechanism.PLAIN}
    assert "MAIL" not in fake.verbs
