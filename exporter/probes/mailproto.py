"""Line-based mail connections and the SMTP, IMAP and POP3 dialogues around TLS.

Layers, bottom up:
- a byte stream: `RawStream` (TCP) or `tlsconn.TLSStream` (TLS over a RawStream);
- `LineConnection`: whole lines on top of a byte stream, with hard bounds on line length
  and on the bytes read, and a bounded `Transcript`;
- one dialogue class per protocol family (`SMTPDialogue`, `IMAPDialogue`, `POP3Dialogue`):
  greeting, capabilities, STARTTLS, goodbye;
- `negotiate_until_tls`: everything up to the moment TLS starts, reusable by anything that
  wants to run its own handshake on the raw stream.

Every server misbehaviour becomes a `DialogueError` carrying the `FailureReason`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Protocol

from ..config import MailProtocol, Module, StartTLS

from ..results import FailureReason

MAX_LINE_BYTES = 8 * 1024            # RFC 5321 allows 512 per reply line; IMAP lines are longer
MAX_DIALOGUE_BYTES = 64 * 1024       # all lines of one connection together
MAX_TRANSCRIPT_ENTRIES = 200
MAX_TRANSCRIPT_LINE_CHARS = 300
RECV_CHUNK_BYTES = 16 * 1024


class DialogueError(Exception):
    """The server misbehaved or refused; `reason` is the failure to report."""

    def __init__(self, reason: FailureReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Transcript:
    """The dialogue for debugging: a bounded list of short lines like "C: EHLO x"."""

    def __init__(self) -> None:
        self._entries: list[str] = []
        self._dropped = 0

    def add(self, direction: str, text: str) -> None:
        if len(self._entries) >= MAX_TRANSCRIPT_ENTRIES - 1:
            self._dropped += 1
            return
        if len(text) > MAX_TRANSCRIPT_LINE_CHARS:
            text = text[:MAX_TRANSCRIPT_LINE_CHARS] + f"... ({len(text)} chars)"
        self._entries.append(f"{direction}: {text}")

    @property
    def last(self) -> str | None:
        return self._entries[-1] if self._entries else None

    def lines(self) -> tuple[str, ...]:
        if self._dropped:
            return (*self._entries, f"...: {self._dropped} more lines not recorded")
        return tuple(self._entries)


class ByteStream(Protocol):
    async def recv(self) -> bytes:
        """Some bytes; b"" at the end of the stream."""

    async def send(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Close at once, without waiting for the server."""


class RawStream:
    """A TCP connection: the bytes exactly as they travel, before or without TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def recv(self) -> bytes:
        try:
            return await self.reader.read(RECV_CHUNK_BYTES)
        except OSError as exc:
            raise DialogueError(FailureReason.CONNECTION_ERROR, f"receiving failed: {_os_error_text(exc)}") from None

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except OSError as exc:
            raise DialogueError(FailureReason.CONNECTION_ERROR, f"sending failed: {_os_error_text(exc)}") from None

    def close(self, last_bytes: bytes = b"") -> None:
        """Send `last_bytes` if the socket takes them at once, then close without waiting:
        a server that stopped reading must not hold the probe (nor our memory)."""
        if self.writer.is_closing():
            return
        if last_bytes:
            self.writer.write(last_bytes)
        if self.writer.transport.get_write_buffer_size():
            self.writer.transport.abort()
        else:
            self.writer.close()


async def connect(address: str, port: int) -> RawStream:
    """Open a TCP connection; refusal and network errors become DialogueError."""
    try:
        reader, writer = await asyncio.open_connection(address, port)
    except ConnectionRefusedError:
        raise DialogueError(FailureReason.CONNECTION_REFUSED, f"connection to {address} port {port} refused") from None
    except OSError as exc:
        raise DialogueError(
            FailureReason.CONNECTION_ERROR, f"connecting to {address} port {port} failed: {_os_error_text(exc)}"
        ) from None
    return RawStream(reader, writer)


def _os_error_text(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class LineConnection:
    """Whole lines over a byte stream, read with hard bounds so a hostile server cannot
    make us buffer without limit."""

    def __init__(self, stream: ByteStream, transcript: Transcript):
        self.stream = stream
        self.transcript = transcript
        self._buffer = bytearray()
        self._bytes_read = 0

    @property
    def has_buffered_bytes(self) -> bool:
        """True when the server sent bytes beyond the last line read."""
        return bool(self._buffer)

    def switch_stream(self, stream: ByteStream) -> None:
        """Continue the dialogue over `stream` (the TLS layer after a handshake).
        `request_tls` has made sure no plaintext byte is left in the buffer."""
        self.stream = stream

    async def read_line(self) -> str:
        """The next line without its line ending (CRLF, or a bare LF from sloppy servers)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                if end > MAX_LINE_BYTES:
                    raise self._line_too_long()
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                line = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
                self.transcript.add("S", line)
                return line
            if len(self._buffer) > MAX_LINE_BYTES:
                raise self._line_too_long()
            if self._bytes_read > MAX_DIALOGUE_BYTES:
                raise DialogueError(
                    FailureReason.PROTOCOL_ERROR, f"server sent more than {MAX_DIALOGUE_BYTES} bytes of dialogue"
                )
            data = await self.stream.recv()
            if not data:
                if self._buffer:
                    self.transcript.add("S", self._buffer[:MAX_TRANSCRIPT_LINE_CHARS].decode("utf-8", "replace"))
                raise DialogueError(FailureReason.CONNECTION_ERROR, "connection closed by the server")
            self._bytes_read += len(data)
            self._buffer += data

    def _line_too_long(self) -> DialogueError:
        self.transcript.add("S", self._buffer[:MAX_TRANSCRIPT_LINE_CHARS].decode("utf-8", "replace"))
        return DialogueError(FailureReason.PROTOCOL_ERROR, f"server line longer than {MAX_LINE_BYTES} bytes")

    async def send_line(self, line: str) -> None:
        self.transcript.add("C", line)
        await self.stream.send(line.encode("ascii") + b"\r\n")


# --- SMTP (RFC 5321, RFC 3207) -------------------------------------------------------

@dataclass(frozen=True)
class SMTPReplyLine:
    code: int
    is_last: bool      # "250 ..." ends a reply, "250-..." continues it
    text: str


_SMTP_REPLY_LINE = re.compile(r"([2-5][0-9][0-9])(?:([ -])(.*))?\Z", re.DOTALL)


def parse_smtp_reply_line(line: str) -> SMTPReplyLine:
    """Parse one line of an SMTP reply; raise DialogueError(protocol_error) on garbage."""
    match = _SMTP_REPLY_LINE.match(line)
    if match is None:
        raise DialogueError(FailureReason.PROTOCOL_ERROR, f"not an SMTP reply: {line[:80]!r}")
    code, separator, text = match.groups()
    return SMTPReplyLine(code=int(code), is_last=separator != "-", text=text or "")


def ehlo_capabilities(reply_texts: list[str]) -> tuple[str, ...]:
    """The extensions of an EHLO reply's texts (the first one is the server's name).

    Keywords are upper-cased and parameters kept: ["mx.example", "size 1000", "starttls"]
    gives ("SIZE 1000", "STARTTLS").
    """
    capabilities = []
    for text in reply_texts[1:]:
        keyword, _, parameters = text.strip().partition(" ")
        if keyword:
            capabilities.append(" ".join([keyword.upper(), *parameters.split()]))
    return tuple(capabilities)


def smtp_plaintext_auth_exposed(capabilities: tuple[str, ...]) -> bool:
    """AUTH offered before TLS exposes passwords (Postfix's "AUTH=..." old-client form too)."""
    return any(re.match(r"AUTH(\Z|[ =])", capability) for capability in capabilities)


def has_capability(capabilities: tuple[str, ...], keyword: str) -> bool:
    return any(capability.split(" ", 1)[0] == keyword for capability in capabilities)


class SMTPDialogue:
    family = "smtp"
    starttls_keyword = "STARTTLS"

    def __init__(self, conn: LineConnection, ehlo_name: str):
        self.conn = conn
        self.ehlo_name = ehlo_name
        # What the server says of itself, for the name checks: the first line of its
        # greeting, and the first line of its first 250 answer to EHLO.
        self.greeting_text: str | None = None
        self.ehlo_reply_text: str | None = None

    async def _read_reply(self) -> tuple[int, list[str]]:
        first = parse_smtp_reply_line(await self.conn.read_line())
        texts = [first.text]
        line = first
        while not line.is_last:
            line = parse_smtp_reply_line(await self.conn.read_line())
            if line.code != first.code:
                raise DialogueError(
                    FailureReason.PROTOCOL_ERROR, f"reply code changed within a reply: {first.code} then {line.code}"
                )
            texts.append(line.text)
        return first.code, texts

    async def greet(self) -> tuple[str, ...] | None:
        code, texts = await self._read_reply()
        if code // 100 in (4, 5):   # 421 busy, 554 no service for you (RFC 5321 3.1)
            raise DialogueError(FailureReason.SERVICE_UNAVAILABLE, f"greeting {code} {texts[0]}")
        if code // 100 != 2:
            raise DialogueError(FailureReason.PROTOCOL_ERROR, f"greeting {code} {texts[0]}")
        self.greeting_text = texts[0]
        return None

    async def command(self, line: str) -> tuple[int, list[str]]:
        """Send one command and read its whole reply: (code, the text of each line)."""
        await self.conn.send_line(line)
        return await self._read_reply()

    async def capabilities(self) -> tuple[str, ...]:
        await self.conn.send_line(f"EHLO {self.ehlo_name}")
        code, texts = await self._read_reply()
        if code == 250:
            if self.ehlo_reply_text is None:
                self.ehlo_reply_text = texts[0]
            return ehlo_capabilities(texts)
        if code in (500, 502):
            return ()   # an RFC 821 server without extensions, hence without STARTTLS
        raise DialogueError(FailureReason.SERVICE_UNAVAILABLE, f"EHLO answered {code} {texts[0]}")

    async def start_tls(self) -> None:
        await self.conn.send_line("STARTTLS")
        code, texts = await self._read_reply()
        if code != 220:
            raise DialogueError(FailureReason.STARTTLS_REFUSED, f"STARTTLS answered {code} {texts[0]}")

    async def goodbye(self) -> None:
        await self.conn.send_line("QUIT")
        await self._read_reply()

    @staticmethod
    def plaintext_auth_exposed(capabilities: tuple[str, ...]) -> bool | None:
        return smtp_plaintext_auth_exposed(capabilities)


# --- IMAP (RFC 3501, RFC 9051) --------------------------------------------------------

@dataclass(frozen=True)
class IMAPResponse:
    tag: str               # "*" for untagged responses
    status: str            # "OK", "NO", "BAD", "BYE", "PREAUTH", "CAPABILITY", ... upper-cased
    text: str              # the rest of the line


def parse_imap_response(line: str) -> IMAPResponse:
    tag, _, rest = line.partition(" ")
    status, _, text = rest.partition(" ")
    if not tag or not status:
        raise DialogueError(FailureReason.PROTOCOL_ERROR, f"not an IMAP response: {line[:80]!r}")
    return IMAPResponse(tag=tag, status=status.upper(), text=text)


def imap_capability_tokens(text: str) -> tuple[str, ...]:
    """Upper-cased capability atoms: "IMAP4rev1 STARTTLS auth=PLAIN" -> ("IMAP4REV1", ...)."""
    return tuple(token.upper() for token in text.split())


_IMAP_CAPABILITY_CODE = re.compile(r"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


def imap_capabilities_in_code(text: str) -> tuple[str, ...] | None:
    """The capabilities of a "[CAPABILITY ...]" response code at the start of `text`, if any."""
    match = _IMAP_CAPABILITY_CODE.match(text)
    return imap_capability_tokens(match.group(1)) if match else None


def imap_plaintext_auth_exposed(capabilities: tuple[str, ...]) -> bool:
    """LOGIN works unless LOGINDISABLED is advertised; AUTH=PLAIN/LOGIN expose passwords too."""
    return (
        "LOGINDISABLED" not in capabilities
        or "AUTH=PLAIN" in capabilities
        or "AUTH=LOGIN" in capabilities
    )


class IMAPDialogue:
    family = "imap"
    starttls_keyword = "STARTTLS"

    def __init__(self, conn: LineConnection):
        self.conn = conn
        self._tag_number = 0

    async def greet(self) -> tuple[str, ...] | None:
        greeting = parse_imap_response(await self.conn.read_line())
        if greeting.tag != "*" or greeting.status not in ("OK", "PREAUTH", "BYE"):
            raise DialogueError(FailureReason.PROTOCOL_ERROR, f"not an IMAP greeting: {greeting.text[:80]!r}")
        if greeting.status == "BYE":
            raise DialogueError(FailureReason.SERVICE_UNAVAILABLE, f"greeting BYE {greeting.text}")
        return imap_capabilities_in_code(greeting.text)

    async def _command(self, command: str, bye_expected: bool = False) -> tuple[IMAPResponse, list[IMAPResponse]]:
        """Send a tagged command; return its tagged completion and the untagged responses.
        An untagged BYE means the server is closing, which only LOGOUT expects."""
        self._tag_number += 1
        tag = f"a{self._tag_number:03d}"
        await self.conn.send_line(f"{tag} {command}")
        untagged = []
        while True:
            response = parse_imap_response(await self.conn.read_line())
            if response.tag == tag:
                return response, untagged
            if response.tag == "*" and response.status == "BYE" and not bye_expected:
                raise DialogueError(FailureReason.SERVICE_UNAVAILABLE, f"{command}: server said BYE {response.text}")
            untagged.append(response)   # "+" continuations cannot occur for these commands; tolerated

    async def capabilities(self) -> tuple[str, ...]:
        done, untagged = await self._command("CAPABILITY")
        if done.status != "OK":
            raise DialogueError(FailureReason.PROTOCOL_ERROR, f"CAPABILITY answered {done.status} {done.text}")
        capabilities: tuple[str, ...] = ()
        for response in untagged:
            if response.tag == "*" and response.status == "CAPABILITY":
                capabilities += imap_capability_tokens(response.text)
        return capabilities

    async def start_tls(self) -> None:
        done, _ = await self._command("STARTTLS")
        if done.status != "OK":
            raise DialogueError(FailureReason.STARTTLS_REFUSED, f"STARTTLS answered {done.status} {done.text}")

    async def goodbye(self) -> None:
        await self._command("LOGOUT", bye_expected=True)

    @staticmethod
    def plaintext_auth_exposed(capabilities: tuple[str, ...]) -> bool | None:
        return imap_plaintext_auth_exposed(capabilities)


# --- POP3 (RFC 1939, RFC 2449, RFC 2595) ----------------------------------------------

def pop3_status(line: str) -> tuple[bool, str]:
    """(True, text) for "+OK text", (False, text) for "-ERR text"; garbage is a protocol error."""
    status, _, text = line.partition(" ")
    if status.upper() == "+OK":
        return True, text
    if status.upper() == "-ERR":
        return False, text
    raise DialogueError(FailureReason.PROTOCOL_ERROR, f"not a POP3 status line: {line[:80]!r}")


def pop3_capability(line: str) -> str:
    """One CAPA line, dot-unstuffed, keyword upper-cased: "sasl PLAIN" -> "SASL PLAIN"."""
    line = line[1:] if line.startswith("..") else line
    keyword, _, parameters = line.strip().partition(" ")
    return " ".join([keyword.upper(), *parameters.split()])


def pop3_plaintext_auth_exposed(capabilities: tuple[str, ...]) -> bool:
    """USER/PASS, or SASL PLAIN/LOGIN, offered before TLS exposes passwords."""
    for capability in capabilities:
        keyword, _, parameters = capability.partition(" ")
        if keyword == "USER":
            return True
        if keyword == "SASL" and {"PLAIN", "LOGIN"} & set(parameters.upper().split()):
            return True
    return False


class POP3Dialogue:
    family = "pop3"
    starttls_keyword = "STLS"

    def __init__(self, conn: LineConnection):
        self.conn = conn
        self.capa_supported = True

    async def greet(self) -> tuple[str, ...] | None:
        ok, text = pop3_status(await self.conn.read_line())
        if not ok:
            raise DialogueError(FailureReason.SERVICE_UNAVAILABLE, f"greeting -ERR {text}")
        return None

    async def capabilities(self) -> tuple[str, ...]:
        await self.conn.send_line("CAPA")
        ok, _ = pop3_status(await self.conn.read_line())
        if not ok:
            self.capa_supported = False   # CAPA is optional (RFC 2449): nothing is known
            return ()
        capabilities = []
        while (line := await self.conn.read_line()) != ".":
            capabilities.append(pop3_capability(line))
        return tuple(capability for capability in capabilities if capability)

    async def start_tls(self) -> None:
        await self.conn.send_line("STLS")
        ok, text = pop3_status(await self.conn.read_line())
        if not ok:
            raise DialogueError(FailureReason.STARTTLS_REFUSED, f"STLS answered -ERR {text}")

    async def goodbye(self) -> None:
        await self.conn.send_line("QUIT")
        pop3_status(await self.conn.read_line())

    def plaintext_auth_exposed(self, capabilities: tuple[str, ...]) -> bool | None:
        # Without CAPA a server may still accept USER/PASS: undeterminable.
        return pop3_plaintext_auth_exposed(capabilities) if self.capa_supported else None


Dialogue = SMTPDialogue | IMAPDialogue | POP3Dialogue


def dialogue_for(protocol: MailProtocol, conn: LineConnection, module: Module) -> Dialogue:
    if protocol.family == "smtp":
        return SMTPDialogue(conn, module.ehlo)
    if protocol.family == "imap":
        return IMAPDialogue(conn)
    return POP3Dialogue(conn)


# --- Up to the start of TLS -----------------------------------------------------------

@dataclass(frozen=True)
class PlaintextFacts:
    """What the dialogue before TLS showed."""

    tls_starts: bool                      # the next bytes on the raw stream are a TLS handshake
    starttls_offered: bool | None         # None for implicit TLS
    capabilities: tuple[str, ...]
    plaintext_auth_exposed: bool | None
    greeting_seconds: float | None


async def plaintext_dialogue(dialogue: Dialogue, protocol: MailProtocol, starttls: StartTLS) -> PlaintextFacts:
    """Greeting and capabilities before TLS; for implicit TLS nothing is said."""
    if protocol.implicit_tls:
        return PlaintextFacts(True, None, (), None, None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    greeting_capabilities = await dialogue.greet()
    greeting_seconds = loop.time() - started
    capabilities = greeting_capabilities if greeting_capabilities is not None else await dialogue.capabilities()
    offered = has_capability(capabilities, dialogue.starttls_keyword)
    return PlaintextFacts(
        tls_starts=offered and starttls is not StartTLS.NONE,
        starttls_offered=offered,
        capabilities=capabilities,
        plaintext_auth_exposed=dialogue.plaintext_auth_exposed(capabilities),
        greeting_seconds=greeting_seconds,
    )


async def request_tls(dialogue: Dialogue, facts: PlaintextFacts, protocol: MailProtocol, starttls: StartTLS) -> None:
    """Ask for TLS where `facts` say it starts (STARTTLS, STLS for POP3).

    Raises DialogueError for a missing STARTTLS under `required`, for a refusal, and for
    bytes sent after the STARTTLS answer, before TLS (a reply nobody asked for, or a response
    injected by a man in the middle; the server-side STARTTLS command injection flaw,
    CVE-2011-0411, is tested by the deep scan, tlsscan/injection.py).
    """
    if protocol.implicit_tls:
        return
    if not facts.starttls_offered and starttls is StartTLS.REQUIRED:
        raise DialogueError(
            FailureReason.STARTTLS_NOT_OFFERED, f"the server does not offer {dialogue.starttls_keyword}"
        )
    if facts.tls_starts:
        await dialogue.start_tls()
        if dialogue.conn.has_buffered_bytes:
            raise DialogueError(
                FailureReason.PROTOCOL_ERROR,
                f"server sent bytes after its {dialogue.starttls_keyword} answer, before TLS",
            )


async def negotiate_until_tls(dialogue: Dialogue, protocol: MailProtocol, starttls: StartTLS) -> PlaintextFacts:
    """Run the plaintext dialogue up to the point where TLS starts: when the returned
    facts say `tls_starts`, the next bytes on the raw stream belong to a TLS handshake."""
    facts = await plaintext_dialogue(dialogue, protocol, starttls)
    await request_tls(dialogue, facts, protocol, starttls)
    return facts


async def capabilities_after_tls(dialogue: Dialogue, implicit_tls: bool) -> tuple[tuple[str, ...], float | None]:
    """Inside TLS: the greeting (implicit TLS only) and the capabilities, asked anew as
    RFC 3207/3501/2595 require. Returns (capabilities, greeting_seconds)."""
    greeting_seconds = None
    greeting_capabilities = None
    if implicit_tls:
        loop = asyncio.get_running_loop()
        started = loop.time()
        greeting_capabilities = await dialogue.greet()
        greeting_seconds = loop.time() - started
    if greeting_capabilities is not None:
        return greeting_capabilities, greeting_seconds
    return await dialogue.capabilities(), greeting_seconds
