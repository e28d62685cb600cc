"""Benchmark: the connections our deep TLS scan spends, against the suites it finds, on many
loopback server configurations (issue 14: at most accepted suites + 10 on servers that refuse
by closing).

    python3 benchmarks/tls_connections.py [--ground-truth] [NAME ...]

Not a test: it starts Dovecot (IMAPS) in several TLS configurations, the Postfix of
tests/tlsservers/postfix_tls.py, `openssl s_server` and `gnutls-serv` on 127.0.0.x, scans each
once through a TCP relay that counts the connections, and prints one line per server: the
connections, the accepted suites (every version), the difference, and how it refuses a hello
(a bare close, or alerts). With --ground-truth it also compares the suites with what
`openssl s_client` completes a handshake with, one version and one suite at a time (slow:
minutes). NAME selects servers whose name contains it. Run as root (Dovecot, Postfix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.config import MailProtocol  # noqa: E402
from tests.realservers.dovecot import DEFAULT_CIPHER_LIST, running_dovecot  # noqa: E402
from tests.realservers.pki import MailPKI, generate_pki  # noqa: E402
from tests.test_tlsscan_realservers import findings, ground_truth, scan_through_relay  # noqa: E402
from tests.tlsservers import gnutls_server, openssl_server  # noqa: E402
from tests.tlsservers.postfix_tls import MODERN_CIPHERS, WEAK_CIPHERS, running_tls_postfix  # noqa: E402

TLS10 = f"ssl_min_protocol = TLSv1\nssl_cipher_list = {DEFAULT_CIPHER_LIST}:@SECLEVEL=0\n"
GNUTLS_SECURE = "SECURE256:+SECURE128:-VERS-TLS-ALL:+VERS-TLS1.2:+VERS-TLS1.3"
ANY_SUITE = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"     # the ground truth's candidates when the list is not OpenSSL's


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    protocol: MailProtocol
    cipher_string: str            # OpenSSL names of the candidates for the ground truth
    starttls: str | None = None   # s_client's -starttls


# name -> a context manager yielding the Endpoint, given the work directory, the PKI and a DH file
Server = Callable[[Path, MailPKI, Path], ContextManager[Endpoint]]


@contextlib.contextmanager
def dovecot(ssl_settings: str, workdir: Path, pki: MailPKI, dh_file: Path) -> Iterator[Endpoint]:
    with running_dovecot(workdir, pki, ssl_settings=ssl_settings.replace("DH_FILE", str(dh_file))) as instance:
        imaps = instance.endpoints["imaps-good"]
        cipher_list = subprocess.run(["doveconf", "-c", str(instance.config_file), "-h", "ssl_cipher_list"],
                                     capture_output=True, text=True, check=True).stdout.strip()
        yield Endpoint(imaps.host, imaps.port, MailProtocol.IMAPS, cipher_list)


@contextlib.contextmanager
def postfix(listener: str, workdir: Path, pki: MailPKI, dh_file: Path) -> Iterator[Endpoint]:
    with running_tls_postfix(workdir, pki.good_rsa) as instance:
        yield Endpoint(instance.host[listener], instance.port[listener], MailProtocol.SMTP,
                       WEAK_CIPHERS if listener == "weak" else MODERN_CIPHERS, "smtp")


@contextlib.contextmanager
def s_server(options: tuple[str, ...], workdir: Path, pki: MailPKI, dh_file: Path) -> Iterator[Endpoint]:
    with openssl_server("127.0.0.81", pki.good_rsa.chain_file, pki.good_rsa.leaf.key_file, *options) as port:
        yield Endpoint("127.0.0.81", port, MailProtocol.SMTPS, ANY_SUITE)


@contextlib.contextmanager
def gnutls(priority: str, with_dh: bool, workdir: Path, pki: MailPKI, dh_file: Path) -> Iterator[Endpoint]:
    options = ("--dhparams", str(dh_file)) if with_dh else ()
    with gnutls_server("127.0.0.82", pki.good_rsa.chain_file, pki.good_rsa.leaf.key_file, priority, *options) as port:
        yield Endpoint("127.0.0.82", port, MailProtocol.SMTPS, ANY_SUITE)


SERVERS: dict[str, Server] = {
    "dovecot (the tests': TLS >= 1.2, no ssl_dh)": lambda *a: dovecot("ssl_min_protocol = TLSv1.2\n", *a),
    "dovecot TLS >= 1.2, ssl_dh": lambda *a: dovecot("ssl_min_protocol = TLSv1.2\nssl_dh = <DH_FILE\n", *a),
    "dovecot TLS >= 1.0, no ssl_dh": lambda *a: dovecot(TLS10, *a),
    "dovecot TLS >= 1.0, ssl_dh": lambda *a: dovecot(TLS10 + "ssl_dh = <DH_FILE\n", *a),
    "dovecot TLS >= 1.0, no ssl_dh, server order": lambda *a: dovecot(TLS10 + "ssl_prefer_server_ciphers = yes\n", *a),
    "dovecot TLS >= 1.2, ssl_dh, server order":
        lambda *a: dovecot("ssl_min_protocol = TLSv1.2\nssl_dh = <DH_FILE\nssl_prefer_server_ciphers = yes\n", *a),
    "postfix weak": lambda *a: postfix("weak", *a),
    "postfix modern": lambda *a: postfix("modern", *a),
    "s_server defaults": lambda *a: s_server((), *a),
    "s_server modern": lambda *a: s_server(("-cipher", "ECDHE+AESGCM:ECDHE+CHACHA20", "-no_tls1", "-no_tls1_1"), *a),
    "s_server ALL": lambda *a: s_server(("-cipher", "ALL:@SECLEVEL=0"), *a),
    "s_server ALL, server order": lambda *a: s_server(("-cipher", "ALL:@SECLEVEL=0", "-serverpref"), *a),
    "gnutls-serv NORMAL": lambda *a: gnutls("NORMAL", False, *a),
    "gnutls-serv NORMAL, dhparams": lambda *a: gnutls("NORMAL", True, *a),
    "gnutls-serv NORMAL with TLS 1.0, 1.1": lambda *a: gnutls("NORMAL:+VERS-TLS1.0:+VERS-TLS1.1", False, *a),
    "gnutls-serv SECURE, TLS 1.2-1.3": lambda *a: gnutls(GNUTLS_SECURE, False, *a),
    "gnutls-serv SECURE, TLS 1.2-1.3, dhparams": lambda *a: gnutls(GNUTLS_SECURE, True, *a),
}


async def measure(name: str, endpoint: Endpoint, with_ground_truth: bool) -> str:
    result, connections = await scan_through_relay(endpoint.host, endpoint.port, endpoint.protocol)
    suites = len(result.ciphers)
    refusals = {v.reason for v in result.versions if not v.supported}
    refuses = "closes" if "closed" in refusals else "alerts"
    line = f"| {name} | {refuses} | {connections} | {suites} | {connections - suites:+d} |"
    if not result.success:
        line += f" scan failed: {result.failure_detail} |"
    elif with_ground_truth:
        truth = ground_truth(endpoint.host, endpoint.port, endpoint.cipher_string, endpoint.starttls)
        line += " yes |" if findings(result) == truth else f" NO: {findings(result)} != {truth} |"
    return line


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ground-truth", action="store_true", help="compare the suites with openssl s_client's")
    parser.add_argument("names", nargs="*", help="only the servers whose name contains one of these")
    args = parser.parse_args()
    print("| server | refuses by | connections | accepted suites | difference |"
          + (" same suites as s_client |" if args.ground_truth else ""))
    print("|---|---|---|---|---|" + ("---|" if args.ground_truth else ""))
    with tempfile.TemporaryDirectory(prefix="mailsec-tlsconn-") as directory:
        workdir = Path(directory)
        workdir.chmod(0o755)        # Dovecot and Postfix read the keys and DH files in here
        (workdir / "pki").mkdir()
        pki = generate_pki(workdir / "pki")
        dh_file = workdir / "ffdhe2048.pem"
        subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                        "-out", str(dh_file)], check=True, capture_output=True)
        dh_file.chmod(0o644)
        for index, (name, server) in enumerate(SERVERS.items()):
            if args.names and not any(wanted in name for wanted in args.names):
                continue
            with server(workdir / f"server{index}", pki, dh_file) as endpoint:
                print(await measure(name, endpoint, args.ground_truth), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
