"""--web.config.file: TLS and basic authentication for the HTTP server.

The file has the format of the Prometheus exporter-toolkit
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md),
so one file can serve several exporters, with one addition of ours: `mailsec_public_paths`.
Keys of the toolkit this exporter does not implement are refused, not ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import ssl
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Mapping

import bcrypt
import yaml
from aiohttp import web

# The paths that may be exempted from basic authentication by mailsec_public_paths.
EXEMPTIBLE_PATHS = ("/-/healthy", "/-/ready")

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit's client_auth_type values that Python's ssl module can honour. The other
# two (RequestClientCert, RequireAnyClientCert) ask for a certificate without verifying it,
# which the ssl module cannot do.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_TOOLKIT_TLS_KEYS_NOT_SUPPORTED = ("cert", "key", "client_ca", "client_allowed_sans", "cipher_suites",
                                   "curve_preferences", "prefer_server_cipher_suites")
_BCRYPT_HASH_RE = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


class WebConfigError(Exception):
    """The web config file was refused. str() gives "FILE: key: reason"."""


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"        # the toolkit's default
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    tls: TLSServerConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))  # -> bcrypt hash
    public_paths: frozenset[str] = frozenset()


def _mapping(value: Any, where: str, allowed: tuple[str, ...], also_known: tuple[str, ...] = ()) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a mapping")
    for key in value:
        if key in also_known:
            raise ValueError(f"{where}.{key}: exporter-toolkit's key {key!r} is not supported by mailsec-exporter")
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown key; allowed here: {', '.join(allowed)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: must be a non-empty string")
    return value


def _file(value: Any, where: str, directory: str) -> str:
    path = os.path.join(directory, _string(value, where))   # relative to the web config file, as in the toolkit
    if not os.access(path, os.R_OK):
        raise ValueError(f"{where}: cannot read {path}")
    return path


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{where}: must be one of {', '.join(choices)}; got {value!r}")
    return value


def _parse_tls(value: Any, directory: str) -> TLSServerConfig | None:
    keys = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version")
    tls = _mapping(value, "tls_server_config", keys, _TOOLKIT_TLS_KEYS_NOT_SUPPORTED)
    if not tls:
        return None
    where = "tls_server_config"
    for required in ("cert_file", "key_file"):
        if required not in tls:
            raise ValueError(f"{where}: {required!r} is required to serve HTTPS")
    auth = tls.get("client_auth_type") or "NoClientCert"
    if auth in _UNSUPPORTED_CLIENT_AUTH:
        raise ValueError(f"{where}.client_auth_type: {auth} (a client certificate that is not verified) is not "
                         "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
    auth = _choice(auth, f"{where}.client_auth_type", tuple(_CLIENT_AUTH))
    ca_file = _file(tls["client_ca_file"], f"{where}.client_ca_file", directory) if tls.get("client_ca_file") else None
    if ca_file and auth == "NoClientCert":
        raise ValueError(f"{where}: client_ca_file is set but client_auth_type is NoClientCert: set "
                         "client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    if auth != "NoClientCert" and not ca_file:
        raise ValueError(f"{where}.client_auth_type: {auth} needs client_ca_file, the CAs to verify clients against")
    config = TLSServerConfig(
        cert_file=_file(tls["cert_file"], f"{where}.cert_file", directory),
        key_file=_file(tls["key_file"], f"{where}.key_file", directory),
        client_ca_file=ca_file,
        client_auth_type=auth,
        min_version=_choice(tls.get("min_version", "TLS12"), f"{where}.min_version", tuple(_TLS_VERSIONS)),
        max_version=_choice(tls.get("max_version", "TLS13"), f"{where}.max_version", tuple(_TLS_VERSIONS)),
    )
    if _TLS_VERSIONS[config.min_version] > _TLS_VERSIONS[config.max_version]:
        raise ValueError(f"{where}: min_version {config.min_version} is above max_version {config.max_version}")
    ssl_context(config)   # a wrong certificate or key must stop the start, not the first request
    return config


def _parse_users(value: Any) -> Mapping[str, bytes]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise ValueError("basic_auth_users: must be a mapping of user name to bcrypt hash")
    parsed = {}
    for user, hashed in value.items():
        where = f"basic_auth_users.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            raise ValueError(f"{where}: a user name must be a non-empty string without ':'")
        if not isinstance(hashed, str) or not _BCRYPT_HASH_RE.fullmatch(hashed):
            raise ValueError(f"{where}: must be a bcrypt hash ($2y$10$... ; make one with "
                             "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`), not the password itself")
        parsed[user] = hashed.encode()
    return MappingProxyType(parsed)


def _parse_public_paths(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ValueError("mailsec_public_paths: must be a list")
    for path in value:
        _choice(path, "mailsec_public_paths[]", EXEMPTIBLE_PATHS)
    return frozenset(value)


def parse_web_config(data: Any, directory: str) -> WebConfig:
    top = _mapping(data, "the top level", ("tls_server_config", "basic_auth_users", "mailsec_public_paths"),
                   ("http_server_config", "rate_limit"))
    return WebConfig(
        tls=_parse_tls(top.get("tls_server_config"), directory),
        basic_auth_users=_parse_users(top.get("basic_auth_users")),
        public_paths=_parse_public_paths(top.get("mailsec_public_paths")),
    )


def load_web_config(path: str) -> WebConfig:
    try:
        with open(path, encoding="utf-8") as file:
            data = yaml.safe_load(file)
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read the file: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        return parse_web_config(data, os.path.dirname(os.path.abspath(path)))
    except ValueError as exc:
        raise WebConfigError(f"{path}: {exc}") from None


def ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file:
            context.load_verify_locations(cafile=tls.client_ca_file)
    except ssl.SSLError as exc:
        raise ValueError(f"tls_server_config: cannot use the certificate, key or client CA: {exc.reason}") from None
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return context


class BasicAuth:
    """Checks `Authorization: Basic` credentials against bcrypt hashes.

    An unknown user costs the same bcrypt check as a known one (against a dummy hash of
    the same cost), and both get the same answer, so that neither the answer nor its
    timing tells whether a user exists.
    """

    def __init__(self, users: Mapping[str, bytes]):
        self._users = users
        cost = max(int(_BCRYPT_HASH_RE.fullmatch(h.decode()).group(1)) for h in users.values())
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
