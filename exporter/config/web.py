"""--web.config.file: TLS and basic authentication for the HTTP server, and its loader.

The file has the format of the Prometheus exporter-toolkit
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md),
so one file can serve several exporters, with one addition of ours: `mailsec_public_paths`.
Keys of the toolkit this exporter does not implement are refused, not ignored. The file
is walked like the config file, so every error names the file, the line and the key.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import yaml

from . import yamlnodes as nodes
from .model import ConfigError
from .values import check_ca_file, check_readable_file

# The paths that may be exempted from basic authentication by mailsec_public_paths.
EXEMPTIBLE_PATHS = ("/-/healthy", "/-/ready")

# exporter-toolkit's version names, lowest first.
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit's client_auth_type values that Python's ssl module can honour. The other
# two (RequestClientCert, RequireAnyClientCert) ask for a certificate without verifying it,
# which the ssl module cannot do.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
_VERSION_PARSERS = {key: functools.partial(nodes.choice, tuple(TLS_VERSIONS)) for key in ("min_version", "max_version")}

BCRYPT_HASH_RE = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")    # group 1: the cost
# bcrypt refuses costs below 4, and each step up doubles the time of a check: about 5 s of
# CPU at 16, a day and a half at 31, which hung the start (the dummy hash has that cost).
BCRYPT_COSTS = range(4, 17)


def _not_supported(*keys: str) -> Mapping[str, str]:
    return {key: f"exporter-toolkit's key {key!r} is not supported by mailsec-exporter" for key in keys}


_TOP_LEVEL_KEYS = ("tls_server_config", "basic_auth_users", "mailsec_public_paths")
_TOP_LEVEL_NOT_SUPPORTED = _not_supported("http_server_config", "rate_limit")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version")
_TLS_NOT_SUPPORTED = _not_supported(
    "cert", "key", "client_ca", "client_allowed_sans", "cipher_suites", "curve_preferences",
    "prefer_server_cipher_suites",
)


class WebConfigError(ConfigError):
    """The web config file was refused. str() gives "FILE:LINE: key: reason"."""


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: str = "NoClientCert"     # a key of CLIENT_AUTH_TYPES
    min_version: str = "TLS12"                 # a key of TLS_VERSIONS; the toolkit's default
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    tls: TLSServerConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))  # -> bcrypt hash
    public_paths: frozenset[str] = frozenset()


def load_web_config(path: str) -> WebConfig:
    """Read and strictly validate a web config file; raise WebConfigError on any problem."""
    # Relative file names in it are relative to its directory, as in exporter-toolkit.
    directory = os.path.dirname(os.path.abspath(path))
    return nodes.load_yaml_file(path, functools.partial(_parse_web_config, directory=directory), WebConfigError)


def _parse_web_config(root: yaml.Node | None, directory: str) -> WebConfig:
    top = nodes.top_level(root, _TOP_LEVEL_KEYS, _TOP_LEVEL_NOT_SUPPORTED)
    return WebConfig(
        tls=_parse_tls(top.get("tls_server_config"), "tls_server_config", directory),
        basic_auth_users=_parse_users(top.get("basic_auth_users"), "basic_auth_users"),
        public_paths=_parse_public_paths(top.get("mailsec_public_paths"), "mailsec_public_paths"),
    )


def _parse_tls(node: yaml.Node | None, path: str, directory: str) -> TLSServerConfig | None:
    """None when the section is left out, null or empty: plain HTTP."""
    tls = nodes.fields(node, path, _TLS_KEYS, _TLS_NOT_SUPPORTED)
    if not tls.values:
        return None
    # A certificate file holds PEM certificates, as a CA file does.
    cert_file = _file_of(tls, "cert_file", directory, check_ca_file)
    key_file = _file_of(tls, "key_file", directory, check_readable_file)
    _check_key_pair(tls, cert_file, key_file)
    client_auth_type, client_ca_file = _parse_client_auth(tls, directory)
    config = TLSServerConfig(
        cert_file=cert_file,
        key_file=key_file,
        client_ca_file=client_ca_file,
        client_auth_type=client_auth_type,
        **nodes.given(tls, _VERSION_PARSERS),
    )
    if TLS_VERSIONS[config.min_version] > TLS_VERSIONS[config.max_version]:
        raise nodes.Invalid(
            tls.get("max_version") or tls.get("min_version"),
            f"{path}: min_version {config.min_version} is above max_version {config.max_version}",
        )
    return config


def _file_of(tls: nodes.Fields, key: str, directory: str, check: Callable[[str], str]) -> str:
    """The required file named at `key`, relative to the web config file, checked."""
    return nodes.checked_string(
        lambda name: check(os.path.normpath(os.path.join(directory, name))), tls.require(key), tls.path_of(key)
    )


def _check_key_pair(tls: nodes.Fields, cert_file: str, key_file: str) -> None:
    """A wrong certificate or key must stop the start, not fail every TLS handshake."""
    try:
        # An empty password, so that OpenSSL never prompts for the passphrase of an encrypted key.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file, password=b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problem = f"{key_file} is not the private key of the certificate in {cert_file}"
        else:  # OpenSSL says no more than "PEM lib"
            problem = f"{key_file} holds no PEM private key (or an encrypted one, which is not supported)"
        raise nodes.Invalid(tls.require("key_file"), f"{tls.path_of('key_file')}: {problem}") from None


def _parse_client_auth(tls: nodes.Fields, directory: str) -> tuple[str, str | None]:
    """client_auth_type and client_ca_file, which only make sense together."""
    auth_node, auth_path = tls.get("client_auth_type"), tls.path_of("client_auth_type")
    auth = "NoClientCert"
    if auth_node is not None:
        if auth_node.value in _UNSUPPORTED_CLIENT_AUTH:
            raise nodes.Invalid(
                auth_node,
                f"{auth_path}: {auth_node.value} (a client certificate that is not verified) is not supported; "
                "use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
            )
        auth = nodes.choice(tuple(CLIENT_AUTH_TYPES), auth_node, auth_path)
    ca_node = tls.get("client_ca_file")
    if ca_node is None:
        if auth != "NoClientCert":
            raise nodes.Invalid(auth_node, f"{auth_path}: {auth} needs client_ca_file, the CAs to verify clients against")
        return auth, None
    if auth == "NoClientCert":
        raise nodes.Invalid(
            ca_node,
            f"{tls.path}: client_ca_file is set but client_auth_type is NoClientCert: set "
            "client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        )
    return auth, _file_of(tls, "client_ca_file", directory, check_ca_file)


def _parse_users(node: yaml.Node | None, path: str) -> Mapping[str, bytes]:
    users = {}
    for user, key_node, value_node in nodes.entries(node, path):
        user_path = f"{path}.{user}"
        if not user or ":" in user:
            raise nodes.Invalid(key_node, f"{user_path}: a user name must be a non-empty string without ':'")
        hashed = nodes.string(value_node, user_path)
        match = BCRYPT_HASH_RE.fullmatch(hashed)
        if not match:
            raise nodes.Invalid(
                value_node,
                f"{user_path}: must be a bcrypt hash ($2y$10$... ; make one with "
                "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`), not the password itself",
            )
        if int(match.group(1)) not in BCRYPT_COSTS:
            raise nodes.Invalid(
                value_node,
                f"{user_path}: bcrypt cost {match.group(1)} is unusable: bcrypt refuses costs below 4, and each "
                "step up doubles the time of a check (seconds at 16, more than a day at 31); make the hash "
                f"with a cost from {BCRYPT_COSTS.start} to {BCRYPT_COSTS.stop - 1} (10 is usual)",
            )
        users[user] = hashed.encode()
    return MappingProxyType(users)


def _parse_public_paths(node: yaml.Node | None, path: str) -> frozenset[str]:
    return frozenset(
        nodes.choice(EXEMPTIBLE_PATHS, item, f"{path}[{index}]") for index, item in enumerate(nodes.items(node, path))
    )
