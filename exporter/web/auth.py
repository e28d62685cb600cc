"""--web.config.file at run time: the server's TLS context and basic authentication.

The file's model and loader are in exporter.config.web.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import concurrent.futures
import hashlib
import os
import ssl
from typing import Awaitable, Callable, Mapping

import bcrypt
from aiohttp import web

from ..config.web import BCRYPT_HASH_RE, CLIENT_AUTH_TYPES, TLS_VERSIONS, TLSServerConfig


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


# bcrypt is slow on purpose, so it runs off the event loop, on threads of its own: the
# loop's default executor also resolves the probes' host names (getaddrinfo), and a flood
# of wrong passwords must queue here instead of starving it. Two threads bound the CPU
# such a flood takes.
_BCRYPT_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcrypt")

VERIFIED_CACHE_SIZE = 1000


class BasicAuth:
    """Checks `Authorization: Basic` credentials against bcrypt hashes.

    An unknown user costs the same bcrypt check as a known one (against a dummy hash of
    the same cost), and both get the same answer, so that neither the answer nor its
    timing tells whether a user exists.

    As in exporter-toolkit, credentials that passed are remembered, so that Prometheus's
    scrapes, which send the same ones every time, cost no bcrypt work after the first.
    Only a salted SHA-256 of them is kept, not the password; only the most recent
    `cache_size` are kept. Credentials that failed are not remembered: a wrong password
    pays the full bcrypt check every time.
    """

    def __init__(self, users: Mapping[str, bytes], cache_size: int = VERIFIED_CACHE_SIZE):
        self._users = users
        cost = max(int(BCRYPT_HASH_RE.fullmatch(h.decode()).group(1)) for h in users.values())
        self._dummy_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))
        self._salt = os.urandom(16)
        self._verified: collections.OrderedDict[bytes, None] = collections.OrderedDict()   # least recent first
        self._cache_size = cache_size

    async def check(self, authorization: str | None) -> bool:
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        # User names have no ':' (the loader refuses them), so "user:password" is unambiguous.
        key = hashlib.sha256(self._salt + f"{user}:{password}".encode()).digest()
        if key in self._verified:
            self._verified.move_to_end(key)
            return True
        hashed = self._users.get(user)
        matches = await asyncio.get_running_loop().run_in_executor(
            _BCRYPT_THREADS, _bcrypt_matches, password.encode(), hashed or self._dummy_hash
        )
        if hashed is None or not matches:
            return False
        self._verified[key] = None
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return True


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
