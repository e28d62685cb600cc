"""A real nginx serving the MTA-STS policy hosts of the test zones on 127.77.0.3:443.

Each mta-sts.<domain> host of `tests/dnsfixtures/zones.STS_DOMAINS` is one server block
(chosen by SNI and Host) with one behaviour, stated in `SITES`. The certificates come from
a CA generated here; `running_https_lab().ca_file` is the file to trust.

`running_https_lab()` starts nginx once per process and stops it when the process exits,
tests failing or not; nginx also gets SIGKILL if the test process dies first.
"""

from __future__ import annotations

import atexit
import datetime
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.dnsfixtures import die_with_parent
from tests.dnsfixtures.zones import HTTPS_ADDRESS, STS_DOMAINS
from tests.realservers import stop_process

NGINX = "/usr/sbin/nginx"
STARTUP_SECONDS = 10.0

GOOD_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx1.good.test\r\nmx: *.good.test\r\nmax_age: 604800\r\n"
UNCOVERED_POLICY = "version: STSv1\nmode: enforce\nmx: mx1.good.test\nmax_age: 3600\n"   # sts-uncovered also has mx2
INVALID_POLICY = "version: STSv1\nmode: enforce\nmax_age: 86400\n"                      # enforce without mx
BIG_POLICY = GOOD_POLICY + "".join(f"x-padding-{n}: {'p' * 90}\n" for n in range(1000))  # ~100 KB
WRONG_NAME = "wrong-name.test"   # the only name in the certificate of mta-sts.sts-tls.test

# What each policy host does, as the body of its `location = /.well-known/mta-sts.txt`.
SITES = {
    "good": "default_type text/plain; charset utf-8; alias {files}/good.txt;",
    "sts-404": "return 404;",
    "sts-type": "default_type text/html; alias {files}/good.txt;",
    "sts-redirect": "return 301 https://mta-sts.good.test/.well-known/mta-sts.txt;",
    "sts-big": "default_type text/plain; alias {files}/big.txt;",
    # sub_filter drops Content-Length: the body comes chunked, only reading can find it too big.
    "sts-big-chunked": "default_type text/plain; sub_filter_types text/plain; sub_filter 'nomatch' 'x'; alias {files}/big.txt;",
    "sts-invalid": "default_type text/plain; alias {files}/invalid.txt;",
    "sts-tls": "default_type text/plain; alias {files}/good.txt;",
    "sts-uncovered": "default_type text/plain; alias {files}/uncovered.txt;",
}
assert set(SITES) == set(STS_DOMAINS)


@dataclass(frozen=True)
class HTTPSLab:
    directory: Path
    ca_file: str     # PEM of the CA that issued the policy hosts' certificates


_lab: HTTPSLab | None = None
_process: subprocess.Popen | None = None


def running_https_lab() -> HTTPSLab:
    global _lab
    if _lab is None:
        directory = Path(tempfile.mkdtemp(prefix="mailsec-httpslab-"))
        atexit.register(_stop, directory)
        ca_file = _write_pki(directory)
        _write_files(directory)
        _start_nginx(directory)
        _lab = HTTPSLab(directory, str(ca_file))
    return _lab


def _write_pki(directory: Path) -> Path:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MTA-STS test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(file_stem: str, names: list[str]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        (directory / f"{file_stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{file_stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    leaf("policy-hosts", [f"mta-sts.{label}.test" for label in SITES if label != "sts-tls"])
    leaf("wrong-name", [WRONG_NAME])
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca_file


def _write_files(directory: Path) -> None:
    files = directory / "files"
    files.mkdir()
    for name, body in (("good", GOOD_POLICY), ("uncovered", UNCOVERED_POLICY), ("invalid", INVALID_POLICY),
                       ("big", BIG_POLICY)):
        (files / f"{name}.txt").write_text(body)


def _start_nginx(directory: Path) -> None:
    global _process
    servers = "".join(
        f"  server {{\n    listen {HTTPS_ADDRESS}:443 ssl;\n    server_name mta-sts.{label}.test;\n"
        f"    ssl_certificate {directory}/{'wrong-name' if label == 'sts-tls' else 'policy-hosts'}.crt;\n"
        f"    ssl_certificate_key {directory}/{'wrong-name' if label == 'sts-tls' else 'policy-hosts'}.key;\n"
        f"    location = /.well-known/mta-sts.txt {{ {behaviour.format(files=directory / 'files')} }}\n  }}\n"
        for label, behaviour in SITES.items()
    )
    config = directory / "nginx.conf"
    config.write_text(
        # One process (no workers): SIGKILL on the test process's death reaches all of nginx,
        # and it keeps root's rights to read the 0700 temporary directory.
        f"daemon off;\nmaster_process off;\npid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {directory}/tmp;\n  proxy_temp_path {directory}/tmp;\n"
        f"  fastcgi_temp_path {directory}/tmp;\n  uwsgi_temp_path {directory}/tmp;\n  scgi_temp_path {directory}/tmp;\n"
        "  types { }\n  default_type application/octet-stream;\n"
        + servers + "}\n"
    )
    (directory / "tmp").mkdir()
    log = directory / "nginx.out"
    with open(log, "wb") as log_file:
        _process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if _process.poll() is not None:
            raise RuntimeError(f"nginx exited at start:\n{log.read_text()}\n{(directory / 'error.log').read_text()}")
        try:
            socket.create_connection((HTTPS_ADDRESS, 443), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {HTTPS_ADDRESS}:443 within {STARTUP_SECONDS}s")


def _stop(directory: Path) -> None:
    global _process
    if _process is not None:
        stop_process(_process, timeout=5)
        _process = None
    shutil.rmtree(directory, ignore_errors=True)
