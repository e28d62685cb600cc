"""A private Dovecot 2.3 instance: IMAP and POP3, with and without implicit TLS.

It runs in the foreground (`dovecot -F`) as our child process, with its base_dir,
state_dir and log inside a work directory. Users come from a passwd-file, so no system
account is needed. The same instance is Postfix's SASL backend (`dovecot_sasl_socket`).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from exporter.config import MailProtocol

from . import Endpoint, end_process_group, free_port, startup_failure, stop_process, wait_until_listening
from .pki import GOOD_NAME, MailPKI

DOVECOT = "/usr/sbin/dovecot"

GOOD_ADDRESS = "127.0.0.31"              # plaintext logins refused before TLS
PLAINTEXT_AUTH_ADDRESS = "127.0.0.32"    # disable_plaintext_auth = no: passwords may go in clear

SASL_USER = "alice"
SASL_PASSWORD = "correct horse"

# The mailbox that DMARC and TLS-RPT reports are delivered to (tests/test_reports_realservers.py).
REPORTS_USER = "reports"
REPORTS_PASSWORD = "report reader"


@dataclass(frozen=True)
class _Listener:
    scenario: str
    protocol: MailProtocol
    address: str
    name: str      # Dovecot's listener name: "imap", "imaps", "pop3", "pop3s" replace the built-in ones


_LISTENERS = (
    _Listener("imap-good", MailProtocol.IMAP, GOOD_ADDRESS, "imap"),
    _Listener("imaps-good", MailProtocol.IMAPS, GOOD_ADDRESS, "imaps"),
    _Listener("pop3-good", MailProtocol.POP3, GOOD_ADDRESS, "pop3"),
    _Listener("pop3s-good", MailProtocol.POP3S, GOOD_ADDRESS, "pop3s"),
    _Listener("imap-plaintext-auth", MailProtocol.IMAP, PLAINTEXT_AUTH_ADDRESS, "imap_plaintext_auth"),
    _Listener("pop3-plaintext-auth", MailProtocol.POP3, PLAINTEXT_AUTH_ADDRESS, "pop3_plaintext_auth"),
)


@dataclass(frozen=True)
class DovecotInstance:
    config_file: Path
    log_file: Path
    sasl_socket: Path                  # Dovecot's auth service, for Postfix's smtpd_sasl_path
    endpoints: Mapping[str, Endpoint]  # by scenario
    home: Path | None = None           # the users' home directories (home/<user>/Maildir)

    def imaps(self, user: str = REPORTS_USER, password: str = REPORTS_PASSWORD) -> imaplib.IMAP4_SSL:
        """A logged-in IMAPS session (the caller logs out)."""
        endpoint = self.endpoints["imaps-good"]
        context = ssl.create_default_context(cafile=endpoint.ca_file)
        session = _NamedIMAPS(endpoint.host, endpoint.port, endpoint.server_name, context)
        session.login(user, password)
        return session

    def append(self, folder: str, raw: bytes, flags: str = "") -> None:
        """Deliver a mail by IMAP APPEND, creating the folder if needed."""
        session = self.imaps()
        try:
            session.create(f'"{folder}"')
            status, data = session.append(f'"{folder}"', flags or None, None, raw)
            assert status == "OK", data
        finally:
            session.logout()

    def deliver_maildir(self, folder: str, raw: bytes, user: str = REPORTS_USER) -> Path:
        """Deliver a mail by writing it into the folder's Maildir, as an MDA does (for mails
        too large to APPEND quickly). The folder must exist (append() or CREATE made it)."""
        assert self.home is not None
        directory = self.home / user / "Maildir" / ("." + folder if folder != "INBOX" else "") / "new"
        name = f"{time.time_ns()}.P{os.getpid()}.mailsec,S={len(raw)}"
        path = directory / name
        path.write_bytes(raw)
        account = pwd.getpwnam("dovecot")
        os.chown(path, account.pw_uid, account.pw_gid)
        return path


class _NamedIMAPS(imaplib.IMAP4_SSL):
    """IMAPS to an address, the certificate checked against a name."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext):
        self._server_name = server_name
        super().__init__(address, port, ssl_context=context, timeout=10)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._server_name)


def _listener_block(listener: _Listener, port: int) -> str:
    ssl = "yes" if listener.protocol.implicit_tls else "no"
    return (f"  inet_listener {listener.name} {{\n"
            f"    address = {listener.address}\n    port = {port}\n    ssl = {ssl}\n  }}\n")


# Dovecot's TLS settings in the tests: TLS 1.2 at least, its default cipher list, no ssl_dh.
DEFAULT_SSL_SETTINGS = "ssl_min_protocol = TLSv1.2\n"
# Dovecot 2.3's default ssl_cipher_list.
DEFAULT_CIPHER_LIST = "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH"


def _config(workdir: Path, pki: MailPKI, ports: Mapping[str, int], sasl_socket: Path,
            ssl_settings: str = DEFAULT_SSL_SETTINGS) -> str:
    def service(family: str) -> str:
        blocks = "".join(_listener_block(listener, ports[listener.scenario])
                         for listener in _LISTENERS if listener.protocol.family == family)
        return f"service {family}-login {{\n{blocks}}}\n"

    return f"""\
base_dir = {workdir}/run
state_dir = {workdir}/state
log_path = {workdir}/dovecot.log
protocols = imap pop3
listen = {GOOD_ADDRESS}
default_internal_user = dovecot
default_login_user = dovenull

ssl = yes
ssl_cert = <{pki.good_rsa.chain_file}
ssl_key = <{pki.good_rsa.leaf.key_file}
{ssl_settings}
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {workdir}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={workdir}/home/%u
}}
mail_location = maildir:~/Maildir
# The mail user is the `dovecot` system account, whose UID is below the default of 500.
first_valid_uid = {pwd.getpwnam("dovecot").pw_uid}

{service("imap")}
{service("pop3")}
service auth {{
  unix_listener {sasl_socket} {{
    user = postfix
    mode = 0600
  }}
}}

local {PLAINTEXT_AUTH_ADDRESS} {{
  disable_plaintext_auth = no
}}
"""


def _imap_greeting(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=2) as conn:
        return conn.makefile("rb").readline().decode("ascii", "replace")


def _wait_until_ready(process: subprocess.Popen, endpoints: Mapping[str, Endpoint], deadline: float) -> None:
    for endpoint in endpoints.values():
        wait_until_listening(endpoint.host, endpoint.port, deadline)
    # Until its auth process answers, Dovecot greets IMAP clients with "Waiting for
    # authentication process to respond" instead of its capabilities.
    imap = endpoints["imap-good"]
    while "Waiting for authentication" in _imap_greeting(imap.host, imap.port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise TimeoutError("Dovecot's auth process did not come up")
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    stop_process(process, timeout=10)
    # The login and auth children are in the master's process group: none may survive it.
    end_process_group(process.pid, grace=5)


@contextlib.contextmanager
def running_dovecot(workdir: Path, pki: MailPKI, startup_timeout: float = 15.0,
                    ssl_settings: str = DEFAULT_SSL_SETTINGS) -> Iterator[DovecotInstance]:
    """Start Dovecot with every scenario of `_LISTENERS`; stop it on exit, whatever happens.
    `ssl_settings`: the lines of dovecot.conf about TLS versions, suites and DH parameters."""
    for sub in ("run", "state", "home"):
        (workdir / sub).mkdir(parents=True)
    # The mail processes run as `dovecot` (userdb static): the report user's home must be theirs.
    account = pwd.getpwnam("dovecot")
    (workdir / "home" / REPORTS_USER).mkdir()
    os.chown(workdir / "home" / REPORTS_USER, account.pw_uid, account.pw_gid)
    (workdir / "users").write_text(f"{SASL_USER}:{{PLAIN}}{SASL_PASSWORD}\n"
                                   f"{REPORTS_USER}:{{PLAIN}}{REPORTS_PASSWORD}\n")
    sasl_socket = workdir / "sasl-auth"
    ports = {listener.scenario: free_port(listener.address) for listener in _LISTENERS}
    config_file = workdir / "dovecot.conf"
    config_file.write_text(_config(workdir, pki, ports, sasl_socket, ssl_settings))
    instance = DovecotInstance(
        config_file=config_file,
        log_file=workdir / "dovecot.log",
        sasl_socket=sasl_socket,
        home=workdir / "home",
        endpoints={
            listener.scenario: Endpoint(
                scenario=listener.scenario, protocol=listener.protocol, host=listener.address,
                port=ports[listener.scenario], server_name=GOOD_NAME, ca_file=str(pki.ca_file),
                credential=pki.good_rsa)
            for listener in _LISTENERS
        },
    )
    stderr_file = workdir / "dovecot.stderr"
    with open(stderr_file, "wb") as stderr:
        process = subprocess.Popen([DOVECOT, "-F", "-c", str(config_file)], stdin=subprocess.DEVNULL,
                                   stdout=stderr, stderr=stderr, start_new_session=True)
    try:
        try:
            _wait_until_ready(process, instance.endpoints, time.monotonic() + startup_timeout)
        except (TimeoutError, OSError) as exc:
            raise startup_failure("Dovecot", exc, stderr_file.read_text(), instance.log_file) from exc
        yield instance
    finally:
        _stop(process)
