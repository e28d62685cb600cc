"""--web.config.file: the exporter-toolkit format, HTTPS with a generated certificate, client
certificates, and basic authentication that does not tell which users exist."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import http.client
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.config.web import WebConfig, WebConfigError, load_web_config
from exporter.web.auth import BasicAuth

from exporter_process import ExporterProcess
from hostile import issue, write_pem

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def with_cost(cost: str) -> str:
    """HASH with another cost: "$2b$04$..." -> "$2b$<cost>$..." (not a hash of anything)."""
    return f"{HASH[:4]}{cost}{HASH[6:]}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    directory = tmp_path_factory.mktemp("webpki")
    ca = issue("Web Test CA", is_ca=True)
    server = issue("localhost", issuer=ca, ip_addresses=("127.0.0.1",), dns_names=("localhost",))
    client = issue("prometheus", issuer=ca, extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    for name, issued in (("server", server), ("client", client)):
        write_pem(str(directory), f"{name}.pem", issued)
        (directory / f"{name}.key").write_bytes(issued.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    write_pem(str(directory), "ca.pem", ca)
    return directory


def write(directory: Path, text: str, name: str = "web.yml") -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def test_a_full_file_loads_with_paths_relative_to_it(pki):
    config = load_web_config(write(pki, f"""
        tls_server_config:
          cert_file: server.pem
          key_file: server.key
          client_ca_file: ca.pem
          client_auth_type: RequireAndVerifyClientCert
          min_version: TLS13
        basic_auth_users:
          prometheus: {HASH}
        mailsec_public_paths: [/-/healthy]
    """))
    assert config.tls.cert_file == str(pki / "server.pem") and config.tls.client_ca_file == str(pki / "ca.pem")
    assert config.tls.min_version == "TLS13" and config.tls.max_version == "TLS13"
    assert dict(config.basic_auth_users) == {"prometheus": HASH.encode()}
    assert config.public_paths == {"/-/healthy"}


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "~\n", "tls_server_config:\nbasic_auth_users: {}\n"])
def test_an_empty_file_means_plain_http_without_auth(pki, text):
    assert load_web_config(write(pki, text, "empty.yml")) == WebConfig()


TLS = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"   # lines 1 to 3
BAD_FILES = [
    ("no key", "tls_server_config:\n  cert_file: server.pem\n", 2, "tls_server_config: 'key_file' is required"),
    ("missing cert", "tls_server_config:\n  cert_file: nosuch.pem\n  key_file: server.key\n", 2,
     "tls_server_config.cert_file: cannot read {dir}/nosuch.pem: No such file or directory"),
    ("cert is a directory", "tls_server_config:\n  cert_file: .\n  key_file: server.key\n", 2,
     "tls_server_config.cert_file: cannot read {dir}: Is a directory"),
    ("key as cert", "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n", 2,
     "tls_server_config.cert_file: {dir}/server.key holds no PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)"),
    ("cert as key", "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n", 3,
     "tls_server_config.key_file: {dir}/server.pem holds no PEM private key "
     "(or an encrypted one, which is not supported)"),
    ("endless key", "tls_server_config:\n  cert_file: server.pem\n  key_file: /dev/zero\n", 3,
     "tls_server_config.key_file: cannot read /dev/zero: it is not a regular file (a device, FIFO or socket)"),
    ("client CA not PEM", TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n", 5,
     "tls_server_config.client_ca_file: {dir}/server.key holds no PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)"),
    ("unknown version", TLS + "  min_version: TLS14\n", 4,
     "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13; got 'TLS14'"),
    ("min above max", TLS + "  min_version: TLS13\n  max_version: TLS12\n", 5,
     "tls_server_config: min_version TLS13 is above max_version TLS12"),
    ("key of another certificate", "tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n", 3,
     "tls_server_config.key_file: {dir}/client.key is not the private key of the certificate in {dir}/server.pem"),
    ("client CA without client auth", TLS + "  client_ca_file: ca.pem\n", 4,
     "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert: set "
     "client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
    ("client auth without client CA", TLS + "  client_auth_type: VerifyClientCertIfGiven\n", 4,
     "tls_server_config.client_auth_type: VerifyClientCertIfGiven needs client_ca_file, "
     "the CAs to verify clients against"),
    ("unverified client certificates", TLS + "  client_auth_type: RequireAnyClientCert\n", 4,
     "tls_server_config.client_auth_type: RequireAnyClientCert (a client certificate that is not verified) is not "
     "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"),
    ("toolkit TLS key", TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", 4,
     "tls_server_config.cipher_suites: exporter-toolkit's key 'cipher_suites' is not supported by mailsec-exporter"),
    ("toolkit top-level key", "# HTTP/2\nhttp_server_config: {http2: false}\n", 2,
     "http_server_config: exporter-toolkit's key 'http_server_config' is not supported by mailsec-exporter"),
    ("unknown key", "basic_auth_user: {}\n", 1,
     "basic_auth_user: unknown key (did you mean 'basic_auth_users'?); "
     "allowed here: tls_server_config, basic_auth_users, mailsec_public_paths"),
    ("password instead of hash", "basic_auth_users:\n  prometheus: secret\n", 2,
     "basic_auth_users.prometheus: must be a bcrypt hash ($2y$10$... ; make one with "
     "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`), not the password itself"),
    *[(f"bcrypt cost {cost}", f"basic_auth_users:\n  prometheus: '{with_cost(cost)}'\n", 2,
        f"basic_auth_users.prometheus: bcrypt cost {cost} is unusable: bcrypt refuses costs below 4, and each step "
        "up doubles the time of a check (seconds at 16, more than a day at 31); make the hash with a cost from 4 "
        "to 16 (10 is usual)") for cost in ("00", "03", "17", "31", "32", "99")],
    ("path not exemptible", "mailsec_public_paths:\n  - /-/healthy\n  - /metrics\n", 3,
     "mailsec_public_paths[1]: must be one of /-/healthy, /-/ready; got '/metrics'"),
    ("invalid YAML", "tls_server_config: [\n", 2,
     "invalid YAML: while parsing a flow node, expected the node content, but found '<stream end>'"),
]


@pytest.mark.parametrize("text, line, reason", [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_bad_files_are_refused_with_line_key_and_reason(pki, text, line, reason):
    path = write(pki, text, "bad.yml")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert str(caught.value) == f"{path}:{line}: {reason.format(dir=pki)}"


@pytest.mark.parametrize("cost", ["04", "10", "16"])
def test_bcrypt_costs_from_4_to_16_are_accepted(pki, cost):
    config = load_web_config(write(pki, f"basic_auth_users:\n  prometheus: '{with_cost(cost)}'\n", "cost.yml"))
    assert config.basic_auth_users["prometheus"] == with_cost(cost).encode()


# --------------------------------------------------------------------------------------
# Basic authentication
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization, accepted",
    [
        (basic("prometheus", PASSWORD), True),
        (basic("prometheus", "wrong"), False),
        (basic("nobody", PASSWORD), False),
        (basic("prometheus", "x" * 100), False),             # bcrypt refuses > 72 bytes: never a match
        ("Basic !!!notbase64", False),
        ("Bearer abc", False),
        (None, False),
        ("Basic " + base64.b64encode(b"no colon").decode(), False),
    ],
)
async def test_basic_auth_check(authorization, accepted):
    assert await BasicAuth({"prometheus": HASH.encode()}).check(authorization) is accepted


async def test_an_unknown_user_costs_a_bcrypt_check_like_a_known_one():
    slow_hash = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=10))   # ~50 ms: well above timer noise
    auth = BasicAuth({"prometheus": slow_hash})

    async def seconds(user):
        started = time.perf_counter()
        assert not await auth.check(basic(user, "wrong"))
        return time.perf_counter() - started

    known = min([await seconds("prometheus") for _ in range(3)])
    unknown = min([await seconds("nobody") for _ in range(3)])
    assert unknown > 0.5 * known and known > 0.5 * unknown


@pytest.fixture
def bcrypt_checks(monkeypatch):
    """The passwords bcrypt.checkpw is called with, and the most checks seen running at once."""
    checkpw, lock = bcrypt.checkpw, threading.Lock()
    seen = {"passwords": [], "running": 0, "most_at_once": 0}

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        with lock:
            seen["passwords"].append(password)
            seen["running"] += 1
            seen["most_at_once"] = max(seen["most_at_once"], seen["running"])
        try:
            time.sleep(0.01)     # long enough for concurrent checks to overlap
            return checkpw(password, hashed)
        finally:
            with lock:
                seen["running"] -= 1

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    return seen


async def test_verified_credentials_are_remembered_and_wrong_ones_are_not(bcrypt_checks):
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert await auth.check(basic("prometheus", PASSWORD))
    assert all(await asyncio.gather(*(auth.check(basic("prometheus", PASSWORD)) for _ in range(20))))
    assert len(bcrypt_checks["passwords"]) == 1          # the 20 scrapes after the first paid no bcrypt
    for _ in range(2):
        assert not await auth.check(basic("prometheus", "wrong"))
        assert not await auth.check(basic("nobody", PASSWORD))
    assert len(bcrypt_checks["passwords"]) == 5          # each refusal paid its bcrypt check


async def test_the_remembered_credentials_are_the_most_recent_few(bcrypt_checks):
    users = {name: bcrypt.hashpw(name.encode(), bcrypt.gensalt(rounds=4)) for name in ("a", "b", "c")}
    auth = BasicAuth(users, cache_size=2)
    for name in ("a", "b", "c", "b", "c"):
        assert await auth.check(basic(name, name))
    assert bcrypt_checks["passwords"] == [b"a", b"b", b"c"]
    assert await auth.check(basic("a", "a"))             # forgotten for b and c: bcrypt again
    assert bcrypt_checks["passwords"] == [b"a", b"b", b"c", b"a"]


async def test_a_flood_of_wrong_passwords_runs_two_bcrypt_checks_at_most_and_not_on_the_default_executor(
    bcrypt_checks,
):
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    release = threading.Event()
    busy = loop.run_in_executor(None, release.wait)     # the default executor's only thread, as in a slow lookup
    try:
        auth = BasicAuth({"prometheus": HASH.encode()})
        flood = [auth.check(basic("prometheus", f"guess {index}")) for index in range(10)]
        assert not any(await asyncio.wait_for(asyncio.gather(*flood), 10))
        assert await asyncio.wait_for(auth.check(basic("prometheus", PASSWORD)), 10)
    finally:
        release.set()
        await busy
    assert len(bcrypt_checks["passwords"]) == 11 and bcrypt_checks["most_at_once"] == 2


# --------------------------------------------------------------------------------------
# The real exporter over HTTPS with basic auth
# --------------------------------------------------------------------------------------


@pytest.fixture
def https_exporter(pki, tmp_path):
    web = write(pki, f"""
        tls_server_config: {{cert_file: server.pem, key_file: server.key}}
        basic_auth_users:
          prometheus: {HASH}
        mailsec_public_paths: [/-/healthy]
    """, "https.yml")
    config = tmp_path / "config.yml"
    config.write_text("targets: []\n")
    client_context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    process = ExporterProcess(config, "--web.config.file", web, scheme="https", ssl_context=client_context)
    yield process
    process.stop()


def test_https_with_basic_auth(https_exporter):
    status, _, body = https_exporter.get("/metrics", headers={"Authorization": basic("prometheus", PASSWORD)})
    assert status == 200 and "mailsec_exporter_build_info" in body
    wrong_password = https_exporter.get("/metrics", headers={"Authorization": basic("prometheus", "nope")})
    unknown_user = https_exporter.get("/metrics", headers={"Authorization": basic("nobody", PASSWORD)})
    no_credentials = https_exporter.get("/")
    assert wrong_password == unknown_user == no_credentials      # same status, type and body
    assert wrong_password[0] == 401
    assert https_exporter.get("/-/healthy")[0] == 200           # exempted by mailsec_public_paths
    assert https_exporter.get("/-/ready")[0] == 401             # not exempted
    assert https_exporter.get("/-/reload", method="POST")[0] == 401


def test_plain_http_is_not_answered_when_tls_is_configured(https_exporter):
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{https_exporter.port}/-/healthy", timeout=5)


def test_client_certificates_are_required_when_configured(pki, tmp_path):
    web = write(pki, """
        tls_server_config:
          cert_file: server.pem
          key_file: server.key
          client_ca_file: ca.pem
          client_auth_type: RequireAndVerifyClientCert
    """, "mtls.yml")
    config = tmp_path / "config.yml"
    config.write_text("targets: []\n")
    with_cert = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with_cert.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    process = ExporterProcess(config, "--web.config.file", web, scheme="https", ssl_context=with_cert)
    try:
        assert process.get("/-/healthy")[0] == 200
        process.ssl_context = ssl.create_default_context(cafile=str(pki / "ca.pem"))   # no client certificate
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            process.get("/-/healthy", timeout=5)
    finally:
        process.stop()


@pytest.mark.parametrize(
    "text, error",
    [
        ("basic_auth_users: {prometheus: plaintext}\n", "1: basic_auth_users.prometheus: must be a bcrypt hash"),
        ("tls_server_config: {cert_file: ., key_file: server.key}\n",   # was a traceback
         "1: tls_server_config.cert_file: cannot read {dir}: Is a directory"),
    ],
)
def test_an_invalid_web_config_stops_the_start(pki, tmp_path, text, error):
    config = tmp_path / "config.yml"
    config.write_text("targets: []\n")
    web = write(pki, text, "broken.yml")
    run = subprocess.run([sys.executable, "-m", "exporter", "--config.file", str(config), "--web.config.file", web,
                          "--web.listen-address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith(f"web config error: {web}:{error.format(dir=pki)}")
