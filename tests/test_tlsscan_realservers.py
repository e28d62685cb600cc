"""The deep scan against real servers on loopback: Postfix (SMTP STARTTLS) in a weak and a
modern configuration, `openssl s_server` (implicit TLS) and `gnutls-serv` (3DES).

The ground truth is `openssl s_client`, asked one version and one suite at a time, over the
candidates the server's own cipher string allows; the scanner's findings must equal it.
Connections are counted by a TCP relay in front of the server.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import hashes

from exporter.config import DNSSettings, Module, MailProtocol, StartTLS, Target
from exporter.dnsclient import DNSClient
from exporter.tlsscan.results import TLSScanResult
from exporter.tlsscan.scanner import scan_endpoint
from exporter.tlswire import ProtocolVersion
from exporter.tlswire.grading import Class
from tests.ocsp_factory import ocsp_response
from tests.realservers.dovecot import DEFAULT_CIPHER_LIST, DovecotInstance, running_dovecot
from tests.realservers.pki import MailPKI, generate_pki
from tests.tlsservers import (
    CountingRelay, gnutls_server, openssl_accepts, openssl_cipher_names, openssl_server, openssl_temp_key_group,
)
from tests.tlsservers.postfix_tls import MODERN_CIPHERS, WEAK_CIPHERS, TLSPostfix, running_tls_postfix

pytestmark = pytest.mark.integration

VERSION_FLAGS = {ProtocolVersion.TLS1_0: "-tls1", ProtocolVersion.TLS1_1: "-tls1_1",
                 ProtocolVersion.TLS1_2: "-tls1_2", ProtocolVersion.TLS1_3: "-tls1_3"}
OPENSSL_TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256",
                        "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mailsec-tlsscan-"))
    os.chmod(directory, 0o755)      # Postfix's smtpd (user postfix) reads the key and DH files in here
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(workdir: Path) -> MailPKI:
    (workdir / "pki").mkdir()
    return generate_pki(workdir / "pki")


@pytest.fixture(scope="module")
def postfix(workdir: Path, pki: MailPKI) -> Iterator[TLSPostfix]:
    with running_tls_postfix(workdir / "postfix", pki.good_rsa) as instance:
        yield instance


async def scan_through_relay(host: str, port: int, protocol: MailProtocol) -> tuple[TLSScanResult, int]:
    """Scan host:port through a counting relay; returns the result and the connections seen."""
    async with CountingRelay(host, port) as relay:
        module = Module(name="scan", protocol=protocol, port=relay.port,
                        starttls=StartTLS.NONE if protocol.implicit_tls else StartTLS.REQUIRED,
                        timeout=5.0, interval=300.0)
        result = await scan_endpoint(Target(host="127.0.0.1", port=relay.port, module="scan"), module,
                                     DNSClient(DNSSettings()))
    return result, relay.connections


def ground_truth(host: str, port: int, cipher_string: str, starttls: str | None) -> dict[ProtocolVersion, set[str]]:
    """Version -> IANA names of the suites s_client completes a handshake with, one at a time."""
    checks = [(version, iana, dict(cipher=name))
              for version in (ProtocolVersion.TLS1_0, ProtocolVersion.TLS1_1, ProtocolVersion.TLS1_2)
              for iana, name in openssl_cipher_names(VERSION_FLAGS[version], cipher_string).items()]
    checks += [(ProtocolVersion.TLS1_3, name, dict(ciphersuites=name)) for name in OPENSSL_TLS13_SUITES]

    def accepted(check) -> bool:
        version, _, suite = check
        return openssl_accepts(host, port, VERSION_FLAGS[version], starttls=starttls, **suite)

    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(accepted, checks))
    truth: dict[ProtocolVersion, set[str]] = {version: set() for version in VERSION_FLAGS}
    for (version, iana, _), ok in zip(checks, verdicts):
        if ok:
            truth[version].add(iana)
    return truth


# The grade internet.nl's mail test gives each server configuration here, worked out by hand from
# its rules (internetstandards/Internet.nl checks/tasks/tls/evaluation.py, tls_constants.py,
# scans.py) for the suites and key exchanges the openssl/gnutls ground truth shows. The worst
# of: TLSProtocolEvaluation (TLS 1.3 good, 1.2 sufficient, the rest bad); TLSCipherEvaluation
# (CIPHERS_GOOD / _SUFFICIENT / _PHASE_OUT, anything else bad); TLSForwardSecrecyParameterEvaluation
# (the curve or DH group nassl's ordinary client gets per accepted suite: FS_EC_GOOD, FFDHE 3072+
# phase_out, any other DH bad); test_cipher_order; compression, secure renegotiation and EMS
# (bad when missing); scans.py check_pubkey (RSA 2048 phase_out) and the signature hash.
INTERNET_NL_GRADES = {
    # TLS 1.0 and 1.1 accepted: bad protocols (and CBC-SHA1, static RSA suites, a 1024-bit DH group).
    "postfix weak": Class.INSUFFICIENT,
    # TLS 1.3 + 1.2, ECDHE-RSA AES-GCM/ChaCha20 (CIPHERS_SUFFICIENT), X25519 (FS_EC_GOOD), EMS:
    # only the RSA 2048 key (check_pubkey: phase_out) is below sufficient.
    "postfix modern": Class.PHASE_OUT,
    # TLS 1.0 only.
    "s_server tls1.0": Class.INSUFFICIENT,
    # TLS 1.3 only, the default suites (good/sufficient), X25519: the RSA 2048 key.
    "s_server tls1.3": Class.PHASE_OUT,
    # TLS 1.2 + 1.3, ECDHE-ECDSA AES-GCM/ChaCha20, X25519 for an ordinary client, P-256 key:
    # sufficient (TLS 1.2). It also accepts ffdhe2048 in TLS 1.3 when a client offers nothing
    # else, which internet.nl never asks (its client offers EC groups only).
    "s_server modern": Class.SUFFICIENT,
    # Dovecot's default cipher list keeps ECDHE CBC-SHA1 suites: not in any list, bad.
    "dovecot": Class.INSUFFICIENT,
    # GnuTLS NORMAL: CBC-SHA1 suites, bad.
    "gnutls normal": Class.INSUFFICIENT,
    # 3DES, static RSA key exchange: bad.
    "gnutls 3des": Class.INSUFFICIENT,
}


def findings(result: TLSScanResult) -> dict[ProtocolVersion, set[str]]:
    return {version: {c.name for c in result.ciphers_for(version)} for version in VERSION_FLAGS}


def connection_bound(result: TLSScanResult) -> int:
    """The scanner's documented worst case without long-list splitting (scanner.py docstring):
    TLS 1.3 suites + groups + 3 (2 without TLS 1.3); per lower version accepted suites + 1
    (2 when refused after the first hello); one SSLv2 hello; 3 order hellos per version with
    2+ suites; TLS 1.2 groups + 1; one handshake for a TLS 1.3 certificate."""
    tls13 = len(result.ciphers_for(ProtocolVersion.TLS1_3))
    tls13_groups = sum(1 for g in result.groups if g.version is ProtocolVersion.TLS1_3)
    lower = [v.version for v in result.versions if v.version not in (ProtocolVersion.SSL2, ProtocolVersion.TLS1_3)]
    return ((tls13 + tls13_groups + 3 if tls13 else 2)
            + sum(len(result.ciphers_for(v)) + 1 if result.ciphers_for(v) else 2 for v in lower) + 1
            + sum(3 for v in VERSION_FLAGS if len(result.ciphers_for(v)) >= 2)
            + sum(1 for g in result.groups if g.version is ProtocolVersion.TLS1_2) + 1 + 1
            + 2         # an ordinary client's TLS 1.3 hello and, at most, its TLS 1.2 hello
            + 1         # the STARTTLS injection check
            + 1         # the fallback SCSV hello
            + 4 + 1)    # session resumption (tlsscan/resumption.py), client renegotiation


async def test_weak_postfix_findings_equal_openssl_ground_truth(postfix: TLSPostfix, workdir: Path):
    host, port = postfix.host["weak"], postfix.port["weak"]
    result, connections = await scan_through_relay(host, port, MailProtocol.SMTP)
    assert result.success, result.failure_detail

    truth = ground_truth(host, port, WEAK_CIPHERS, "smtp")
    assert findings(result) == truth
    assert set(result.supported_versions()) == {v for v, suites in truth.items() if suites}
    assert ProtocolVersion.TLS1_0 in result.supported_versions()       # the weak settings really are weak
    assert not {ProtocolVersion.SSL3, ProtocolVersion.SSL2} & set(result.supported_versions())

    dh_text = subprocess.run(["openssl", "pkeyparam", "-in", str(postfix.dh_file), "-noout", "-text"],
                             capture_output=True, text=True, check=True).stdout
    dh_bits = int(re.search(r"\((\d+) bit\)", dh_text).group(1))
    assert result.dh_min_size == dh_bits == 1024
    assert result.dh_grade is Class.INSUFFICIENT
    assert dict(result.server_cipher_order)[ProtocolVersion.TLS1_2] is False   # tls_preempt_cipherlist = no
    assert result.secure_renegotiation is True and result.compression is False
    assert result.grade is INTERNET_NL_GRADES["postfix weak"]
    assert [c.key_bits for c in result.certificates] == [2048]
    assert connections == result.connections <= connection_bound(result)
    # The target for a server that refuses with alerts, plus the fallback SCSV hello and
    # the STARTTLS injection check.
    assert connections <= len(result.ciphers) + 10 + 2 + 5     # + the session checks


async def test_modern_postfix_findings_equal_openssl_ground_truth(postfix: TLSPostfix):
    host, port = postfix.host["modern"], postfix.port["modern"]
    result, connections = await scan_through_relay(host, port, MailProtocol.SMTP)
    assert result.success, result.failure_detail

    assert findings(result) == ground_truth(host, port, MODERN_CIPHERS, "smtp")
    assert set(result.supported_versions()) == {ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3}
    assert {v.version: v.reason for v in result.versions}[ProtocolVersion.TLS1_0] == "alert_protocol_version"
    assert dict(result.server_cipher_order)[ProtocolVersion.TLS1_2] is True    # tls_preempt_cipherlist = yes
    assert result.dh_min_size is None
    # Ground truth for the groups: s_client offering exactly one group (this server has ECDHE
    # suites only, so a TLS 1.2 handshake completes exactly when the curve is supported).
    # A group is reported once, with the version that showed it first (TLS 1.2's curves come
    # from its suite enumeration; TLS 1.3 is asked about the others), so the union must equal
    # the truth, and whatever is reported per version must be true of that version.
    truth: dict[ProtocolVersion, set[str]] = {}
    for version, flag in ((ProtocolVersion.TLS1_3, "-tls1_3"), (ProtocolVersion.TLS1_2, "-tls1_2")):
        truth[version] = set()
        for group in ("x25519", "x448", "secp256r1", "secp384r1", "secp521r1", "ffdhe2048"):
            openssl_group = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(group, group)
            if openssl_accepts(host, port, flag, starttls="smtp", groups=openssl_group):
                truth[version].add(group)
    assert {g.name for g in result.groups} == truth[ProtocolVersion.TLS1_3] | truth[ProtocolVersion.TLS1_2]
    assert all(g.name in truth[g.version] for g in result.groups)
    assert [(g.version, g.name) for g in result.normal_client_groups] == [
        (version, openssl_temp_key_group(host, port, flag, starttls="smtp"))
        for version, flag in ((ProtocolVersion.TLS1_3, "-tls1_3"), (ProtocolVersion.TLS1_2, "-tls1_2"))]
    assert result.extended_master_secret is True and result.cipher_order_violation is False
    assert result.starttls_injection is False           # Postfix drops what was pipelined after STARTTLS
    assert result.fallback_scsv is True                 # OpenSSL honours RFC 7507
    # RSA 2048 certificate: phase_out (NCSC 2025), the suites and versions are no worse.
    assert result.grade is INTERNET_NL_GRADES["postfix modern"]
    assert connections == result.connections <= connection_bound(result)
    # + the fallback SCSV hello, the injection check, the session checks
    assert connections <= len(result.ciphers) + 10 + 2 + 5
    # The session checks run in the scan (tests/test_tlsscan_sessions.py checks them one by one).
    assert result.session_resumption is not None and result.session_resumption.ticket.resumed is True
    assert result.client_renegotiation is not None and result.client_renegotiation.accepted is False


async def test_implicit_tls_openssl_server_tls10_only(pki: MailPKI):
    credential = pki.good_rsa
    cipher_string = "AES128-SHA:DHE-RSA-AES256-SHA"
    with openssl_server("127.0.0.53", credential.chain_file, credential.leaf.key_file,
                        "-tls1", "-cipher", f"{cipher_string}:@SECLEVEL=0") as port:
        result, connections = await scan_through_relay("127.0.0.53", port, MailProtocol.SMTPS)
        assert findings(result) == ground_truth("127.0.0.53", port, cipher_string, None)
    assert result.supported_versions() == (ProtocolVersion.TLS1_0,)
    reasons = {v.version: v.reason for v in result.versions}
    assert reasons[ProtocolVersion.TLS1_2] == "answered_TLSv1.0"    # the server negotiated down
    assert result.dh_min_size is not None and result.dh_min_size >= 2048     # OpenSSL 3's automatic DH
    assert result.grade is INTERNET_NL_GRADES["s_server tls1.0"]
    assert connections == result.connections <= connection_bound(result)


async def test_openssl_server_refusing_tls10_and_11_with_internal_error_costs_one_hello_each(pki: MailPKI):
    # A stock s_server (OpenSSL 3, SECLEVEL 2) answers TLS 1.0 and 1.1 hellos with an
    # internal_error alert: like a close, it refuses the version (5 hellos each before).
    host = "127.0.0.59"
    credential = pki.good_rsa
    with openssl_server(host, credential.chain_file, credential.leaf.key_file) as port:
        result, connections = await scan_through_relay(host, port, MailProtocol.SMTPS)
        assert findings(result) == ground_truth(host, port, "DEFAULT", None)
    assert result.success, result.failure_detail
    reasons = {v.version: v.reason for v in result.versions}
    assert reasons[ProtocolVersion.TLS1_1] == reasons[ProtocolVersion.TLS1_0] == "alert_internal_error"
    assert set(result.supported_versions()) == {ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3}
    assert connections == result.connections <= len(result.ciphers) + 10 + 1 + 5     # + the fallback SCSV hello, the session checks


async def test_tls13_only_server_certificate_comes_from_one_real_handshake(pki: MailPKI):
    credential = pki.good_rsa
    with openssl_server("127.0.0.55", credential.chain_file, credential.leaf.key_file, "-tls1_3",
                        "-groups", "X25519:P-256") as port:
        result, connections = await scan_through_relay("127.0.0.55", port, MailProtocol.SMTPS)
        assert findings(result) == ground_truth("127.0.0.55", port, "ALL", None)
    assert result.success, result.failure_detail
    assert result.supported_versions() == (ProtocolVersion.TLS1_3,)
    # The certificate is encrypted in every hello's answer; only the extra handshake shows it.
    assert [(c.key_type, c.key_bits) for c in result.certificates] == [("rsa", 2048)]
    assert result.certificates[0].fingerprint_sha256 == credential.leaf.cert.fingerprint(hashes.SHA256()).hex()
    # Suites and groups are better than phase_out: the RSA 2048 key is what makes the grade.
    assert max(c.grade for c in result.ciphers) < Class.PHASE_OUT
    assert max(g.grade for g in result.groups) < Class.PHASE_OUT
    assert result.grade is INTERNET_NL_GRADES["s_server tls1.3"]
    assert len(result.ciphers) == 3 and {g.name for g in result.groups} == {"x25519", "secp256r1"}
    # TLS 1.3: 5 hellos (an ordinary client's first) find the 3 suites, both groups and that
    # s_server follows the client's order; then TLS 1.2 down to SSL 3.0 refused, SSLv2, and
    # the handshake for the certificate; a ticket and its resumption (no TLS 1.2: no session
    # ID, no renegotiation).
    assert connections == result.connections == 5 + 4 + 1 + 1 + 2
    assert result.session_resumption is not None and result.session_resumption.session_id.resumed is None
    assert result.client_renegotiation is not None and result.client_renegotiation.accepted is None
    assert connections <= connection_bound(result)


def dovecot_cipher_list(dovecot: DovecotInstance) -> str:
    return subprocess.run(["doveconf", "-c", str(dovecot.config_file), "-h", "ssl_cipher_list"],
                          capture_output=True, text=True, check=True).stdout.strip()


async def test_dovecot_closing_on_a_dhe_suite_it_cannot_serve_hides_no_other_suite(dovecot_server: DovecotInstance):
    # Dovecot without ssl_dh keeps DHE in its list, picks a DHE suite when the client lists one
    # first, fails for lack of parameters and closes without an alert.
    imaps = dovecot_server.endpoints["imaps-good"]
    result, connections = await scan_through_relay(imaps.host, imaps.port, MailProtocol.IMAPS)
    assert result.success, result.failure_detail
    truth = ground_truth(imaps.host, imaps.port, dovecot_cipher_list(dovecot_server), None)
    assert findings(result) == truth
    assert len(truth[ProtocolVersion.TLS1_2]) >= 10 and not any(name.startswith("TLS_DHE_") for name in truth[ProtocolVersion.TLS1_2])
    assert {v.reason for v in result.versions if not v.supported} == {"closed"}
    assert result.grade is INTERNET_NL_GRADES["dovecot"]
    assert result.starttls_injection is None            # implicit TLS: nothing to inject before it
    # The enumeration within accepted suites + 10, plus the fallback SCSV hello and the 5
    # connections of the session checks.
    assert connections == result.connections <= len(result.ciphers) + 10 + 1 + 5


@pytest.fixture(scope="module", params=[True, False], ids=["ssl_dh", "no ssl_dh"])
def dovecot_with_tls10(request: pytest.FixtureRequest, workdir: Path, pki: MailPKI) -> Iterator[tuple[DovecotInstance, bool]]:
    """Dovecot with TLS 1.0 and 1.1 still on (SECLEVEL=0, its default cipher list otherwise),
    with DH parameters (every DHE suite served) or without (DHE suites fail and it closes)."""
    with_dh = request.param
    settings = f"ssl_min_protocol = TLSv1\nssl_cipher_list = {DEFAULT_CIPHER_LIST}:@SECLEVEL=0\n"
    if with_dh:
        dh_file = workdir / "dovecot-ffdhe2048.pem"
        subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                        "-out", str(dh_file)], check=True, capture_output=True)
        dh_file.chmod(0o644)
        settings += f"ssl_dh = <{dh_file}\n"
    with running_dovecot(workdir / f"dovecot-tls10-{'dh' if with_dh else 'nodh'}", pki, ssl_settings=settings) as instance:
        yield instance, with_dh


async def test_dovecot_with_tls10_costs_accepted_suites_plus_10_connections(dovecot_with_tls10: tuple[DovecotInstance, bool]):
    # A server that refuses every hello by closing, with versions below TLS 1.2 to enumerate:
    # they are asked only about the suites TLS 1.2 served (and TLS 1.0's export suites), and
    # the hellos a pick shows to be useless are not sent (issue 14: 56 connections for 34 suites).
    dovecot, with_dh = dovecot_with_tls10
    imaps = dovecot.endpoints["imaps-good"]
    result, connections = await scan_through_relay(imaps.host, imaps.port, MailProtocol.IMAPS)
    assert result.success, result.failure_detail
    truth = ground_truth(imaps.host, imaps.port, dovecot_cipher_list(dovecot), None)
    assert findings(result) == truth
    assert {ProtocolVersion.TLS1_0, ProtocolVersion.TLS1_1} <= set(result.supported_versions())
    assert any(name.startswith("TLS_DHE_") for name in truth[ProtocolVersion.TLS1_0]) is with_dh
    assert {v.reason for v in result.versions if not v.supported} == {"closed"}
    assert dict(result.server_cipher_order) == {version: False for version in VERSION_FLAGS}   # Dovecot's default
    # The enumeration within accepted suites + 10, plus the fallback SCSV hello and the session checks.
    assert connections == result.connections <= len(result.ciphers) + 10 + 1 + 5


async def test_gnutls_tls13_suites_and_groups_equal_openssl_ground_truth(pki: MailPKI):
    # Another TLS stack, with TLS 1.3 and finite-field groups: GnuTLS's NORMAL priorities.
    credential = pki.good_rsa
    host = "127.0.0.56"
    groups = {"x25519": "x25519", "x448": "x448", "secp256r1": "P-256", "secp384r1": "P-384",
              "secp521r1": "P-521", **{f"ffdhe{bits}": f"ffdhe{bits}" for bits in (2048, 3072, 4096, 6144, 8192)}}
    with gnutls_server(host, credential.chain_file, credential.leaf.key_file, "NORMAL") as port:
        result, connections = await scan_through_relay(host, port, MailProtocol.SMTPS)
        tls13_suites = {name for name in OPENSSL_TLS13_SUITES if openssl_accepts(host, port, "-tls1_3", ciphersuites=name)}
        truth = {version: {name for name, openssl_name in groups.items()
                           if openssl_accepts(host, port, flag, groups=openssl_name)}
                 for version, flag in ((ProtocolVersion.TLS1_3, "-tls1_3"), (ProtocolVersion.TLS1_2, "-tls1_2"))}
    assert result.success, result.failure_detail
    assert {c.name for c in result.ciphers_for(ProtocolVersion.TLS1_3)} == tls13_suites
    assert len(truth[ProtocolVersion.TLS1_3]) >= 6       # the EC groups and some FFDHE: a real test of both
    # Groups are reported once, with the version that showed them first; the scan offers
    # only EC curves below TLS 1.3, so the FFDHE groups must come from TLS 1.3.
    assert {g.name for g in result.groups} == truth[ProtocolVersion.TLS1_3] | {
        name for name in truth[ProtocolVersion.TLS1_2] if not name.startswith("ffdhe")}
    assert all(g.name in truth[g.version] for g in result.groups)
    assert result.grade is INTERNET_NL_GRADES["gnutls normal"]
    assert connections == result.connections <= connection_bound(result)


async def test_3des_from_gnutls(pki: MailPKI):
    credential = pki.good_rsa
    with gnutls_server("127.0.0.54", credential.chain_file, credential.leaf.key_file,
                       "NONE:+VERS-TLS1.2:+VERS-TLS1.0:+3DES-CBC:+AES-128-CBC:+RSA:+SHA1:+COMP-NULL:+SIGN-ALL") as port:
        result, connections = await scan_through_relay("127.0.0.54", port, MailProtocol.SMTPS)
    assert result.success, result.failure_detail
    assert set(result.supported_versions()) == {ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_0}
    for version in (ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_0):
        assert findings(result)[version] == {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"}
    assert result.grade is INTERNET_NL_GRADES["gnutls 3des"]
    assert connections == result.connections


async def test_modern_openssl_server_accepting_ffdhe2048_when_forced_is_graded_like_internet_nl(pki: MailPKI):
    # A stock OpenSSL 3 server (Dovecot, Haraka and s_server alike) with ECDHE AEAD suites and a
    # P-256 key: it accepts an ffdhe2048 key share in TLS 1.3 when a client offers nothing else.
    credential = pki.good_ecdsa
    host = "127.0.0.57"
    with openssl_server(host, credential.chain_file, credential.leaf.key_file,
                        "-cipher", "ECDHE+AESGCM:ECDHE+CHACHA20", "-no_tls1", "-no_tls1_1") as port:
        result, connections = await scan_through_relay(host, port, MailProtocol.SMTPS)
        forced_ffdhe = openssl_accepts(host, port, "-tls1_3", groups="ffdhe2048")
        normal = {version: openssl_temp_key_group(host, port, flag)
                  for version, flag in ((ProtocolVersion.TLS1_3, "-tls1_3"), (ProtocolVersion.TLS1_2, "-tls1_2"))}
    assert result.success, result.failure_detail
    assert forced_ffdhe
    # The fact is reported, with its own class...
    assert {(g.name, g.grade) for g in result.groups} >= {("ffdhe2048", Class.INSUFFICIENT)}
    # ...but the grade rates what an ordinary client gets, as internet.nl does.
    assert {g.version: g.name for g in result.normal_client_groups} == normal == {
        ProtocolVersion.TLS1_3: "x25519", ProtocolVersion.TLS1_2: "x25519"}
    assert result.grade is INTERNET_NL_GRADES["s_server modern"]
    assert result.ocsp_stapling is False and result.ocsp_staple is None     # nothing to staple
    assert connections == result.connections <= connection_bound(result)

async def test_openssl_server_stapling_an_ocsp_response(pki: MailPKI, workdir: Path):
    next_update = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=3)
    staple = workdir / "staple.der"
    staple.write_bytes(ocsp_response(pki.good_ecdsa.leaf.cert, pki.intermediate, next_update=next_update))
    credential = pki.good_ecdsa
    with openssl_server("127.0.0.58", credential.chain_file, credential.leaf.key_file, "-tls1_2",
                        "-cipher", "ECDHE+AESGCM", "-status_file", str(staple)) as port:
        result, _ = await scan_through_relay("127.0.0.58", port, MailProtocol.SMTPS)
    assert result.success, result.failure_detail
    assert result.ocsp_stapling is True
    assert result.ocsp_staple is not None and result.ocsp_staple.status.value == "good"
    assert result.ocsp_staple.next_update == next_update.timestamp()
