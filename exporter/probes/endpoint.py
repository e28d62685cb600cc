"""The mail-endpoint probe: connect, talk, upgrade to TLS, judge the certificate.

`probe_endpoint` never raises for anything a network or a server can do: every outcome
is an `EndpointResult`, failures labelled with a `FailureReason`. It keeps to the
module's timeout for the whole run, DNS included.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..certs import certificate_info, hostname_matches, verify_chain
from ..config import Module, StartTLS, Target
from ..dnsclient import DNSClient, DNSError
from ..results import EndpointResult, FailureReason, NameFacts, OfferedCapabilities, TLSFacts
from ..tlswire.ciphers import iana_name_from_openssl
from .mailproto import (
    Dialogue,
    DialogueError,
    LineConnection,
    PlaintextFacts,
    RawStream,
    SMTPDialogue,
    Transcript,
    capabilities_after_tls,
    connect,
    dialogue_for,
    plaintext_dialogue,
    request_tls,
)
from .names import compare_names, forward_confirmed_ptr
from .policy import classify_capabilities, mailbox_starttls_enforced, open_relay_test, smtp_starttls_enforced
from .tlsconn import TLSStream, client_context, tls_handshake

log = logging.getLogger(__name__)

GOODBYE_TIMEOUT_SECONDS = 1.0   # QUIT/LOGOUT is a courtesy: never wait long for its answer


async def probe_endpoint(target: Target, module: Module, dns: DNSClient) -> EndpointResult:
    observed_at = time.time()
    started = time.monotonic()
    run = _ProbeRun(target, module, dns)
    try:
        async with asyncio.timeout_at(run.deadline):
            await run.execute()
    except TimeoutError:
        run.fail(run.timeout_reason(), f"no answer within {module.timeout:g} s {run.phase}")
    except DialogueError as exc:
        run.fail(exc.reason, exc.detail)
    except Exception as exc:   # a bug of ours: report it rather than lose the probe
        log.exception("probe of %s (module %s) failed unexpectedly", target.address, module.name)
        run.fail(FailureReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    finally:
        run.close()
    return run.result(observed_at, time.monotonic() - started)


class _ProbeRun:
    """The state of one probe run, filled in as it progresses so that a failure still
    reports everything learnt before it."""

    def __init__(self, target: Target, module: Module, dns: DNSClient):
        self.target = target
        self.module = module
        self.dns = dns
        self.phase = "resolving the host name"
        self.deadline = asyncio.get_running_loop().time() + module.timeout   # in loop time
        self.transcript = Transcript()
        self.failure: FailureReason | None = None
        self.failure_detail = ""
        self.address: str | None = None
        self.raw: RawStream | None = None
        self.tls_stream: TLSStream | None = None
        self.plaintext: PlaintextFacts | None = None
        self.capabilities_after_tls: tuple[str, ...] = ()
        self.tls: TLSFacts | None = None
        self.connect_seconds: float | None = None
        self.greeting_seconds: float | None = None
        self.tls_handshake_seconds: float | None = None
        self.offered_before_tls: OfferedCapabilities | None = None
        self.offered_after_tls: OfferedCapabilities | None = None
        self.starttls_enforced: bool | None = None
        self.open_relay: bool | None = None
        self.names: NameFacts | None = None

    @property
    def verified_name(self) -> str:
        return self.module.tls.server_name or self.target.host

    async def execute(self) -> None:
        try:
            addresses = await self.dns.resolve_addresses(self.target.host)
        except DNSError as exc:
            raise DialogueError(FailureReason.DNS_ERROR, str(exc)) from None
        self.raw = await self._connect_first_reachable(addresses)

        self.phase = "in the plaintext dialogue"
        protocol = self.module.protocol
        conn = LineConnection(self.raw, self.transcript)
        dialogue = dialogue_for(protocol, conn, self.module)
        starttls = StartTLS.NONE if protocol.implicit_tls else self.module.starttls
        self.plaintext = await plaintext_dialogue(dialogue, protocol, starttls)
        self.greeting_seconds = self.plaintext.greeting_seconds
        if not protocol.implicit_tls:
            await self._plaintext_policy(dialogue)
        await request_tls(dialogue, self.plaintext, protocol, starttls)

        if self.plaintext.tls_starts:
            self.phase = "in the TLS handshake"
            self.tls_stream = await self._handshake()
            conn.switch_stream(self.tls_stream)
            self.tls = self._judge_tls(self.tls_stream)
            self.phase = "in the dialogue inside TLS"
            self.capabilities_after_tls, greeting_seconds = await capabilities_after_tls(
                dialogue, protocol.implicit_tls
            )
            if protocol.implicit_tls:
                self.greeting_seconds = greeting_seconds
            self.offered_after_tls = classify_capabilities(protocol.family, self.capabilities_after_tls)

        if self.module.open_relay_test is not None and isinstance(dialogue, SMTPDialogue):
            # At the end of the dialogue: inside TLS when the probe got there, else in clear.
            self.phase = "in the open-relay test"
            self.open_relay = await open_relay_test(dialogue, self.module.open_relay_test)

        self.phase = "saying goodbye"
        # Leave before the probe's own timeout: the facts are in and must not be lost.
        goodbye_deadline = min(asyncio.get_running_loop().time() + GOODBYE_TIMEOUT_SECONDS, self.deadline - 0.05)
        try:
            async with asyncio.timeout_at(goodbye_deadline):
                await dialogue.goodbye()
        except (TimeoutError, DialogueError):
            pass   # all facts are in; a server that mumbles at QUIT does not fail the probe
        if isinstance(dialogue, SMTPDialogue):
            self.phase = "comparing the server's names"
            self.names = await self._compare_names(dialogue)

    async def _plaintext_policy(self, dialogue: Dialogue) -> None:
        """What the server offers and enforces before TLS (STARTTLS protocols only). The
        SMTP enforcement test is an exchange of its own on this connection."""
        assert self.plaintext is not None
        self.offered_before_tls = classify_capabilities(self.module.protocol.family, self.plaintext.capabilities)
        if isinstance(dialogue, SMTPDialogue):
            self.phase = "in the STARTTLS enforcement test"
            self.starttls_enforced = await smtp_starttls_enforced(dialogue, self.plaintext)
            self.phase = "in the plaintext dialogue"
        else:
            self.starttls_enforced = mailbox_starttls_enforced(self.plaintext, self.offered_before_tls)

    async def _compare_names(self, dialogue: SMTPDialogue) -> NameFacts:
        """The name facts; the PTR (if the module asks for it) is looked up within what is
        left of the timeout, and a lookup that fails leaves the PTR pairs undetermined."""
        ptr = None
        if self.module.check_ptr and self.address is not None:
            try:
                async with asyncio.timeout_at(self.deadline - 0.05):
                    ptr = await forward_confirmed_ptr(self.dns, self.address)
            except (DNSError, TimeoutError) as exc:
                self.transcript.add("*", f"PTR of {self.address} not determined: {exc or 'timed out'}")
        return compare_names(dialogue.greeting_text, dialogue.ehlo_reply_text, ptr, self.tls.leaf if self.tls else None)

    async def _connect_first_reachable(self, addresses: list[str]) -> RawStream:
        """Connect to the first address that accepts; the next ones are tried only after a
        refusal or a network error (a silent address uses up the timeout)."""
        last_error: DialogueError | None = None
        for address in addresses:
            self.address = address
            self.phase = f"connecting to {address}"
            self.transcript.add("*", f"connecting to {address} port {self.target.port}")
            started = time.monotonic()
            try:
                raw = await connect(address, self.target.port)
            except DialogueError as exc:
                self.transcript.add("*", exc.detail)
                last_error = exc
                continue
            self.connect_seconds = time.monotonic() - started
            return raw
        assert last_error is not None, "the DNS client returns at least one address"
        raise last_error

    async def _handshake(self) -> TLSStream:
        assert self.raw is not None
        started = time.monotonic()
        stream = await tls_handshake(self.raw, client_context(self.module.tls), self.verified_name)
        self.tls_handshake_seconds = time.monotonic() - started
        self.transcript.add("TLS", f"{stream.version} {stream.cipher}")
        return stream

    def _judge_tls(self, stream: TLSStream) -> TLSFacts:
        chain_der = stream.presented_chain()
        if not chain_der:
            raise DialogueError(FailureReason.TLS_HANDSHAKE_ERROR, "the server presented no certificate")
        try:
            chain = tuple(certificate_info(der) for der in chain_der)
        except ValueError as exc:
            raise DialogueError(FailureReason.PROTOCOL_ERROR, f"unparsable server certificate: {exc}") from None
        chain_error = verify_chain(chain_der, self.module.tls.ca_file, time.time())
        for cert in chain:
            self.transcript.add("TLS", f"certificate {cert.subject} (issuer {cert.issuer})")
        return TLSFacts(
            version=stream.version,
            # IANA names, the ones every standard and the deep scan use; OpenSSL's if unknown.
            cipher=iana_name_from_openssl(stream.cipher) or stream.cipher,
            chain=chain,
            chain_valid=chain_error is None,
            chain_error=chain_error,
            hostname_valid=hostname_matches(chain[0], self.verified_name),
            verified_name=self.verified_name,
        )

    def timeout_reason(self) -> FailureReason:
        if self.raw is None:
            return FailureReason.CONNECT_TIMEOUT if self.address is not None else FailureReason.DNS_ERROR
        return FailureReason.TIMEOUT

    def fail(self, reason: FailureReason, detail: str) -> None:
        self.failure = reason
        self.failure_detail = detail
        self.transcript.add("*", f"failed: {reason} ({detail})")

    def close(self) -> None:
        stream = self.tls_stream or self.raw
        if stream is not None:
            stream.close()

    def result(self, observed_at: float, duration: float) -> EndpointResult:
        plaintext = self.plaintext
        return EndpointResult(
            success=self.failure is None,
            failure=self.failure,
            failure_detail=self.failure_detail,
            observed_at=observed_at,
            duration_seconds=duration,
            address=self.address,
            starttls_offered=plaintext.starttls_offered if plaintext else None,
            plaintext_auth_exposed=plaintext.plaintext_auth_exposed if plaintext else None,
            capabilities_before_tls=plaintext.capabilities if plaintext else (),
            capabilities_after_tls=self.capabilities_after_tls,
            tls=self.tls,
            connect_seconds=self.connect_seconds,
            greeting_seconds=self.greeting_seconds,
            tls_handshake_seconds=self.tls_handshake_seconds,
            transcript=self.transcript.lines(),
            protocol=self.module.protocol,
            starttls_enforced=self.starttls_enforced,
            offered_before_tls=self.offered_before_tls,
            offered_after_tls=self.offered_after_tls,
            names=self.names,
            open_relay=self.open_relay,
        )
