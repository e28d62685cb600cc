"""Shared fixtures: a test PKI and real Postfix/Dovecot servers on 127.0.0.x.

The servers start once per test session, only when a test asks for them, and are
stopped at the end of the session even when tests fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import pytest

from tests.realservers import Endpoint
from tests.realservers.dovecot import DovecotInstance, running_dovecot
from tests.realservers.pki import MailPKI, generate_pki
from tests.realservers.postfix import PostfixInstance, running_postfix


@pytest.fixture(scope="session")
def realservers_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and Postfix's smtpd,
    # running as the postfix user, must reach Dovecot's auth socket in here.
    directory = Path(tempfile.mkdtemp(prefix="mailsec-realservers-"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def mail_pki(realservers_dir: Path) -> MailPKI:
    directory = realservers_dir / "pki"
    directory.mkdir()
    return generate_pki(directory)


@pytest.fixture(scope="session")
def dovecot_server(realservers_dir: Path, mail_pki: MailPKI) -> Iterator[DovecotInstance]:
    with running_dovecot(realservers_dir / "dovecot", mail_pki) as instance:
        yield instance


@pytest.fixture(scope="session")
def postfix_server(realservers_dir: Path, mail_pki: MailPKI,
                   dovecot_server: DovecotInstance) -> Iterator[PostfixInstance]:
    with running_postfix(realservers_dir / "postfix", mail_pki, dovecot_server.sasl_socket) as instance:
        yield instance


@pytest.fixture(scope="session")
def mail_endpoints(postfix_server: PostfixInstance, dovecot_server: DovecotInstance) -> Mapping[str, Endpoint]:
    """Every real-server scenario, by name ("smtp-good", "imaps-good", "smtp-expired"...)."""
    return {**postfix_server.endpoints, **dovecot_server.endpoints}
