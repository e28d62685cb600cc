"""ClientHello builders: the bytes they produce, decoded by an independent minimal reader."""

from __future__ import annotations

import struct

import pytest

from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.hello import (
    COMPRESSION_DEFLATE,
    ExtensionType,
    RenegotiationSignal,
    build_client_hello,
    build_sslv2_client_hello,
    split_cipher_codes,
)

V = ProtocolVersion


def decode(record: bytes) -> dict:
    """Split a ClientHello record into its fields (RFC 8446 4.1.2), checking every length."""
    content_type, record_version, record_length = struct.unpack("!BHH", record[:5])
    assert content_type == 22 and record_length == len(record) - 5
    message = record[5:]
    assert message[0] == 1 and int.from_bytes(message[1:4], "big") == len(message) - 4
    body, pos = message[4:], 0

    def take(count):
        nonlocal pos
        chunk = body[pos:pos + count]
        assert len(chunk) == count
        pos += count
        return chunk

    def vector(length_bytes):
        return take(int.from_bytes(take(length_bytes), "big"))

    fields = {"record_version": record_version, "message_length": len(message)}
    fields["version"] = int.from_bytes(take(2), "big")
    fields["random"] = take(32)
    fields["session_id"] = vector(1)
    suites = vector(2)
    fields["ciphers"] = [int.from_bytes(suites[i:i + 2], "big") for i in range(0, len(suites), 2)]
    fields["compression"] = list(vector(1))
    fields["extensions"] = None
    if pos < len(body):
        block, fields["extensions"], epos = vector(2), {}, 0
        while epos < len(block):
            ext_type, length = struct.unpack("!HH", block[epos:epos + 4])
            assert ext_type not in fields["extensions"]
            fields["extensions"][ext_type] = block[epos + 4:epos + 4 + length]
            assert len(fields["extensions"][ext_type]) == length
            epos += 4 + length
    assert pos == len(body)
    return fields


def u16_list(data: bytes, length_bytes: int = 2) -> list[int]:
    assert int.from_bytes(data[:length_bytes], "big") == len(data) - length_bytes
    data = data[length_bytes:]
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def test_tls13_hello():
    hello = decode(build_client_hello(V.TLS1_3, [0x1301, 0x1302], server_name="mx.example.org.",
                                      random=bytes(32)))
    ext = hello["extensions"]
    assert hello["record_version"] == 0x0301 and hello["version"] == 0x0303
    assert hello["random"] == bytes(32) and len(hello["session_id"]) == 32
    assert hello["ciphers"] == [0x1301, 0x1302]
    assert u16_list(ext[ExtensionType.SUPPORTED_VERSIONS], 1) == [0x0304]
    assert ext[ExtensionType.PSK_KEY_EXCHANGE_MODES] == b"\x01\x01"
    assert ext[ExtensionType.SERVER_NAME] == b"\x00\x11\x00\x00\x0emx.example.org"
    shares, entries = ext[ExtensionType.KEY_SHARE][2:], {}
    while shares:
        group, length = struct.unpack("!HH", shares[:4])
        entries[group], shares = shares[4:4 + length], shares[4 + length:]
    assert len(entries[NamedGroup.X25519]) == 32
    assert len(entries[NamedGroup.SECP256R1]) == 65 and entries[NamedGroup.SECP256R1][0] == 4
    assert 0x0804 in u16_list(ext[ExtensionType.SIGNATURE_ALGORITHMS])
    assert NamedGroup.X25519 in u16_list(ext[ExtensionType.SUPPORTED_GROUPS])


def test_tls13_key_shares_are_fresh():
    first, second = (decode(build_client_hello(V.TLS1_3, [0x1301]))["extensions"][ExtensionType.KEY_SHARE]
                     for _ in range(2))
    assert first != second


def test_tls13_can_offer_a_version_range():
    hello = decode(build_client_hello(V.TLS1_3, [0x1301, 0xC02F], supported_versions=(V.TLS1_3, V.TLS1_2)))
    assert u16_list(hello["extensions"][ExtensionType.SUPPORTED_VERSIONS], 1) == [0x0304, 0x0303]


def test_tls12_hello_extensions():
    hello = decode(build_client_hello(V.TLS1_2, [0xC02F], server_name="mx.example.org"))
    ext = hello["extensions"]
    assert hello["version"] == 0x0303 and hello["session_id"] == b"" and hello["ciphers"] == [0xC02F]
    assert ExtensionType.SUPPORTED_VERSIONS not in ext and ExtensionType.KEY_SHARE not in ext
    assert ext[ExtensionType.RENEGOTIATION_INFO] == b"\x00"
    assert ext[ExtensionType.EXTENDED_MASTER_SECRET] == b""
    assert ext[ExtensionType.SESSION_TICKET] == b""
    assert ext[ExtensionType.STATUS_REQUEST] == b"\x01\x00\x00\x00\x00"
    assert ext[ExtensionType.EC_POINT_FORMATS] == b"\x01\x00"
    groups = u16_list(ext[ExtensionType.SUPPORTED_GROUPS])
    assert {NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1, NamedGroup.SECP521R1,
            NamedGroup.X448, NamedGroup.FFDHE2048, NamedGroup.FFDHE8192} <= set(groups)
    assert ExtensionType.SIGNATURE_ALGORITHMS in ext


@pytest.mark.parametrize("version", [V.TLS1_0, V.TLS1_1])
def test_pre_tls12_hellos_have_no_signature_algorithms(version):
    hello = decode(build_client_hello(version, [0xC013]))
    assert hello["version"] == version
    assert ExtensionType.SIGNATURE_ALGORITHMS not in hello["extensions"]


def test_ssl3_hello_without_extensions_signals_renegotiation_by_scsv():
    record = build_client_hello(V.SSL3, [0x000A, 0x0005], with_extensions=False)
    hello = decode(record)
    assert hello["record_version"] == 0x0300 and hello["version"] == 0x0300
    assert hello["extensions"] is None
    assert hello["ciphers"] == [0x000A, 0x0005, 0x00FF]


@pytest.mark.parametrize("renegotiation, scsv, extension", [
    (RenegotiationSignal.EXTENSION, False, True),
    (RenegotiationSignal.SCSV, True, False),
    (RenegotiationSignal.NONE, False, False),
])
def test_renegotiation_signal(renegotiation, scsv, extension):
    hello = decode(build_client_hello(V.TLS1_2, [0xC02F], renegotiation=renegotiation))
    assert (0x00FF in hello["ciphers"]) is scsv
    assert (ExtensionType.RENEGOTIATION_INFO in hello["extensions"]) is extension


def test_fallback_scsv_and_deflate():
    hello = decode(build_client_hello(V.TLS1_1, [0xC013], fallback_scsv=True,
                                      compression_methods=(COMPRESSION_DEFLATE, 0)))
    assert hello["ciphers"][-1] == 0x5600
    assert hello["compression"] == [1, 0]


def test_optional_extensions_can_be_left_out():
    hello = decode(build_client_hello(V.TLS1_2, [0xC02F], status_request=False, session_ticket=False,
                                      extended_master_secret=False, groups=(), alpn_protocols=("smtp",)))
    ext = hello["extensions"]
    for absent in (ExtensionType.STATUS_REQUEST, ExtensionType.SESSION_TICKET, ExtensionType.EXTENDED_MASTER_SECRET,
                   ExtensionType.SUPPORTED_GROUPS, ExtensionType.EC_POINT_FORMATS, ExtensionType.SERVER_NAME):
        assert absent not in ext
    assert ext[ExtensionType.ALPN] == b"\x00\x05\x04smtp"


def test_ffdhe_only_groups_send_no_point_formats():
    ext = decode(build_client_hello(V.TLS1_2, [0x009E], groups=(NamedGroup.FFDHE3072,)))["extensions"]
    assert u16_list(ext[ExtensionType.SUPPORTED_GROUPS]) == [NamedGroup.FFDHE3072]
    assert ExtensionType.EC_POINT_FORMATS not in ext


def test_no_hello_lands_between_256_and_511_bytes():
    """RFC 7685 padding keeps every hello out of the range that hangs F5 load balancers."""
    padded = 0
    for count in range(1, 260):
        for version in (V.TLS1_2, V.TLS1_3):
            hello = decode(build_client_hello(version, list(range(0x0001, 0x0001 + count)), server_name="a.example"))
            assert not 256 <= hello["message_length"] < 512
            if ExtensionType.PADDING in hello["extensions"]:
                padded += 1
                # exactly 512, or just above when fewer than 5 bytes were missing (data >= 1 byte)
                assert 512 <= hello["message_length"] <= 516
                assert set(hello["extensions"][ExtensionType.PADDING]) <= {0}
    assert padded > 0


def test_hello_size_limits():
    with pytest.raises(ValueError):
        build_client_hello(V.TLS1_2, list(range(8200)))
    with pytest.raises(ValueError):
        build_client_hello(V.TLS1_2, [])
    with pytest.raises(ValueError):
        build_client_hello(V.TLS1_3, [0x1301], with_extensions=False)
    with pytest.raises(ValueError):
        build_client_hello(V.TLS1_2, [0xC02F], random=b"short")
    assert len(build_client_hello(V.TLS1_2, list(range(8000)), groups=())) <= 16384 + 5


def test_split_cipher_codes():
    assert split_cipher_codes(range(5), 2) == ((0, 1), (2, 3), (4,))
    assert split_cipher_codes([], 64) == ()
    chunks = split_cipher_codes(range(350))
    assert [len(chunk) for chunk in chunks] == [64, 64, 64, 64, 64, 30]
    with pytest.raises(ValueError):
        split_cipher_codes([1], 0)


def test_sslv2_client_hello_layout():
    challenge = bytes(range(16))
    record = build_sslv2_client_hello([0x010080, 0x0700C0], challenge=challenge)
    assert record == bytes.fromhex(
        "801f"           # 2-byte header, length 31
        "01" "0002"      # CLIENT-HELLO, version SSL 2.0
        "0006" "0000" "0010"
        "010080" "0700c0"
    ) + challenge


def test_sslv2_compatible_hello_carries_tls_suites():
    record = build_sslv2_client_hello([0x010080], version=V.TLS1_2, tls_cipher_codes=[0xC02F],
                                      challenge=bytes(32))
    assert record[2:5] == b"\x01\x03\x03"
    assert record[11:17] == bytes.fromhex("010080" "00c02f")
    with pytest.raises(ValueError):
        build_sslv2_client_hello([], challenge=bytes(16))
    with pytest.raises(ValueError):
        build_sslv2_client_hello([0x010080], challenge=bytes(8))
