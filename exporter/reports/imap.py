"""One session with the report mailbox: the new mails by UID, each fetched up to a size cap,
then flagged or moved once handled.

imaplib is blocking, so each call of `IMAPSession` runs on a worker thread (the poller
awaits it with asyncio.to_thread); every socket operation has the configured timeout, so
a stalled server ends the poll instead of holding the thread. A mail is fetched with a
partial FETCH (BODY.PEEK[]<0.N>) of one byte more than the cap: a server that lies about
RFC822.SIZE still cannot make the poller download more than the cap.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import socket
import ssl
from dataclasses import dataclass

from ..config.model import IMAPSecurity, IMAPSource, ProcessedAction

_SIZE_RE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")
_UIDVALIDITY_RE = re.compile(rb"UIDVALIDITY (\d+)")


# What a failed IMAP session raises: socket and TLS errors (ssl.SSLError is an OSError),
# imaplib's own errors, and EOFError when the server closes the connection mid-reply.
_ERRORS = (OSError, imaplib.IMAP4.error, EOFError)


class IMAPFailure(Exception):
    """The session failed (connection, TLS, login, a command refused): the poll ends here."""


@dataclass(frozen=True)
class PendingMail:
    uid: int
    size: int          # RFC822.SIZE as the server reports it


def read_password(source: IMAPSource) -> str:
    """From the file (its first line) or the environment variable; never from the config file."""
    if source.password_env is not None:
        password = os.environ.get(source.password_env)
        if password is None:
            raise IMAPFailure(f"the environment variable {source.password_env} is not set")
        return password
    try:
        with open(source.password_file, encoding="utf-8") as file:
            return file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise IMAPFailure(f"cannot read the password file {source.password_file}: {exc}") from None


def _tls_context(source: IMAPSource) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=source.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _IMAP4(imaplib.IMAP4):
    """Plain IMAP that must upgrade with STARTTLS, checking the certificate against server_name."""

    def __init__(self, source: IMAPSource):
        super().__init__(source.host, source.port, timeout=source.timeout)
        self.host = source.server_name or source.host    # what starttls() checks the certificate against


class _IMAP4_SSL(imaplib.IMAP4_SSL):
    """IMAPS whose certificate is checked against server_name, not the address connected to."""

    def __init__(self, source: IMAPSource):
        self._server_name = source.server_name or source.host
        super().__init__(source.host, source.port, ssl_context=_tls_context(source), timeout=source.timeout)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._server_name)


def _ok(response: tuple[str, list], what: str) -> list:
    status, data = response
    if status != "OK":
        detail = b" ".join(item for item in data if isinstance(item, bytes))[:200].decode("utf-8", "replace")
        raise IMAPFailure(f"{what} refused: {status} {detail}")
    return data


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string (the loader refused quotes and backslashes)."""
    return f'"{folder}"'


class IMAPSession:
    """A logged-in session with `source.folder` selected. Every method may raise IMAPFailure."""

    def __init__(self, source: IMAPSource, password: str):
        self.source = source
        try:
            if source.security is IMAPSecurity.TLS:
                self._imap: imaplib.IMAP4 = _IMAP4_SSL(source)
            else:
                self._imap = _IMAP4(source)
                _ok(self._imap.starttls(ssl_context=_tls_context(source)), "STARTTLS")
            _ok(self._imap.login(source.username, password), "LOGIN")
            if source.processed is ProcessedAction.MOVE:   # NO when it exists already: that is fine
                self._imap.create(_quoted(source.processed_folder))
            data = _ok(self._imap.select(_quoted(source.folder)), f"SELECT {source.folder}")
        except _ERRORS as exc:
            self.close()
            raise IMAPFailure(f"{type(exc).__name__}: {exc}") from None
        validity = self._imap.untagged_responses.get("UIDVALIDITY", [b"0"])[0]
        self.uidvalidity = int(validity) if validity and validity.isdigit() else 0
        self.exists = int(data[0]) if data and data[0] and data[0].isdigit() else 0

    def _call(self, what: str, command: str, *args) -> list:
        try:
            return _ok(self._imap.uid(command, *args), what)
        except _ERRORS as exc:
            raise IMAPFailure(f"{what}: {type(exc).__name__}: {exc}") from None

    def pending(self, after_uid: int, limit: int) -> list[PendingMail]:
        """The first `limit` mails with a UID above `after_uid` (not yet flagged, in flag mode)."""
        criteria = [f"UID {after_uid + 1}:*"]
        if self.source.processed is ProcessedAction.FLAG:
            flag = self.source.processed_flag
            criteria.append("UNSEEN" if flag == "\\Seen" else f"UNKEYWORD {flag}" if not flag.startswith("\\")
                            else f"UN{flag[1:].upper()}")
        found = self._call("SEARCH", "SEARCH", *criteria)
        # "n:*" always includes the highest UID, even one below n (RFC 3501 §6.4.8).
        uids = sorted(uid for uid in (int(word) for word in b" ".join(found).split()) if uid > after_uid)[:limit]
        if not uids:
            return []
        sizes = {}
        for item in self._call("FETCH sizes", "FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)"):
            match = _SIZE_RE.search(item[0] if isinstance(item, tuple) else item or b"")
            if match:
                uid, size = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
                sizes[int(uid)] = int(size)
        return [PendingMail(uid, sizes.get(uid, 0)) for uid in uids]

    def fetch(self, uid: int, max_bytes: int) -> bytes:
        """The mail's first max_bytes + 1 bytes (more than max_bytes: it is too large)."""
        data = self._call("FETCH", "FETCH", str(uid), f"(BODY.PEEK[]<0.{max_bytes + 1}>)")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return item[1]
        return b""

    def mark_processed(self, uid: int) -> None:
        source = self.source
        if source.processed is ProcessedAction.FLAG:
            self._call("STORE", "STORE", str(uid), "+FLAGS", f"({source.processed_flag})")
        elif source.processed is ProcessedAction.MOVE:
            if "MOVE" in self._imap.capabilities:
                self._call("MOVE", "MOVE", str(uid), _quoted(source.processed_folder))
            else:   # RFC 3501 without RFC 6851: copy, then delete the original
                self._call("COPY", "COPY", str(uid), _quoted(source.processed_folder))
                self._call("STORE", "STORE", str(uid), "+FLAGS", "(\\Deleted)")
                try:
                    _ok(self._imap.expunge(), "EXPUNGE")
                except _ERRORS as exc:
                    raise IMAPFailure(f"EXPUNGE: {exc}") from None

    def close(self) -> None:
        imap = getattr(self, "_imap", None)
        if imap is None:
            return
        try:
            imap.logout()
        except _ERRORS:   # the session is over either way
            with contextlib.suppress(*_ERRORS):
                imap.shutdown()
