"""--web.config.file at run time: the server's TLS context and basic authentication.

The file's model and loader are in exporter.config.web.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import ssl
from typing import Awaitable, Callable, Mapping

import bcrypt
from aiohttp import web

from .config.web import BCRYPT_HASH_RE, CLIENT_AUTH_TYPES, TLS_VERSIONS, TLSServerConfig


def ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """The server's context; load_web_config has checked the files it reads."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.load_verify_locations(cafile=tls.client_ca_file)
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    return context


class BasicAuth:
    """Checks `Authorization: Basic` credentials against bcrypt hashes.

    An unknown user costs the same bcrypt check as a known one (against a dummy hash of
    the same cost), and both get the same answer, so that neither the answer nor its
    timing tells whether a user exists.
    """

    def __init__(self, users: Mapping[str, bytes]):
        self._users = users
        cost = max(int(BCRYPT_HASH_RE.fullmatch(h.decode()).group(1)) for h in users.values())
        self._dummy_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))

    async def check(self, authorization: str | None) -> bool:
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        # bcrypt is slow on purpose: keep the event loop (probes, other scrapes) running.
        matches = await asyncio.to_thread(_bcrypt_matches, password.encode(), hashed or self._dummy_hash)
        return hashed is not None and matches


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:   # bcrypt refuses passwords over 72 bytes: no configured hash can match one
        return False


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(users: Mapping[str, bytes], public_paths: frozenset[str]):
    """An aiohttp middleware answering 401 to requests without valid credentials."""
    auth = BasicAuth(users)

    @web.middleware
    async def require_basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public_paths or await auth.check(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(status=401, text="Unauthorized\n",
                            headers={"WWW-Authenticate": 'Basic realm="mailsec-exporter", charset="UTF-8"'})

    return require_basic_auth
