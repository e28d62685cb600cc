"""Reading one server flight (exporter.tlsscan.connection.read_tls_flight) when the server stops
anywhere: real recorded answers cut at random points, delivered in random chunks, ended by a
close or a reset. A cut inside a record or a handshake message must be a protocol error, a cut
between two messages a plain close, and nothing may raise or hang."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.probes.mailproto import DialogueError
from exporter.results import FailureReason
from exporter.tlsscan.connection import FlightEnd, ServerFlight, read_tls_flight
from tests.tlsservers.recordings import HELLO_RETRY, PROTOCOL_VERSION_ALERT, TLS12_FLIGHT, TLS13_START

READ_LIMIT_SECONDS = 2.0
RECORDINGS = [TLS12_FLIGHT, TLS13_START, HELLO_RETRY, PROTOCOL_VERSION_ALERT]
SERVER_HELLO, SERVER_HELLO_DONE, ALERT_RECORD, HANDSHAKE_RECORD = 2, 14, 21, 22


class ScriptedStream:
    """A RawStream stand-in: hands out `chunks`, then ends with a close (b"") or a reset."""

    def __init__(self, chunks: list[bytes], reset: bool):
        self._chunks = list(chunks)
        self._reset = reset

    async def recv(self) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        if self._reset:
            raise DialogueError(FailureReason.CONNECTION_ERROR, "receiving failed: Connection reset by peer")
        return b""


def expected_end(recording: bytes, cut: int) -> FlightEnd:
    """What a reader must conclude from recording[:cut], by walking the record and handshake
    headers independently of the parser under test."""
    handshake = b""             # handshake bytes of the records complete before the cut
    offset = 0
    while offset + 5 <= len(recording):
        record_end = offset + 5 + int.from_bytes(recording[offset + 3:offset + 5], "big")
        if record_end > cut:
            break
        content_type, fragment = recording[offset], recording[offset + 5:record_end]
        if content_type == ALERT_RECORD:
            return FlightEnd.ALERT
        if content_type == HANDSHAKE_RECORD:
            handshake += fragment
            if _flight_is_complete(handshake):
                return FlightEnd.COMPLETE
        offset = record_end
    inside_record = offset != cut
    return FlightEnd.PROTOCOL_ERROR if inside_record or _inside_message(handshake) else FlightEnd.CLOSED


def _messages(handshake: bytes) -> list[tuple[int, bytes]]:
    """The complete handshake messages at the start of `handshake`, as (type, body)."""
    messages, offset = [], 0
    while offset + 4 <= len(handshake):
        end = offset + 4 + int.from_bytes(handshake[offset + 1:offset + 4], "big")
        if end > len(handshake):
            break
        messages.append((handshake[offset], handshake[offset + 4:end]))
        offset = end
    return messages


def _inside_message(handshake: bytes) -> bool:
    return sum(4 + len(body) for _, body in _messages(handshake)) != len(handshake)


def _flight_is_complete(handshake: bytes) -> bool:
    """ServerHelloDone, or a TLS 1.3 ServerHello / HelloRetryRequest (supported_versions = 0x0304)."""
    messages = _messages(handshake)
    if any(msg_type == SERVER_HELLO_DONE for msg_type, _ in messages):
        return True
    return bool(messages) and messages[0][0] == SERVER_HELLO and b"\x00\x2b\x00\x02\x03\x04" in messages[0][1]


def read(chunks: list[bytes], reset: bool) -> ServerFlight:
    async def bounded() -> ServerFlight:
        async with asyncio.timeout(READ_LIMIT_SECONDS):     # "never hangs" is part of the contract
            return await read_tls_flight(ScriptedStream(chunks, reset))
    return asyncio.run(bounded())


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    return [data[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RECORDINGS), st.data())
def test_a_recorded_answer_cut_anywhere_ends_as_the_headers_say(recording, data):
    cut = data.draw(st.integers(0, len(recording)), label="cut")
    chunk_cuts = data.draw(st.lists(st.integers(1, max(cut, 1)), max_size=4), label="chunk cuts")
    reset = data.draw(st.booleans(), label="reset")

    flight = read(_chunked(recording[:cut], chunk_cuts), reset)

    assert flight.end is expected_end(recording, cut)
    if flight.end is FlightEnd.PROTOCOL_ERROR:
        assert "incomplete record or message" in flight.detail


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RECORDINGS), st.data())
def test_a_mutated_and_cut_answer_gives_a_typed_flight(recording, data):
    mutated = bytearray(recording)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    flight = read([bytes(mutated[:cut])] if cut else [], data.draw(st.booleans()))
    assert isinstance(flight, ServerFlight) and flight.end in FlightEnd


def test_whole_recordings_end_as_expected():
    # The oracle above, checked on its own against what the recordings are known to hold.
    assert read([TLS12_FLIGHT], reset=False).end is FlightEnd.COMPLETE
    assert read([TLS12_FLIGHT], reset=False).certificate is not None
    assert read([HELLO_RETRY], reset=False).server_hello.is_hello_retry_request
    assert read([PROTOCOL_VERSION_ALERT], reset=False).alert.name == "protocol_version"
    assert expected_end(TLS12_FLIGHT, len(TLS12_FLIGHT)) is FlightEnd.COMPLETE
    assert expected_end(TLS12_FLIGHT, 0) is FlightEnd.CLOSED
    assert expected_end(TLS12_FLIGHT, 3) is FlightEnd.PROTOCOL_ERROR
