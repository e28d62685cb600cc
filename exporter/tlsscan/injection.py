"""STARTTLS command injection (CVE-2011-0411 and its family: Postfix, Exim, Dovecot, Cyrus,
Courier, ...; testssl.sh `run_starttls_injection`): a server that keeps the plaintext bytes a
client sent after its STARTTLS command and executes them once TLS is up, as if they came
through TLS. A man in the middle can then inject commands into the protected session.

The check: one connection; the plaintext dialogue up to STARTTLS; then STARTTLS and a second,
harmless command (NOOP) in ONE segment; the TLS handshake; inside TLS one closing command of
our own (QUIT, LOGOUT). A server that is not vulnerable answers that one command and closes;
a vulnerable one first answers the injected NOOP. (A server that answers the NOOP before TLS,
in plaintext, is not this flaw: the endpoint probe reports those bytes as a protocol error.
A server that accepts STARTTLS and then closes the connection without a TLS byte refuses to
start TLS with input pending, as Dovecot does: not vulnerable either.)

The judging of what came back is pure (`answered_injected`); `check_starttls_injection` does
the I/O over the scan's Connector, so the connection is counted and paced like the others.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..config import Module, StartTLS
from ..probes.mailproto import (
    DialogueError, LineConnection, RawStream, Transcript, dialogue_for, has_capability, parse_imap_response,
    parse_smtp_reply_line, plaintext_dialogue, pop3_status,
)
from ..probes.tlsconn import client_context, tls_handshake
from .connection import Connector

log = logging.getLogger(__name__)

# Reading inside TLS stops this long before the connection's deadline, so that the check's
# own verdict, not the connection timeout, decides for a server that stays open after QUIT.
_READ_MARGIN_SECONDS = 0.25


@dataclass(frozen=True)
class InjectionPlan:
    """What to send, per protocol family."""

    starttls_and_injected: bytes   # STARTTLS and the injected command, sent as one segment
    starttls_tag: str              # IMAP: the tag of the STARTTLS command ("" for SMTP, POP3)
    injected_tag: str              # IMAP: the tag of the injected command
    after_tls: bytes               # our own closing command inside TLS


PLANS = {
    "smtp": InjectionPlan(b"STARTTLS\r\nNOOP\r\n", "", "", b"QUIT\r\n"),
    "imap": InjectionPlan(b"S1 STARTTLS\r\nI1 NOOP\r\n", "S1", "I1", b"Q1 LOGOUT\r\n"),
    "pop3": InjectionPlan(b"STLS\r\nNOOP\r\n", "", "", b"QUIT\r\n"),
}


def answered_injected(family: str, lines: list[str]) -> bool:
    """Whether `lines`, all the server sent inside TLS after our one closing command, answer
    the injected command too: SMTP more than one complete reply, POP3 more than one status
    line, IMAP a response tagged like the injected command."""
    if family == "imap":
        injected = PLANS["imap"].injected_tag + " "
        return any(line.startswith(injected) for line in lines)
    if family == "smtp":
        return sum(1 for line in lines if _is_last_smtp_reply_line(line)) > 1
    return sum(1 for line in lines if line[:3].upper() == "+OK" or line[:4].upper() == "-ERR") > 1


def _is_last_smtp_reply_line(line: str) -> bool:
    try:
        return parse_smtp_reply_line(line).is_last
    except DialogueError:
        return False


async def check_starttls_injection(connector: Connector, module: Module, server_name: str) -> bool | None:
    """True when the server executes a command pipelined after STARTTLS inside TLS, False when
    it does not; None for implicit TLS, or when the check could not be made (no STARTTLS, a
    refusal, a failed handshake, a dialogue error). Never raises for what a server does."""
    if module.protocol.implicit_tls:
        return None
    try:
        async with connector.fresh_connection() as (raw, deadline):
            try:
                async with asyncio.timeout_at(deadline):
                    return await _check(raw, module, server_name, deadline)
            except TimeoutError:
                log.info("STARTTLS injection check of %s port %d: no verdict within the timeout",
                         connector.address, connector.port)
                return None
    except DialogueError as exc:
        log.info("STARTTLS injection check of %s port %d: %s", connector.address, connector.port, exc.detail)
        return None


async def _check(raw: RawStream, module: Module, server_name: str, deadline: float) -> bool | None:
    family = module.protocol.family
    plan = PLANS[family]
    conn = LineConnection(raw, Transcript())
    dialogue = dialogue_for(module.protocol, conn, module)
    facts = await plaintext_dialogue(dialogue, module.protocol, StartTLS.REQUIRED)
    if not has_capability(facts.capabilities, dialogue.starttls_keyword):
        return None
    await raw.send(plan.starttls_and_injected)
    if not await _starttls_accepted(family, conn, plan):
        return None
    counted = _CountedStream(raw)
    try:
        stream = await tls_handshake(counted, client_context(module.tls), server_name)  # type: ignore[arg-type]
    except DialogueError:
        if counted.received == 0:
            return False        # it closed rather than start TLS with input pending (Dovecot does)
        raise
    await stream.send(plan.after_tls)
    lines = await _lines_inside(family, LineConnection(stream, Transcript()), deadline)
    return answered_injected(family, lines) if lines else None      # no answer at all: no verdict


class _CountedStream:
    """The raw stream, counting the bytes the server sends on it."""

    def __init__(self, raw: RawStream):
        self.raw = raw
        self.received = 0

    async def recv(self) -> bytes:
        data = await self.raw.recv()
        self.received += len(data)
        return data

    async def send(self, data: bytes) -> None:
        await self.raw.send(data)

    def close(self, last_bytes: bytes = b"") -> None:
        self.raw.close(last_bytes)


async def _lines_inside(family: str, inside: LineConnection, deadline: float) -> list[str]:
    """What the server sends inside TLS: until the answer to our closing command (SMTP 221, IMAP
    our tag; every injected answer comes before it), the end of the stream, or shortly before
    `deadline` (a server that stays open after QUIT)."""
    lines: list[str] = []
    try:
        async with asyncio.timeout_at(deadline - _READ_MARGIN_SECONDS):
            while True:
                line = await inside.read_line()
                lines.append(line)
                if (family == "smtp" and line.startswith("221 ")) or (family == "imap" and line.startswith("Q1 ")):
                    break
    except (DialogueError, TimeoutError):
        pass        # closed (as a server does after QUIT), reset, garbage, or silent until the deadline
    return lines


async def _starttls_accepted(family: str, conn: LineConnection, plan: InjectionPlan) -> bool:
    """Read the answer to STARTTLS; whether it says "go ahead"."""
    if family == "smtp":
        while not (reply := parse_smtp_reply_line(await conn.read_line())).is_last:
            pass
        return reply.code == 220
    if family == "imap":
        while (response := parse_imap_response(await conn.read_line())).tag != plan.starttls_tag:
            pass
        return response.status == "OK"
    return pop3_status(await conn.read_line())[0]
