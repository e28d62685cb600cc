"""The IANA cipher suite registry, its parsed attributes, and the OpenSSL name mapping."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from exporter.tlswire import ProtocolVersion
from exporter.tlswire.ciphers import (
    CIPHER_SUITES,
    SSL2_CIPHER_KINDS,
    Authentication,
    KeyExchange,
    Mode,
    iana_name_from_openssl,
    suite_by_name,
    suites_for_version,
)

V = ProtocolVersion


def _openssl_standard_names() -> dict[int, tuple[str, str]]:
    """code -> (IANA name, OpenSSL name) as the openssl binary reports them."""
    out = subprocess.run(
        ["openssl", "ciphers", "-stdname", "-V", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True, text=True, check=True,
    ).stdout
    table = {}
    for line in out.splitlines():
        fields = line.split()          # 0xC0,0x2F - TLS_... - ECDHE-... TLSv1.2 ...
        high, low = fields[0].split(",")
        table[int(high, 16) << 8 | int(low, 16)] = (fields[2], fields[4])
    return table


def test_registry_size_and_uniqueness():
    assert len(CIPHER_SUITES) == 350
    assert len({suite.name for suite in CIPHER_SUITES.values()}) == 350
    assert all(code == suite.code for code, suite in CIPHER_SUITES.items())
    assert 0x00FF not in CIPHER_SUITES and 0x5600 not in CIPHER_SUITES   # signalling values, not suites


@pytest.mark.parametrize("code, name", [
    (0x0000, "TLS_NULL_WITH_NULL_NULL"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0x00C6, "TLS_SM4_GCM_SM3"),
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
    (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8"),
    (0xC100, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC"),
    (0xC106, "TLS_GOSTR341112_256_WITH_MAGMA_MGM_S"),
    (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xD005, "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256"),
])
def test_known_code_points(code, name):
    assert CIPHER_SUITES[code].name == name
    assert suite_by_name(name).code == code


def test_every_suite_openssl_knows_has_the_same_iana_name_here():
    standard = _openssl_standard_names()
    assert len(standard) > 100
    mismatches = {hex(code): (CIPHER_SUITES.get(code), iana) for code, (iana, _) in standard.items()
                  if code not in CIPHER_SUITES or CIPHER_SUITES[code].name != iana}
    assert mismatches == {}


def test_python_ssl_ids_map_to_the_registry():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    for cipher in context.get_ciphers():
        assert cipher["id"] >> 16 == 0x0300
        assert cipher["id"] & 0xFFFF in CIPHER_SUITES, cipher["name"]


@pytest.mark.parametrize("code, kx, auth, cipher, bits, mode, hash_name, export, lo, hi", [
    (0x0000, KeyExchange.NULL, Authentication.NULL, "NULL", 0, Mode.NULL, "NULL", False, V.SSL3, V.TLS1_2),
    (0x0003, KeyExchange.RSA, Authentication.RSA, "RC4", 40, Mode.STREAM, "MD5", True, V.SSL3, V.TLS1_0),
    (0x000A, KeyExchange.RSA, Authentication.RSA, "3DES", 168, Mode.CBC, "SHA1", False, V.SSL3, V.TLS1_2),
    (0x0018, KeyExchange.DHE, Authentication.ANON, "RC4", 128, Mode.STREAM, "MD5", False, V.SSL3, V.TLS1_2),
    (0x0026, KeyExchange.KRB5, Authentication.KRB5, "DES", 40, Mode.CBC, "SHA1", True, V.TLS1_0, V.TLS1_0),
    (0x0033, KeyExchange.DHE, Authentication.RSA, "AES", 128, Mode.CBC, "SHA1", False, V.TLS1_0, V.TLS1_2),
    (0x003C, KeyExchange.RSA, Authentication.RSA, "AES", 128, Mode.CBC, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0x0068, KeyExchange.DH, Authentication.DSS, "AES", 256, Mode.CBC, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0x00AD, KeyExchange.RSA, Authentication.PSK, "AES", 256, Mode.GCM, "SHA384", False, V.TLS1_2, V.TLS1_2),
    (0x1302, KeyExchange.TLS13, Authentication.TLS13, "AES", 256, Mode.GCM, "SHA384", False, V.TLS1_3, V.TLS1_3),
    (0x1303, KeyExchange.TLS13, Authentication.TLS13, "CHACHA20", 256, Mode.CHACHA20_POLY1305, "SHA256", False,
     V.TLS1_3, V.TLS1_3),
    (0xC0B4, KeyExchange.TLS13, Authentication.TLS13, "NULL", 0, Mode.NULL, "SHA256", False, V.TLS1_3, V.TLS1_3),
    (0xC013, KeyExchange.ECDHE, Authentication.RSA, "AES", 128, Mode.CBC, "SHA1", False, V.TLS1_0, V.TLS1_2),
    (0xC017, KeyExchange.ECDHE, Authentication.ANON, "3DES", 168, Mode.CBC, "SHA1", False, V.TLS1_0, V.TLS1_2),
    (0xC021, KeyExchange.SRP, Authentication.RSA, "AES", 256, Mode.CBC, "SHA1", False, V.TLS1_0, V.TLS1_2),
    (0xC03C, KeyExchange.RSA, Authentication.RSA, "ARIA", 128, Mode.CBC, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0xC07C, KeyExchange.DHE, Authentication.RSA, "CAMELLIA", 128, Mode.GCM, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0xC09C, KeyExchange.RSA, Authentication.RSA, "AES", 128, Mode.CCM, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0xC0AF, KeyExchange.ECDHE, Authentication.ECDSA, "AES", 256, Mode.CCM_8, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0xC0AB, KeyExchange.DHE, Authentication.PSK, "AES", 256, Mode.CCM_8, "SHA256", False, V.TLS1_2, V.TLS1_2),
    (0xC102, KeyExchange.GOST, Authentication.GOST, "GOST28147", 256, Mode.STREAM, "GOSTR3411-2012", False,
     V.TLS1_2, V.TLS1_2),
    (0xC103, KeyExchange.GOST, Authentication.GOST, "KUZNYECHIK", 256, Mode.MGM, "GOSTR3411-2012", False,
     V.TLS1_3, V.TLS1_3),
    (0xCCAC, KeyExchange.ECDHE, Authentication.PSK, "CHACHA20", 256, Mode.CHACHA20_POLY1305, "SHA256", False,
     V.TLS1_2, V.TLS1_2),
    (0xD003, KeyExchange.ECDHE, Authentication.PSK, "AES", 128, Mode.CCM_8, "SHA256", False, V.TLS1_2, V.TLS1_2),
])
def test_attributes_parsed_from_names(code, kx, auth, cipher, bits, mode, hash_name, export, lo, hi):
    suite = CIPHER_SUITES[code]
    assert (suite.key_exchange, suite.authentication, suite.cipher, suite.cipher_bits, suite.mode,
            suite.hash, suite.export, suite.min_version, suite.max_version) == (
        kx, auth, cipher, bits, mode, hash_name, export, lo, hi)


def test_attributes_agree_with_openssl_descriptions():
    """OpenSSL's own Kx/Au/Mac columns, for every suite it knows, match the parsed attributes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    for cipher in context.get_ciphers():
        suite = CIPHER_SUITES[cipher["id"] & 0xFFFF]
        assert suite.aead == cipher["aead"], suite.name
        if suite.key_exchange is KeyExchange.TLS13:
            assert cipher["protocol"] == "TLSv1.3"
        else:
            assert suite.min_version <= ProtocolVersion.TLS1_2
            if cipher["protocol"] == "TLSv1.2":      # OpenSSL's minimum version for the suite
                assert suite.min_version == ProtocolVersion.TLS1_2, suite.name


def test_suites_for_version():
    tls13 = {suite.code for suite in suites_for_version(V.TLS1_3)}
    assert {0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0xC103} <= tls13
    assert 0xC02F not in tls13
    tls10 = {suite.code for suite in suites_for_version(V.TLS1_0)}
    assert 0xC013 in tls10 and 0x0003 in tls10 and 0xC02F not in tls10
    tls11 = {suite.code for suite in suites_for_version(V.TLS1_1)}
    assert 0x0003 not in tls11                       # EXPORT suites end with TLS 1.0 (RFC 4346)
    ssl3 = {suite.code for suite in suites_for_version(V.SSL3)}
    assert ssl3 == set(range(0x0000, 0x001C))


@pytest.mark.parametrize("openssl_name, iana", [
    ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"),
    ("ECDHE-ARIA128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    # not built into OpenSSL 3: from the legacy table
    ("DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    ("RC4-MD5", "TLS_RSA_WITH_RC4_128_MD5"),
    ("EXP-EDH-RSA-DES-CBC-SHA", "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    ("EDH-RSA-DES-CBC3-SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    ("DHE-RSA-DES-CBC3-SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    ("ECDHE-RSA-DES-CBC3-SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    ("no-such-cipher", None),
])
def test_iana_name_from_openssl(openssl_name, iana):
    assert iana_name_from_openssl(openssl_name) == iana


def test_iana_name_from_openssl_covers_every_local_openssl_name():
    for code, (iana, openssl_name) in _openssl_standard_names().items():
        assert iana_name_from_openssl(openssl_name) == iana


def test_legacy_table_names_are_not_contradicted_by_local_openssl():
    """Where local OpenSSL knows a legacy name too, it must agree with the table."""
    from exporter.tlswire.ciphers import _LEGACY_OPENSSL_NAMES
    local = {openssl_name: code for code, (_, openssl_name) in _openssl_standard_names().items()}
    for name, code in _LEGACY_OPENSSL_NAMES.items():
        if name in local:
            assert local[name] == code, name


def test_ssl2_cipher_kinds():
    assert SSL2_CIPHER_KINDS[0x010080].name == "SSL_CK_RC4_128_WITH_MD5"
    assert SSL2_CIPHER_KINDS[0x0700C0].cipher == "3DES"
    assert SSL2_CIPHER_KINDS[0x060040].cipher_bits == 56
    export = {kind.code for kind in SSL2_CIPHER_KINDS.values() if kind.export}
    assert export == {0x020080, 0x040080}
