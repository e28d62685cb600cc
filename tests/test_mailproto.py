"""Reply and capability parsing, plaintext-auth rules and the bounded line reader."""

from __future__ import annotations

import pytest

from exporter.config import MailProtocol, StartTLS
from exporter.probes.mailproto import (
    MAX_DIALOGUE_BYTES,
    MAX_LINE_BYTES,
    MAX_TRANSCRIPT_ENTRIES,
    DialogueError,
    IMAPDialogue,
    IMAPResponse,
    LineConnection,
    POP3Dialogue,
    SMTPDialogue,
    Transcript,
    ehlo_capabilities,
    has_capability,
    imap_capabilities_in_code,
    imap_capability_tokens,
    imap_plaintext_auth_exposed,
    negotiate_until_tls,
    parse_imap_response,
    parse_smtp_reply_line,
    plaintext_dialogue,
    pop3_capability,
    pop3_plaintext_auth_exposed,
    pop3_status,
    request_tls,
    smtp_plaintext_auth_exposed,
)
from exporter.results import FailureReason


class ChunkStream:
    """A byte stream that delivers scripted chunks, then the end of the stream."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks)
        self.sent = b""

    async def recv(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def send(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        pass


def connection(*chunks: bytes) -> LineConnection:
    return LineConnection(ChunkStream(*chunks), Transcript())


@pytest.mark.parametrize(
    "line, code, is_last, text",
    [
        ("220 mx.example.com ESMTP Postfix", 220, True, "mx.example.com ESMTP Postfix"),
        ("220-mx.example.com ESMTP", 220, False, "mx.example.com ESMTP"),
        ("250", 250, True, ""),
        ("250-", 250, False, ""),
        ("421 4.3.2 Service shutting down", 421, True, "4.3.2 Service shutting down"),
        ("554 5.7.1 No SMTP service here", 554, True, "5.7.1 No SMTP service here"),
    ],
)
def test_parse_smtp_reply_line(line, code, is_last, text):
    reply = parse_smtp_reply_line(line)
    assert (reply.code, reply.is_last, reply.text) == (code, is_last, text)


@pytest.mark.parametrize(
    "line", ["", "SSH-2.0-OpenSSH_9.2", "HTTP/1.1 400 Bad Request", "22 short", "2200 long", "220x", "* OK IMAP", "+OK"]
)
def test_garbage_is_not_an_smtp_reply(line):
    with pytest.raises(DialogueError) as failure:
        parse_smtp_reply_line(line)
    assert failure.value.reason is FailureReason.PROTOCOL_ERROR


def test_ehlo_capabilities_upper_case_the_keyword_and_skip_the_server_name():
    texts = ["mx.example.com Hello", "pipelining", "SIZE 10240000", "auth PLAIN LOGIN", "AUTH=PLAIN LOGIN", "STARTTLS"]
    assert ehlo_capabilities(texts) == ("PIPELINING", "SIZE 10240000", "AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN", "STARTTLS")


@pytest.mark.parametrize(
    "capabilities, exposed",
    [
        (("PIPELINING", "STARTTLS"), False),
        (("STARTTLS", "AUTH PLAIN LOGIN"), True),
        (("AUTH=LOGIN",), True),            # the form for old Outlook clients (broken_sasl_auth_clients)
        (("AUTH",), True),
        (("AUTHENTICATED-TURN",), False),   # a different keyword that merely starts with AUTH
        ((), False),
    ],
)
def test_smtp_plaintext_auth_exposed(capabilities, exposed):
    assert smtp_plaintext_auth_exposed(capabilities) is exposed


def test_has_capability_compares_whole_keywords():
    assert has_capability(("SIZE 1000", "STARTTLS"), "STARTTLS")
    assert not has_capability(("XSTARTTLS",), "STARTTLS")
    assert not has_capability(("SIZE STARTTLS",), "STARTTLS")


@pytest.mark.parametrize(
    "line, tag, status, text",
    [
        ("* OK [CAPABILITY IMAP4rev1] Dovecot ready.", "*", "OK", "[CAPABILITY IMAP4rev1] Dovecot ready."),
        ("* ok hello", "*", "OK", "hello"),
        ("* BYE Too many connections", "*", "BYE", "Too many connections"),
        ("a001 OK CAPABILITY completed", "a001", "OK", "CAPABILITY completed"),
        ("* CAPABILITY IMAP4rev1 STARTTLS", "*", "CAPABILITY", "IMAP4rev1 STARTTLS"),
    ],
)
def test_parse_imap_response(line, tag, status, text):
    assert parse_imap_response(line) == IMAPResponse(tag, status, text)


@pytest.mark.parametrize(
    "text, capabilities",
    [
        (
            "[CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot ready.",
            ("IMAP4REV1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+", "STARTTLS", "LOGINDISABLED"),
        ),
        ("[capability imap4rev1 auth=plain] hi", ("IMAP4REV1", "AUTH=PLAIN")),
        ("Dovecot ready.", None),
        ("[ALERT] [CAPABILITY IMAP4rev1] late", None),   # only a code at the start is one
    ],
)
def test_imap_capabilities_in_the_greeting_code(text, capabilities):
    assert imap_capabilities_in_code(text) == capabilities


@pytest.mark.parametrize(
    "capabilities, exposed",
    [
        ("IMAP4rev1 STARTTLS LOGINDISABLED", False),                # Dovecot, disable_plaintext_auth=yes
        ("IMAP4rev1 STARTTLS AUTH=PLAIN", True),                    # LOGIN allowed without LOGINDISABLED
        ("IMAP4rev1 STARTTLS", True),                               # LOGIN is always there unless disabled
        ("IMAP4rev1 LOGINDISABLED AUTH=PLAIN", True),
        ("IMAP4rev1 LOGINDISABLED AUTH=LOGIN", True),
        ("IMAP4rev1 LOGINDISABLED AUTH=SCRAM-SHA-256", False),
    ],
)
def test_imap_plaintext_auth_exposed(capabilities, exposed):
    assert imap_plaintext_auth_exposed(imap_capability_tokens(capabilities)) is exposed


@pytest.mark.parametrize(
    "line, result",
    [("+OK Dovecot ready.", (True, "Dovecot ready.")), ("+OK", (True, "")), ("-ERR [SYS/TEMP] busy", (False, "[SYS/TEMP] busy"))],
)
def test_pop3_status(line, result):
    assert pop3_status(line) == result


@pytest.mark.parametrize("line", ["220 smtp", "* OK imap", "OK", ""])
def test_pop3_status_garbage(line):
    with pytest.raises(DialogueError) as failure:
        pop3_status(line)
    assert failure.value.reason is FailureReason.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "line, capability",
    [("stls", "STLS"), ("SASL PLAIN LOGIN", "SASL PLAIN LOGIN"), ("sasl   plain", "SASL plain"), ("..odd", ".ODD")],
)
def test_pop3_capability(line, capability):
    assert pop3_capability(line) == capability


@pytest.mark.parametrize(
    "capabilities, exposed",
    [
        (("TOP", "UIDL", "STLS"), False),
        (("STLS", "USER"), True),
        (("STLS", "SASL PLAIN"), True),
        (("STLS", "SASL SCRAM-SHA-1 LOGIN"), True),
        (("STLS", "SASL SCRAM-SHA-256"), False),
        (("STLS", "SASL"), False),
    ],
)
def test_pop3_plaintext_auth_exposed(capabilities, exposed):
    assert pop3_plaintext_auth_exposed(capabilities) is exposed


# --- the bounded line reader ---------------------------------------------------------

async def test_lines_arrive_fragmented_and_with_bare_lf():
    conn = connection(b"220-a", b"b\r", b"\n220 c\n250 d\r\n")
    assert [await conn.read_line() for _ in range(3)] == ["220-ab", "220 c", "250 d"]
    assert not conn.has_buffered_bytes


async def test_an_over_long_line_is_a_protocol_error():
    conn = connection(*[b"x" * 1024] * (MAX_LINE_BYTES // 1024 + 2))
    with pytest.raises(DialogueError) as failure:
        await conn.read_line()
    assert failure.value.reason is FailureReason.PROTOCOL_ERROR


async def test_endless_short_lines_hit_the_dialogue_budget():
    conn = connection(*[b"250-x\r\n" * 1000] * (MAX_DIALOGUE_BYTES // 7000 + 2))
    with pytest.raises(DialogueError) as failure:
        while True:
            await conn.read_line()
    assert failure.value.reason is FailureReason.PROTOCOL_ERROR


async def test_end_of_stream_mid_line_is_a_connection_error():
    conn = connection(b"220 half")
    with pytest.raises(DialogueError) as failure:
        await conn.read_line()
    assert failure.value.reason is FailureReason.CONNECTION_ERROR


def test_the_transcript_is_bounded():
    transcript = Transcript()
    for number in range(MAX_TRANSCRIPT_ENTRIES * 2):
        transcript.add("S", "x" * 10_000 if number == 0 else f"line {number}")
    lines = transcript.lines()
    assert len(lines) == MAX_TRANSCRIPT_ENTRIES
    assert len(lines[0]) < 400
    assert lines[-1].endswith(f"{MAX_TRANSCRIPT_ENTRIES + 1} more lines not recorded")


# --- the dialogues up to TLS, on scripted bytes ---------------------------------------

async def test_smtp_multi_line_greeting_then_starttls():
    stream = ChunkStream(b"220-mx.example.com ESMTP\r\n220 ", b"go\r\n", b"250-mx\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
                         b"220 2.0.0 Ready\r\n")
    conn = LineConnection(stream, Transcript())
    facts = await negotiate_until_tls(SMTPDialogue(conn, "probe.test"), MailProtocol.SMTP, StartTLS.REQUIRED)
    assert facts.tls_starts and facts.starttls_offered and facts.plaintext_auth_exposed
    assert facts.capabilities == ("AUTH PLAIN", "STARTTLS")
    assert stream.sent == b"EHLO probe.test\r\nSTARTTLS\r\n"


async def test_smtp_reply_codes_must_not_change_within_a_reply():
    conn = connection(b"220-a\r\n250 b\r\n")
    with pytest.raises(DialogueError) as failure:
        await negotiate_until_tls(SMTPDialogue(conn, "x"), MailProtocol.SMTP, StartTLS.REQUIRED)
    assert failure.value.reason is FailureReason.PROTOCOL_ERROR


async def test_smtp_server_without_ehlo_offers_no_starttls():
    conn = connection(b"220 old\r\n", b"502 5.5.1 what\r\n")
    facts = await negotiate_until_tls(SMTPDialogue(conn, "x"), MailProtocol.SMTP, StartTLS.OPTIONAL)
    assert (facts.tls_starts, facts.starttls_offered, facts.capabilities) == (False, False, ())


async def test_imap_greeting_capabilities_spare_the_capability_command():
    stream = ChunkStream(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n", b"a001 OK Begin TLS\r\n")
    facts = await negotiate_until_tls(IMAPDialogue(LineConnection(stream, Transcript())), MailProtocol.IMAP, StartTLS.REQUIRED)
    assert stream.sent == b"a001 STARTTLS\r\n"
    assert facts.tls_starts and facts.plaintext_auth_exposed is False


async def test_imap_untagged_responses_before_the_tagged_answer_are_collected():
    stream = ChunkStream(b"* OK hi\r\n", b"* CAPABILITY IMAP4rev1\r\n* CAPABILITY STARTTLS\r\n* OK still here\r\na001 OK\r\n",
                         b"a002 NO [ALERT] not now\r\n")
    with pytest.raises(DialogueError) as failure:
        await negotiate_until_tls(IMAPDialogue(LineConnection(stream, Transcript())), MailProtocol.IMAP, StartTLS.REQUIRED)
    assert failure.value.reason is FailureReason.STARTTLS_REFUSED
    assert stream.sent == b"a001 CAPABILITY\r\na002 STARTTLS\r\n"


async def test_pop3_without_capa_cannot_tell_about_plaintext_auth():
    stream = ChunkStream(b"+OK hi\r\n", b"-ERR unknown command\r\n")
    dialogue = POP3Dialogue(LineConnection(stream, Transcript()))
    facts = await plaintext_dialogue(dialogue, MailProtocol.POP3, StartTLS.REQUIRED)
    assert (facts.starttls_offered, facts.plaintext_auth_exposed) == (False, None)
    with pytest.raises(DialogueError) as failure:
        await request_tls(dialogue, facts, MailProtocol.POP3, StartTLS.REQUIRED)
    assert failure.value.reason is FailureReason.STARTTLS_NOT_OFFERED


async def test_pop3_capa_is_dot_terminated():
    stream = ChunkStream(b"+OK hi\r\n", b"+OK\r\nTOP\r\nUSER\r\n", b"STLS\r\n.\r\n")
    facts = await negotiate_until_tls(POP3Dialogue(LineConnection(stream, Transcript())), MailProtocol.POP3, StartTLS.NONE)
    assert facts.capabilities == ("TOP", "USER", "STLS")
    assert (facts.tls_starts, facts.starttls_offered, facts.plaintext_auth_exposed) == (False, True, True)
    assert stream.sent == b"CAPA\r\n"


async def test_implicit_tls_says_nothing_before_the_handshake():
    stream = ChunkStream()
    facts = await negotiate_until_tls(SMTPDialogue(LineConnection(stream, Transcript()), "x"), MailProtocol.SMTPS, StartTLS.NONE)
    assert facts.tls_starts and facts.starttls_offered is None and facts.plaintext_auth_exposed is None
    assert stream.sent == b""
