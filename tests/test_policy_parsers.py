"""The pure parts of the mail-policy facts: capability classification, the verdicts on
SMTP replies, name comparison, the config keys, findings and the debug report."""

from __future__ import annotations

from dataclasses import replace

import pytest

from exporter.certs import certificate_info
from exporter.config import ConfigError, MailProtocol, Target, load_config
from exporter.config.model import OpenRelayTest
from exporter.domains.report import endpoint_findings, policy_findings
from exporter.probes.mailproto import PlaintextFacts
from exporter.probes.names import compare_names, leading_host_name
from exporter.probes.policy import (
    classify_capabilities,
    mail_refused_for_policy,
    mailbox_starttls_enforced,
    relay_verdict,
)
from exporter.probes.report import debug_report
from exporter.results import AuthMechanism as M
from exporter.results import Capability as C
from exporter.results import NamePair as P

from results_factory import host_result, self_signed_der, tls_result



@pytest.mark.parametrize("family, capabilities, offered, mechanisms, unknown", [
    ("smtp", ("PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME"), {C.PIPELINING, C.SIZE, C.STARTTLS, C.EIGHTBITMIME},
     set(), 0),
    # AUTH over several lines, Postfix's AUTH= form, lower-case mechanisms, an unknown one
    ("smtp", ("AUTH PLAIN", "AUTH login", "AUTH=CRAM-MD5 XFOO"), {C.AUTH}, {M.PLAIN, M.LOGIN, M.CRAM_MD5}, 1),
    ("smtp", ("REQUIRETLS", "SMTPUTF8", "CHUNKING", "X-EXPS GSSAPI NTLM", "XCLIENT NAME ADDR"),
     {C.REQUIRETLS, C.SMTPUTF8, C.CHUNKING}, set(), 2),
    ("smtp", ("X-A", "X-A", "X-B"), set(), set(), 2),                 # distinct names counted
    ("smtp", ("LOGINDISABLED", "USER"), set(), set(), 2),             # other families' keywords
    ("imap", ("IMAP4REV1", "SASL-IR", "LITERAL+", "STARTTLS", "LOGINDISABLED", "I18NLEVEL=1"),
     {C.IMAP4REV1, C.SASL_IR, C.LITERAL_PLUS, C.STARTTLS, C.LOGINDISABLED}, set(), 1),
    ("imap", ("AUTH=PLAIN", "AUTH=SCRAM-SHA-256-PLUS", "AUTH=X-WEIRD", "ID", "IDLE"), {C.ID, C.IDLE},
     {M.PLAIN, M.SCRAM_SHA_256_PLUS}, 1),
    ("pop3", ("CAPA", "TOP", "USER", "SASL PLAIN LOGIN", "IMPLEMENTATION Dovecot", "STLS"),
     {C.CAPA, C.TOP, C.USER, C.SASL, C.IMPLEMENTATION, C.STLS}, {M.PLAIN, M.LOGIN}, 0),
    ("pop3", ("PIPELINING", "EXPIRE NEVER", "X-FOO"), {C.PIPELINING, C.EXPIRE}, set(), 1),
    ("smtp", (), set(), set(), 0),
])
def test_classify_capabilities(family, capabilities, offered, mechanisms, unknown):
    result = classify_capabilities(family, capabilities)
    assert (result.capabilities, result.auth_mechanisms, result.unknown) == (offered, mechanisms, unknown)


@pytest.mark.parametrize("code, text, verdict", [
    (250, "2.1.0 Ok", False),
    (530, "5.7.0 Must issue a STARTTLS command first", True),
    (530, "Must issue a STARTTLS command first", True),
    (550, "5.7.1 TLS required", True),
    (554, "5.7.10 Encryption needed", True),
    (550, "5.1.8 Sender domain unknown", None),
    (550, "Sender refused", None),
    (553, "5.7", None),                  # not an enhanced code
    (451, "4.7.0 Try later", None),
    (454, "4.7.0 TLS not available", None),
])
def test_mail_refused_for_policy(code, text, verdict):
    assert mail_refused_for_policy(code, text) is verdict


@pytest.mark.parametrize("mail, rcpt, verdict", [
    (250, 250, True), (250, 251, True), (250, 252, True), (250, 550, False), (250, 554, False),
    (250, 450, None), (250, 451, None), (550, None, False), (451, None, None),
])
def test_relay_verdict(mail, rcpt, verdict):
    assert relay_verdict(mail, rcpt) is verdict


def _plaintext(offered: bool, exposed: bool | None, capabilities: tuple[str, ...] = ()) -> PlaintextFacts:
    return PlaintextFacts(tls_starts=offered, starttls_offered=offered, capabilities=capabilities,
                          plaintext_auth_exposed=exposed, greeting_seconds=0.0)


@pytest.mark.parametrize("family, capabilities, starttls, exposed, enforced", [
    ("imap", ("IMAP4REV1", "STARTTLS", "LOGINDISABLED"), True, False, True),
    ("imap", ("IMAP4REV1", "STARTTLS"), True, True, False),                       # LOGIN allowed
    ("imap", ("STARTTLS", "LOGINDISABLED", "AUTH=CRAM-MD5"), True, False, False),  # a login in clear
    ("imap", ("LOGINDISABLED",), False, False, False),                              # no STARTTLS at all
    ("pop3", ("STLS", "TOP"), True, False, True),
    ("pop3", ("STLS", "USER"), True, True, False),
    ("pop3", ("STLS", "SASL CRAM-MD5"), True, False, False),
    ("pop3", ("STLS", "SASL"), True, False, True),               # Dovecot before STLS: no mechanism
    ("pop3", ("STLS", "SASL X-VENDOR"), True, False, False),     # an unknown mechanism is a login too
    ("imap", ("STARTTLS", "LOGINDISABLED", "AUTH=X-VENDOR"), True, False, False),
    ("pop3", (), True, None, None),                                                 # no CAPA
])
def test_mailbox_starttls_enforced(family, capabilities, starttls, exposed, enforced):
    offered = classify_capabilities(family, capabilities)
    assert mailbox_starttls_enforced(_plaintext(starttls, exposed, capabilities), offered) is enforced


@pytest.mark.parametrize("text, name", [
    ("mx.example.org ESMTP Postfix", "mx.example.org"),
    ("MX.Example.ORG. ready", "mx.example.org"),
    ("localhost", "localhost"),
    ("[192.0.2.1] ESMTP", None),
    ("", None),
    ("   ", None),
    (None, None),
    ("-bad-.example ESMTP", None),
    ("mx..example.org", None),
    ("a" * 300 + ".org", None),
])
def test_leading_host_name(text, name):
    assert leading_host_name(text) == name


LEAF = certificate_info(self_signed_der("mail.example.test"))


@pytest.mark.parametrize("greeting, ehlo, ptr, compared, disagreeing", [
    ("mail.example.test ESMTP", "MAIL.example.test.", None,
     {P.GREETING_EHLO, P.GREETING_CERT, P.EHLO_CERT}, set()),
    ("mail.example.test", "mail.example.test", (("mail.example.test",), ("mail.example.test",)),
     set(P), set()),
    # a PTR that does not resolve back does not count: every PTR pair disagrees
    ("mail.example.test", "mail.example.test", (("mail.example.test",), ()),
     set(P), {P.GREETING_PTR, P.EHLO_PTR, P.PTR_CERT}),
    # one of several confirmed PTR names is enough
    ("mail.example.test", None, (("a.test", "mail.example.test"), ("a.test", "mail.example.test")),
     {P.GREETING_PTR, P.GREETING_CERT, P.PTR_CERT}, set()),
    ("[192.0.2.1]", "other.test", (("other.test",), ("other.test",)),
     {P.EHLO_PTR, P.EHLO_CERT, P.PTR_CERT}, {P.EHLO_CERT, P.PTR_CERT}),
])
def test_compare_names(greeting, ehlo, ptr, compared, disagreeing):
    facts = compare_names(greeting, ehlo, ptr, LEAF)
    assert facts.compared == compared
    assert facts.disagreeing == disagreeing
    assert facts.cert_names == ("mail.example.test",)


def test_without_tls_no_certificate_pair_is_compared():
    assert compare_names("a.test", "b.test", None, None).compared == {P.GREETING_EHLO}


# --- config -----------------------------------------------------------------------------

def _load(tmp_path, module_yaml: str):
    path = tmp_path / "config.yml"
    path.write_text("modules:\n  mine:\n" + module_yaml)
    return load_config(str(path))


def test_open_relay_test_and_check_ptr_are_read(tmp_path):
    config = _load(tmp_path, "    protocol: smtp\n    check_ptr: true\n"
                             "    open_relay_test: {recipient: Canary@Example.ORG., sender: probe@example.net}\n")
    module = config.modules["mine"]
    assert module.open_relay_test == OpenRelayTest(recipient="Canary@example.org", sender="probe@example.net")
    assert module.check_ptr is True
    assert config.modules["smtp"].open_relay_test is None and config.modules["smtp"].check_ptr is False
    config = _load(tmp_path, "    protocol: submission\n    open_relay_test: {recipient: c@example.org, sender: '<>'}\n")
    assert config.modules["mine"].open_relay_test.sender == ""


@pytest.mark.parametrize("module_yaml, line, reason", [
    ("    protocol: smtp\n    open_relay_test: {}\n", 4, "modules.mine.open_relay_test: 'recipient' is required"),
    ("    protocol: smtp\n    open_relay_test:\n", 4, "modules.mine.open_relay_test: 'recipient' is required"),
    ("    protocol: smtp\n    open_relay_test:\n      recipient: '<>'\n", 5,
     "modules.mine.open_relay_test.recipient: '<>' is not a mail address"),
    ("    protocol: smtp\n    open_relay_test:\n      recipient: c@example.org\n      sender: a b@x.org\n", 6,
     "modules.mine.open_relay_test.sender: 'a b@x.org' is not a mail address"),
    ("    protocol: smtp\n    open_relay_test: {recipient: canary@-bad-.org}\n", 4,
     "modules.mine.open_relay_test.recipient: 'canary@-bad-.org': the domain"),
    ("    protocol: smtp\n    open_relay_test: {recipient: c@example.org, data: yes}\n", 4,
     "modules.mine.open_relay_test.data: unknown key"),
    ("    protocol: imap\n    open_relay_test: {recipient: c@example.org}\n", 4,
     "modules.mine.open_relay_test: only SMTP modules can relay mail, this one is imap"),
    ("    protocol: pop3\n    check_ptr: true\n", 4,
     "modules.mine.check_ptr: only SMTP modules have their names compared, this one is pop3"),
    ("    protocol: smtp\n    check_ptr: 'yes'\n", 4, "modules.mine.check_ptr: must be true or false"),
])
def test_bad_policy_keys_are_refused_with_file_and_line(tmp_path, module_yaml, line, reason):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, module_yaml)
    assert caught.value.line == line
    assert caught.value.reason.startswith(reason), caught.value.reason


# --- findings and the debug report -----------------------------------------------------

SUBMISSION = Target("mx.example.test", 587, "submission")


def _codes(target, result):
    return {finding.code for finding in policy_findings(target, result)}


def test_findings_of_the_policy_facts():
    good = tls_result()
    assert _codes(SUBMISSION, good) == set()
    relay = replace(good, open_relay=True)
    assert _codes(SUBMISSION, relay) == {"open_relay"}
    clear = replace(good, protocol=MailProtocol.SUBMISSION, starttls_enforced=False)
    assert _codes(SUBMISSION, clear) == {"starttls_not_enforced"}
    # not on port 25: a public MX must not enforce STARTTLS (RFC 3207)
    assert _codes(Target("mx.example.test", 25, "smtp"), replace(clear, protocol=MailProtocol.SMTP)) == set()
    names = compare_names("other.test", "mail.example.test", (("x.test",), ()), LEAF)
    findings = policy_findings(SUBMISSION, replace(good, names=names, address="192.0.2.1"))
    # no confirmed PTR: one finding for it, not one per PTR pair
    assert {f.code for f in findings} == {"name_no_fcrdns", "name_mismatch_greeting_ehlo",
                                          "name_mismatch_greeting_cert"}
    by_code = {f.code: f for f in findings}
    assert "set the PTR of 192.0.2.1 to other.test" in by_code["name_no_fcrdns"].fix
    assert "add other.test to the certificate" in by_code["name_mismatch_greeting_cert"].fix
    # `check` reports them among the MX findings
    assert "open_relay" in {f.code for f in endpoint_findings(SUBMISSION, relay, 0.0)}


def test_debug_report_shows_the_policy_facts():
    from exporter.config.model import Module, StartTLS

    module = Module(name="submission", protocol=MailProtocol.SUBMISSION, port=587, starttls=StartTLS.REQUIRED,
                    timeout=5, interval=60, open_relay_test=OpenRelayTest(recipient="c@example.org"))
    names = compare_names("other.test", "mail.example.test", None, LEAF)
    result = replace(tls_result(), starttls_enforced=True, open_relay=False, names=names)
    text = debug_report(SUBMISSION, module, host_result(result))
    assert "Offered before TLS: 8BITMIME" not in text   # the factory offers no 8BITMIME
    assert "Offered before TLS: PIPELINING SIZE STARTTLS; SASL mechanisms: none; unknown: 1" in text
    assert "Offered after TLS: AUTH PIPELINING REQUIRETLS; SASL mechanisms: LOGIN PLAIN; unknown: 0" in text
    assert "STARTTLS enforced (no mail or login before TLS): yes" in text
    assert "Names that disagree: greeting_cert, greeting_ehlo" in text
    assert "Open relay (RCPT TO:<c@example.org> accepted): no" in text
