"""A private Postfix 3.x instance with one smtpd listener per test scenario.

The instance has its own config_directory, queue_directory and data_directory, and
logs to a file (`maillog_file`). Every smtpd service in master.cf names its own
127.0.0.x address and port and overrides the TLS and SASL settings it needs with `-o`,
so one master process serves all scenarios. Postfix asks Dovecot for SASL (AUTH).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from exporter.config import MailProtocol

from . import Endpoint, end_process_group, free_port, startup_failure, wait_until_listening
from .pki import GOOD_NAME, MailPKI, ServerCredential
from tests.dnsfixtures.zones import MX1_GOOD, MX2_GOOD

POSTFIX = "/usr/sbin/postfix"


@dataclass(frozen=True)
class _Service:
    scenario: str
    protocol: MailProtocol
    address: str
    credential: Callable[[MailPKI], ServerCredential] | None   # None: no TLS at all
    options: Mapping[str, str] = field(default_factory=dict)   # -o overrides for this smtpd


# A mynetworks without the probe's source address (127.0.0.1), for the relay scenarios.
_NOT_THE_PROBE = "127.0.0.255/32"

# AUTH is enabled where the scenario is about when AUTH is advertised.
_AUTH_AFTER_TLS = {"smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "yes"}

_SERVICES = (
    _Service("smtp-good", MailProtocol.SMTP, "127.0.0.21", lambda pki: pki.good_rsa, _AUTH_AFTER_TLS),
    _Service("submission-good", MailProtocol.SUBMISSION, "127.0.0.21", lambda pki: pki.good_rsa,
             {**_AUTH_AFTER_TLS, "smtpd_tls_security_level": "encrypt"}),
    _Service("smtps-good", MailProtocol.SMTPS, "127.0.0.21", lambda pki: pki.good_rsa,
             {**_AUTH_AFTER_TLS, "smtpd_tls_wrappermode": "yes"}),
    _Service("smtp-ecdsa", MailProtocol.SMTP, "127.0.0.22", lambda pki: pki.good_ecdsa),
    _Service("smtp-expired", MailProtocol.SMTP, "127.0.0.23", lambda pki: pki.expired),
    _Service("smtp-mismatch", MailProtocol.SMTP, "127.0.0.24", lambda pki: pki.mismatch),
    _Service("smtp-self-signed", MailProtocol.SMTP, "127.0.0.25", lambda pki: pki.self_signed),
    _Service("smtp-no-tls", MailProtocol.SMTP, "127.0.0.26", None, {"smtpd_tls_security_level": "none"}),
    _Service("smtp-auth-before-tls", MailProtocol.SMTP, "127.0.0.27", lambda pki: pki.good_rsa,
             {"smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "no"}),
    _Service("smtp-tls13-only", MailProtocol.SMTP, "127.0.0.28", lambda pki: pki.good_rsa,
             {"smtpd_tls_protocols": ">=TLSv1.3"}),
    # Mail policy (tests/test_policy_realservers.py). Submission that takes mail in clear:
    _Service("submission-clear", MailProtocol.SUBMISSION, "127.0.0.21", lambda pki: pki.good_rsa,
             {**_AUTH_AFTER_TLS, "smtpd_tls_security_level": "may"}),
    # The probe's address (127.0.0.1) is outside mynetworks: relaying refused...
    _Service("smtp-relay-refused", MailProtocol.SMTP, "127.0.0.21", lambda pki: pki.good_rsa,
             {"mynetworks": _NOT_THE_PROBE}),
    # ...unless the relay restrictions permit every client. (A bare "permit" would stop smtpd:
    # Postfix insists on a reject_unauth_destination, which then is never reached.)
    _Service("smtp-open-relay", MailProtocol.SMTP, "127.0.0.21", lambda pki: pki.good_rsa,
             {"mynetworks": _NOT_THE_PROBE,
              "smtpd_relay_restrictions": "check_client_access static:OK, reject_unauth_destination"}),
    # On the DNS lab's 127.77.1.1 (PTR mx1.good.test, which resolves back to it): the greeting,
    # the EHLO reply and the certificate (mail.good.test) name three different hosts.
    _Service("smtp-names-disagree", MailProtocol.SMTP, MX1_GOOD, lambda pki: pki.good_rsa,
             {"myhostname": "mx1.good.test", "smtpd_banner": "greeting.other.test ESMTP"}),
    # On 127.77.1.2, whose PTR (elsewhere.test) does not resolve back to it.
    _Service("smtp-ptr-unconfirmed", MailProtocol.SMTP, MX2_GOOD, lambda pki: pki.good_rsa),
)

# Postfix's internal services, as in the stock master.cf but never chrooted: the
# smtpd listeners need proxymap, anvil, cleanup... even for a bare EHLO/STARTTLS/QUIT.
INTERNAL_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass(frozen=True)
class PostfixInstance:
    config_dir: Path
    queue_dir: Path
    maillog: Path
    endpoints: Mapping[str, Endpoint]   # by scenario


def create_instance_directories(workdir: Path) -> tuple[Path, Path, Path]:
    """The config, queue and data directories of an instance in `workdir`, created."""
    config_dir, queue_dir, data_dir = workdir / "config", workdir / "queue", workdir / "data"
    for directory in (config_dir, queue_dir, data_dir):
        directory.mkdir(parents=True)
    # Postfix creates the queue's subdirectories itself, but wants its data_directory
    # (master.lock, caches) to belong to the mail_owner.
    postfix_user = pwd.getpwnam("postfix")
    os.chown(data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
    return config_dir, queue_dir, data_dir


def instance_main_cf(workdir: Path, myhostname: str) -> str:
    """The main.cf settings that keep an instance in `workdir` and off the network."""
    return f"""\
compatibility_level = 3.6
queue_directory = {workdir}/queue
data_directory = {workdir}/data
maillog_file = {workdir}/maillog
maillog_file_prefixes = {workdir}
# Postfix insists that inet_interfaces are addresses of an interface; no service
# uses it, each names its own 127.0.0.x address.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {myhostname}
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
# No reverse lookup of clients: it would ask the system's resolver, off loopback.
smtpd_peername_lookup = no
"""


def _main_cf(workdir: Path, sasl_socket: Path) -> str:
    return instance_main_cf(workdir, GOOD_NAME) + f"""\
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination

smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl_socket}
smtpd_sasl_auth_enable = no
"""


def _master_cf_entry(service: _Service, port: int, pki: MailPKI) -> str:
    options = dict(service.options)
    if service.credential is not None:
        credential = service.credential(pki)
        options["smtpd_tls_cert_file"] = str(credential.chain_file)
        options["smtpd_tls_key_file"] = str(credential.leaf.key_file)
    lines = [f"{service.address}:{port} inet n - n - - smtpd"]
    # A value with spaces needs Postfix 3's "{ name = value }" form.
    lines += [f"  -o {{ {name} = {value} }}" if " " in value else f"  -o {name}={value}"
              for name, value in options.items()]
    return "\n".join(lines) + "\n"


def run_postfix(config_dir: Path, command: str) -> subprocess.CompletedProcess:
    return subprocess.run([POSTFIX, "-c", str(config_dir), command],
                          capture_output=True, text=True, timeout=60)


def check(instance: PostfixInstance) -> subprocess.CompletedProcess:
    """Run `postfix check` on the instance's configuration."""
    return run_postfix(instance.config_dir, "check")


def _master_pid(queue_dir: Path) -> int | None:
    try:
        return int((queue_dir / "pid" / "master.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def start_postfix(instance: PostfixInstance, listeners: Iterable[tuple[str, int]]) -> None:
    """Start the instance and wait until every (host, port) listener accepts connections.
    The caller stops it with `stop_postfix`, also when this raises."""
    # Postfix logs its own errors to the maillog, not to stderr, unless on a terminal.
    started = run_postfix(instance.config_dir, "start")
    try:
        if started.returncode != 0:
            raise RuntimeError(f"exit status {started.returncode}")
        deadline = time.monotonic() + 15
        for host, port in listeners:
            wait_until_listening(host, port, deadline)
    except (RuntimeError, TimeoutError) as exc:
        raise startup_failure("Postfix", exc, started.stderr, instance.maillog) from exc


def stop_postfix(instance: PostfixInstance) -> None:
    """Stop the instance, if it runs, and wait until all its processes are gone."""
    pid = _master_pid(instance.queue_dir)
    if pid is None:
        return
    run_postfix(instance.config_dir, "stop")
    # The master leads a process group with all its daemons: wait until they are all gone.
    end_process_group(pid, grace=10)


@contextlib.contextmanager
def running_postfix(workdir: Path, pki: MailPKI, sasl_socket: Path) -> Iterator[PostfixInstance]:
    """Start Postfix with every scenario of `_SERVICES`; stop it on exit, whatever happens."""
    config_dir, queue_dir, _ = create_instance_directories(workdir)
    ports = {service.scenario: free_port(service.address) for service in _SERVICES}
    (config_dir / "main.cf").write_text(_main_cf(workdir, sasl_socket))
    (config_dir / "master.cf").write_text(
        "".join(_master_cf_entry(service, ports[service.scenario], pki) for service in _SERVICES)
        + INTERNAL_SERVICES)
    instance = PostfixInstance(
        config_dir=config_dir,
        queue_dir=queue_dir,
        maillog=workdir / "maillog",
        endpoints={
            service.scenario: Endpoint(
                scenario=service.scenario, protocol=service.protocol, host=service.address,
                port=ports[service.scenario], server_name=GOOD_NAME, ca_file=str(pki.ca_file),
                credential=service.credential(pki) if service.credential else None)
            for service in _SERVICES
        },
    )
    try:
        start_postfix(instance, ((endpoint.host, endpoint.port) for endpoint in instance.endpoints.values()))
        yield instance
    finally:
        stop_postfix(instance)
