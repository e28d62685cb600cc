"""Coverage-guided fuzzing of the TLS server-flight parser with atheris (libFuzzer).

    python3 -m venv /tmp/fuzz-venv && /tmp/fuzz-venv/bin/pip install atheris -e .
    /tmp/fuzz-venv/bin/python fuzz/tlswire_flight.py -max_total_time=60

The property is the one the hypothesis tests state: whatever the bytes and however they
are split, the parser returns typed messages or raises TLSParseError, nothing else, and
keeps no more than its bounds. Any other exception is a crash, which libFuzzer reports
with the input that caused it.
"""

import sys

import atheris

with atheris.instrument_imports():
    from exporter.tlswire.parse import ServerFlightParser, TLSParseError, parse_sslv2_server_hello


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    split = provider.ConsumeIntInRange(0, 64)
    payload = provider.ConsumeBytes(provider.remaining_bytes())
    parser = ServerFlightParser()
    try:
        # Fed in two pieces, as records arrive fragmented over TCP.
        parser.feed(payload[:split])
        parser.feed(payload[split:])
    except TLSParseError:
        pass
    try:
        parse_sslv2_server_hello(payload)
    except TLSParseError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
