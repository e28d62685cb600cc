"""A private Postfix with two smtpd listeners for the deep-scan tests (SMTP STARTTLS):

- "weak": configured like the weak settings of the reference article: TLS 1.0 and 1.1 still
  on, every cipher OpenSSL has (CBC, static RSA, DHE) at SECLEVEL=0, a 1024-bit DH group,
  the client's cipher order;
- "modern": TLS 1.2 and 1.3 only, ECDHE with AEAD only, the server's cipher order.

No SASL, no Dovecot: the scan only needs EHLO and STARTTLS. The instance is built with the
directories, base main.cf, internal services and start/stop helpers of
tests/realservers/postfix.py.
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from tests.realservers import free_port
from tests.realservers.pki import ServerCredential
from tests.realservers.postfix import (
    INTERNAL_SERVICES,
    PostfixInstance,
    create_instance_directories,
    instance_main_cf,
    start_postfix,
    stop_postfix,
)

WEAK_CIPHERS = "ALL:!aNULL:@SECLEVEL=0"
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

LISTENERS: Mapping[str, Mapping[str, str]] = {
    "weak": {
        "smtpd_tls_protocols": ">=TLSv1",
        "smtpd_tls_ciphers": "medium",
        "tls_medium_cipherlist": WEAK_CIPHERS,
        "tls_preempt_cipherlist": "no",
    },
    "modern": {
        "smtpd_tls_protocols": ">=TLSv1.2",
        "smtpd_tls_ciphers": "high",
        "tls_high_cipherlist": MODERN_CIPHERS,
        "tls_preempt_cipherlist": "yes",
    },
}
ADDRESSES = {"weak": "127.0.0.51", "modern": "127.0.0.52"}


@dataclass(frozen=True)
class TLSPostfix:
    host: dict[str, str]        # listener -> address
    port: dict[str, int]        # listener -> port
    dh_file: Path               # the 1024-bit DH parameters of the weak listener


def _main_cf(workdir: Path, credential: ServerCredential, dh_file: Path) -> str:
    return instance_main_cf(workdir, "mx.tlsscan.test") + f"""\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {credential.chain_file}
smtpd_tls_key_file = {credential.leaf.key_file}
smtpd_tls_dh1024_param_file = {dh_file}
smtpd_tls_loglevel = 0
"""


@contextlib.contextmanager
def running_tls_postfix(workdir: Path, credential: ServerCredential) -> Iterator[TLSPostfix]:
    config_dir, queue_dir, _ = create_instance_directories(workdir)
    dh_file = workdir / "dh1024.pem"
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "dh_paramgen_prime_len:1024",
                    "-out", str(dh_file)], check=True, capture_output=True, timeout=120)
    ports = {name: free_port(ADDRESSES[name]) for name in LISTENERS}
    (config_dir / "main.cf").write_text(_main_cf(workdir, credential, dh_file))
    master = ""
    for name, options in LISTENERS.items():
        master += f"{ADDRESSES[name]}:{ports[name]} inet n - n - - smtpd\n"
        master += "".join(f"  -o {key}={value}\n" for key, value in options.items())
    (config_dir / "master.cf").write_text(master + INTERNAL_SERVICES)
    instance = PostfixInstance(config_dir=config_dir, queue_dir=queue_dir, maillog=workdir / "maillog", endpoints={})
    try:
        start_postfix(instance, ((ADDRESSES[name], port) for name, port in ports.items()))
        yield TLSPostfix(dict(ADDRESSES), ports, dh_file)
    finally:
        stop_postfix(instance)
