"""Tests of the strict config loader: value parsers, good files, and the exact error of bad files."""

from __future__ import annotations

import asyncio
import datetime
import os
import textwrap
import time
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.results import JobKind
from exporter.config import (
    Config,
    ConfigError,
    DeepScanSettings,
    DomainCheckSettings,
    GlobalSettings,
    Nameserver,
    ProbeSettings,
    MailProtocol,
    StartTLS,
    TLSSettings,
    check_dkim_selector,
    check_ehlo_name,
    format_duration,
    load_config,
    parse_duration,
    parse_host,
    parse_nameserver,
    parse_server_name,
    parse_target_pattern,
)
from exporter.config.web import load_web_config
from exporter.results import FailureReason

from exporter_process import running_app
from results_factory import failed_result

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def write_ca_file(path: Path) -> None:
    """A self-signed CA certificate in PEM, enough for the loader's readability check."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


# --------------------------------------------------------------------------------------
# Value parsers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d", 86400),
        ("1w", 7 * 86400),
        ("1y", 365 * 86400),
        ("1m500ms", 60.5),
        ("2h0m5s", 7205),
        ("0", 0),
        ("0s", 0),
        ("90s", 90),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "5 m", "1.5s", "-5s", "30m1h", "1h1h", "5M", "s", "1ms5s", "+5s"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="must be a duration such as"):
        parse_duration(text)


@pytest.mark.parametrize(
    "seconds, text",
    [(300, "5m"), (5400, "1h30m"), (0.5, "500ms"), (10, "10s"), (86400, "1d"), (90061.001, "1d1h1m1s1ms"),
     (1.2345, "1.2345s"), (0, "0s")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text, nameserver",
    [
        ("192.0.2.53", Nameserver("192.0.2.53", 53)),
        ("192.0.2.53:5353", Nameserver("192.0.2.53", 5353)),
        ("2001:db8::53", Nameserver("2001:db8::53", 53)),
        ("2001:DB8:0:0::53", Nameserver("2001:db8::53", 53)),  # canonical form
        ("[2001:db8::53]:5353", Nameserver("2001:db8::53", 5353)),
        ("[2001:db8::53]", Nameserver("2001:db8::53", 53)),
        ("::1", Nameserver("::1", 53)),
        ("[::1]:53", Nameserver("::1", 53)),
        ("[::ffff:192.0.2.1]:54", Nameserver("::ffff:c000:201", 54)),
    ],
)
def test_parse_nameserver(text, nameserver):
    assert parse_nameserver(text) == nameserver


@pytest.mark.parametrize(
    "text, reason",
    [
        ("dns.google", "'dns.google' is not an IP address (name servers are given by address, not by name)"),
        ("dns.google:53", "'dns.google' is not an IP address (name servers are given by address, not by name)"),
        ("192.0.2.53:0", "the port must be an integer from 1 to 65535; got '0' in '192.0.2.53:0'"),
        ("192.0.2.53:65536", "the port must be an integer from 1 to 65535; got '65536' in '192.0.2.53:65536'"),
        ("192.0.2.53:", "the port must be an integer from 1 to 65535; got '' in '192.0.2.53:'"),
        ("[::1]:", "the port must be an integer from 1 to 65535; got '' in '[::1]:'"),
        ("[::1]:x", "the port must be an integer from 1 to 65535; got 'x' in '[::1]:x'"),
        ("[::1", "'[::1' has '[' without ']'"),
        ("[::1]53", "expected ':port' after ']' in '[::1]53'"),
        ("[192.0.2.53]:53", "brackets are only for IPv6 addresses; got '[192.0.2.53]:53'"),
        ("2001:db8::53:5353:1:2:3:4", "'2001:db8::53:5353:1:2:3:4' is not an IP address "
         "(name servers are given by address, not by name)"),
        ("", "'' is not an IP address (name servers are given by address, not by name)"),
    ],
)
def test_parse_nameserver_refuses(text, reason):
    with pytest.raises(ValueError) as caught:
        parse_nameserver(text)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "text, host",
    [
        ("mx.example.org", "mx.example.org"),
        ("MX.Example.ORG.", "mx.example.org"),
        ("localhost", "localhost"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("192.0.2.25", "192.0.2.25"),
        ("2001:DB8::25", "2001:db8::25"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        ("1.example", "1.example"),
    ],
)
def test_parse_host(text, host):
    assert parse_host(text) == host


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "must not be empty"),
        (".", "must not be empty"),
        ("mx..example.org", "'mx..example.org' has an invalid part '': each dot-separated part must be "
         "1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"),
        ("-mx.example.org", "'-mx.example.org' has an invalid part '-mx': each dot-separated part must be "
         "1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"),
        ("mx_1.example.org", "'mx_1.example.org' has an invalid part 'mx_1': each dot-separated part must be "
         "1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"),
        ("a" * 64 + ".example", f"'{'a' * 64}.example' has an invalid part '{'a' * 64}': each dot-separated "
         "part must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"),
        (("a" * 60 + ".") * 5, "is longer than 253 characters"),
        ("192.168.1.300", "'192.168.1.300' is neither an IP address nor a host name"),
        ("bücher.example", "'bücher.example' has non-ASCII characters: write an internationalized name "
         "in its xn-- form"),
        ("[2001:db8::25]", "write an IPv6 address without brackets; got '[2001:db8::25]'"),
        ("mx.example.org:25", "'mx.example.org:25' has an invalid part 'org:25': each dot-separated part "
         "must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"),
    ],
)
def test_parse_host_refuses(text, reason):
    with pytest.raises(ValueError) as caught:
        parse_host(text)
    assert str(caught.value) == reason


def test_server_name_is_a_dns_name_never_an_address():
    assert parse_server_name("Mail.Example.org.") == "mail.example.org"
    with pytest.raises(ValueError, match="TLS cannot send an IP address as server name"):
        parse_server_name("192.0.2.25")


@pytest.mark.parametrize(
    "text", ["probe.example.org", "localhost", "[192.0.2.1]", "[IPv6:2001:db8::1]", "[ipv6:::1]"]
)
def test_ehlo_name_accepts(text):
    assert check_ehlo_name(text) == text


@pytest.mark.parametrize(
    "text", ["", "probe.example.org.", "under_score.example", "[2001:db8::1]", "[IPv6:192.0.2.1]", "[300.0.0.1]"]
)
def test_ehlo_name_refuses(text):
    with pytest.raises(ValueError):
        check_ehlo_name(text)


@pytest.mark.parametrize("text", ["fm1", "20230601", "selector1-example-com", "s1024.2020", "Google"])
def test_dkim_selector_accepts(text):
    assert check_dkim_selector(text) == text


@pytest.mark.parametrize("text", ["", "a_b", "-s1", "s1.", "s 1", "sélecteur"])
def test_dkim_selector_refuses(text):
    with pytest.raises(ValueError):
        check_dkim_selector(text)


# --------------------------------------------------------------------------------------
# Good files
# --------------------------------------------------------------------------------------


def test_empty_file_is_the_default_config_with_builtin_modules(tmp_path):
    for text in ["", "# only a comment\n", "---\n", "~\n"]:
        path = write(tmp_path, text)
        config = load_config(path)
        assert config.global_ == GlobalSettings()
        assert config.targets == () and config.domains == ()
        assert config.dns.nameservers == ()
        assert set(config.modules) == {protocol.value for protocol in MailProtocol}
        assert config.source == path


@pytest.mark.parametrize(
    "protocol, port, starttls",
    [
        ("smtp", 25, StartTLS.REQUIRED),
        ("submission", 587, StartTLS.REQUIRED),
        ("smtps", 465, StartTLS.NONE),
        ("imap", 143, StartTLS.REQUIRED),
        ("imaps", 993, StartTLS.NONE),
        ("pop3", 110, StartTLS.REQUIRED),
        ("pop3s", 995, StartTLS.NONE),
    ],
)
def test_builtin_and_user_modules_get_the_protocol_defaults(tmp_path, protocol, port, starttls):
    config = load_config(write(tmp_path, f"""
        global: {{interval: 2m, timeout: 7s}}
        modules:
          mine: {{protocol: {protocol}}}
        targets:
          - {{host: mail.example.org, module: {protocol}}}
          - {{host: mail.example.org, module: mine}}
    """))
    for name in (protocol, "mine"):
        module = config.modules[name]
        assert (module.name, module.protocol, module.port, module.starttls) == (name, protocol, port, starttls)
        assert (module.timeout, module.interval) == (7, 120)
        assert module.tls == TLSSettings()
        assert module.ehlo == "mailsec-exporter.localhost"
    assert [(t.module, t.port) for t in config.targets] == [(protocol, port), ("mine", port)]


def test_every_key_set(tmp_path):
    write_ca_file(tmp_path / "ca.pem")
    config = load_config(write(tmp_path, """
        global:
          interval: 1h30m
          timeout: 45
          concurrency: 8
          per_host_concurrency: 2
          jitter: 0
        dns:
          nameservers: ["192.0.2.53", "192.0.2.54:5353", "2001:db8::53", "[2001:db8::54]:5353"]
          timeout: 2.5
          retries: 0
        modules:
          smtp:                       # replaces the built-in smtp module
            protocol: smtp
            starttls: optional
            ehlo: "[IPv6:2001:db8::1]"
          sub.strict-1:
            protocol: submission
            port: 2587
            timeout: 500ms
            interval: 1d
            ehlo: probe.example.org
            tls:
              ca_file: ca.pem
              server_name: Mail.Example.org.
              min_version: TLSv1.2
              max_version: TLSv1.3
          pop_plain: {protocol: pop3, starttls: none}
        targets:
          - host: MX1.Example.org
            module: smtp
            labels: {env: prod, _team: mail}
          - host: mx1.example.org
            module: sub.strict-1
          - host: 192.0.2.25
            port: 2525
            module: smtp
          - {host: "2001:db8::25", module: imaps}
        domains:
          - name: Example.ORG.
            dkim_selectors: [fm1, "20230601"]
            labels: {env: prod}
          - name: example.net
    """))
    assert config.global_ == GlobalSettings(
        interval=5400, timeout=45, concurrency=8, per_host_concurrency=2, jitter=0
    )
    assert config.dns.nameservers == (
        Nameserver("192.0.2.53", 53),
        Nameserver("192.0.2.54", 5353),
        Nameserver("2001:db8::53", 53),
        Nameserver("2001:db8::54", 5353),
    )
    assert (config.dns.timeout, config.dns.retries) == (2.5, 0)

    smtp = config.modules["smtp"]
    assert (smtp.starttls, smtp.ehlo, smtp.port, smtp.timeout) == (StartTLS.OPTIONAL, "[IPv6:2001:db8::1]", 25, 45)
    strict = config.modules["sub.strict-1"]
    assert (strict.protocol, strict.port, strict.timeout, strict.interval) == (MailProtocol.SUBMISSION, 2587, 0.5, 86400)
    assert strict.ehlo == "probe.example.org"
    assert strict.tls == TLSSettings(
        ca_file=str(tmp_path / "ca.pem"),  # resolved against the config file's directory
        server_name="mail.example.org",
        min_version="TLSv1.2",
        max_version="TLSv1.3",
    )
    assert config.modules["pop_plain"].starttls == StartTLS.NONE
    assert config.modules["submission"].port == 587  # built-ins stay beside user modules

    assert [(t.host, t.port, t.module) for t in config.targets] == [
        ("mx1.example.org", 25, "smtp"),
        ("mx1.example.org", 2587, "sub.strict-1"),
        ("192.0.2.25", 2525, "smtp"),
        ("2001:db8::25", 993, "imaps"),
    ]
    assert config.targets[0].labels == {"env": "prod", "_team": "mail"}
    assert config.targets[3].address == "[2001:db8::25]:993"

    assert [(d.name, d.dkim_selectors, dict(d.labels)) for d in config.domains] == [
        ("example.org", ("fm1", "20230601"), {"env": "prod"}),
        ("example.net", (), {}),
    ]


def test_result_is_immutable(tmp_path):
    config = load_config(write(tmp_path, """
        targets: [{host: mx.example.org, module: smtp, labels: {env: prod}}]
        domains: [{name: example.org, dkim_selectors: [s1]}]
    """))
    assert isinstance(config, Config)
    assert isinstance(config.modules, MappingProxyType)
    assert isinstance(config.targets, tuple) and isinstance(config.domains, tuple)
    assert isinstance(config.targets[0].labels, MappingProxyType)
    assert isinstance(config.domains[0].dkim_selectors, tuple)
    with pytest.raises(TypeError):
        config.targets[0].labels["env"] = "dev"
    with pytest.raises(AttributeError):
        config.targets[0].port = 26


@pytest.mark.parametrize(
    "written, seconds",
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1d", 86400), ("90", 90), ("0.25", 0.25),
     ("1_200", 1200), ("0x3c", 60)],
)
def test_durations_in_a_file(tmp_path, written, seconds):
    config = load_config(write(tmp_path, f"global: {{interval: 1y, timeout: {written}, jitter: {written}}}\n"))
    assert config.global_.timeout == seconds
    assert config.global_.jitter == seconds


# (file with VALUE for the duration, its path, its maximum). The other settings let the
# maximum itself pass the checks of timeout against interval.
DURATION_MAXIMA = [
    ("global: {interval: VALUE}", "global.interval", "365d"),
    ("global: {interval: 1y, timeout: VALUE}", "global.timeout", "1d"),
    ("global: {jitter: VALUE}", "global.jitter", "365d"),
    ("global: {backoff_max: VALUE}", "global.backoff_max", "365d"),
    ("dns: {timeout: VALUE}", "dns.timeout", "1h"),
    ("probe: {timeout_offset: VALUE}", "probe.timeout_offset", "1h"),
    ("domain_checks: {interval: VALUE}", "domain_checks.interval", "365d"),
    ("domain_checks: {https_timeout: VALUE}", "domain_checks.https_timeout", "1h"),
    ("modules: {m: {protocol: smtp, interval: VALUE}}", "modules.m.interval", "365d"),
    ("modules: {m: {protocol: smtp, interval: 1y, timeout: VALUE}}", "modules.m.timeout", "1d"),
    ("modules: {m: {protocol: smtp, deep_scan: {interval: VALUE}}}", "modules.m.deep_scan.interval", "365d"),
    ("modules: {m: {protocol: smtp, deep_scan: {min_delay: VALUE}}}", "modules.m.deep_scan.min_delay", "1h"),
    ("modules: {m: {protocol: smtp, deep_scan: {interval: 1y, budget: VALUE}}}", "modules.m.deep_scan.budget", "1d"),
]


@pytest.mark.parametrize("text, path, maximum", DURATION_MAXIMA, ids=[case[1] for case in DURATION_MAXIMA])
def test_each_duration_has_a_maximum(tmp_path, text, path, maximum):
    load_config(write(tmp_path, text.replace("VALUE", maximum)))
    for too_long, shown in ((f"{maximum}1ms", repr(f"{maximum}1ms")), ("10000y", "'10000y'"), ("1.0e+20", "1.0e+20")):
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, text.replace("VALUE", too_long)))
        assert (caught.value.line, caught.value.reason) == (1, f"{path}: must be at most {maximum}, got {shown}")


async def test_the_longest_interval_and_backoff_fit_on_the_status_page(tmp_path):
    """10000y passed the check, then the status page answered 500 (OverflowError) for the next run."""
    path = write(tmp_path, """
        global: {interval: 1y, jitter: 0, backoff_max: 1y}
        targets: [{host: 192.0.2.1, module: smtp}]
    """)
    probed = asyncio.Event()

    async def refused(target, module, dns):
        probed.set()
        return failed_result(FailureReason.CONNECTION_REFUSED)    # backs off: interval + backoff_max

    async with running_app(Path(path), probe=refused) as (exporter, client):
        await asyncio.wait_for(probed.wait(), 10)
        await asyncio.sleep(0.1)     # the target's loop records its next run
        [target] = exporter.config.targets
        next_run = exporter.scheduler.next_run(JobKind.ENDPOINT, target.key)
        assert next_run > time.time() + 2 * 365 * 86400 - 60
        assert (await client.get("/")).status == 200


def test_null_values_mean_not_set(tmp_path):
    config = load_config(write(tmp_path, """
        global:
          interval:
        dns:
        modules:
          mine:
            protocol: imap
            port: ~
            tls:
        targets:
          - host: mx.example.org
            module: mine
            port: null
            labels:
        domains:
    """))
    assert config.global_.interval == 300
    assert config.targets[0].port == 143
    assert config.modules["mine"].tls == TLSSettings()


def test_anchors_and_aliases_are_followed(tmp_path):
    config = load_config(write(tmp_path, """
        targets:
          - {host: a.example.org, module: smtp, labels: &common {env: prod, team: mail}}
          - {host: b.example.org, module: smtp, labels: *common}
    """))
    assert config.targets[1].labels == {"env": "prod", "team": "mail"}


def test_example_config_loads():
    config = load_config(str(REPO / "config.example.yml"))
    assert config.dns.nameservers == ()  # the system resolver
    hosts = {(t.host, t.port) for t in config.targets}
    assert {("smtp.gmail.com", 587), ("imap.gmail.com", 993), ("outlook.office365.com", 993),
            ("smtp.office365.com", 587), ("imap.fastmail.com", 993), ("gmail-smtp-in.l.google.com", 25)} <= hosts
    domains = {d.name: d.dkim_selectors for d in config.domains}
    assert domains["fastmail.com"] == ("fm1", "fm2", "fm3")
    assert domains["gmail.com"] == ("20230601",)


# --------------------------------------------------------------------------------------
# Bad files: each gets exactly this line and reason.
# --------------------------------------------------------------------------------------

NO_SUCH_MODULE = "defined: smtp, submission, smtps, imap, imaps, pop3, pop3s"
DURATION = "must be a duration such as 30s, 5m, 1h30m, 500ms or 1d, or a number of seconds"
HOST_LABEL = "each dot-separated part must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"

BAD_FILES = [
    # --- YAML itself
    ("syntax", "global:\n  interval: 5m\n timeout: 1s\n", 3,
     "invalid YAML: while parsing a block mapping, expected <block end>, but found '<block mapping start>'"),
    ("unclosed flow", "targets: [\n  {host: a}\n", 3,
     "invalid YAML: while parsing a flow sequence, expected ',' or ']', but got '<stream end>'"),
    ("two documents", "global: {}\n---\ndns: {}\n", 2,
     "invalid YAML: expected a single document in the stream, but found another document"),
    ("undefined alias", "targets: *nope\n", 1, "invalid YAML: found undefined alias 'nope'"),
    ("control character", "global:\n  interval: 5m\x07\n", 2, "invalid YAML: character U+0007 is not allowed"),
    ("tab", "global:\n\tinterval: 5m\n", 2,
     "invalid YAML: while scanning for the next token, found character '\\t' that cannot start any token"),
    # --- top level
    ("list at top", "- global\n", 1,
     "the top level must be a mapping with keys global, dns, probe, domain_checks, modules, targets, domains, blocklists, reports; got a list"),
    ("string at top", "hello\n", 1,
     "the top level must be a mapping with keys global, dns, probe, domain_checks, modules, targets, domains, blocklists, reports; got 'hello'"),
    ("unknown top key", "global: {}\ntarget: []\n", 2,
     "target: unknown key (did you mean 'targets'?); allowed here: global, dns, probe, domain_checks, modules, targets, domains, blocklists, reports"),
    ("duplicate key", "targets: []\ndns: {}\ntargets: []\n", 3, "targets: duplicate key (first on line 1)"),
    ("merge key", "global:\n  <<: {interval: 5m}\n", 2, "global: merge keys (<<) are not supported"),
    ("integer key", "global:\n  1: 2\n", 2, "global: keys must be strings, got 1"),
    ("section not a mapping", "global: 5m\n", 1, "global: must be a mapping, got '5m'"),
    ("targets not a list", "targets:\n  host: a.example\n", 2, "targets: must be a list, got a mapping"),
    # --- global
    ("unknown global key", "global:\n  intervall: 5m\n", 2,
     "global.intervall: unknown key (did you mean 'interval'?); allowed here: "
     "interval, timeout, concurrency, per_host_concurrency, jitter, backoff_max, revocation_checks"),
    ("bad duration", "global:\n  interval: 5 minutes\n", 2, f"global.interval: {DURATION}; got '5 minutes'"),
    ("duration without unit", "global:\n  interval: '300'\n", 2, f"global.interval: {DURATION}; got '300'"),
    ("negative duration", "global:\n  interval: -5\n", 2, "global.interval: must be greater than 0, got -5"),
    ("zero timeout", "global:\n  timeout: 0s\n", 2, "global.timeout: must be greater than 0, got '0s'"),
    ("infinite duration", "global:\n  timeout: .inf\n", 2, f"global.timeout: {DURATION}; got .inf"),
    ("boolean duration", "global:\n  timeout: yes\n", 2, f"global.timeout: {DURATION}; got yes (a boolean)"),
    ("negative jitter", "global:\n  jitter: -1\n", 2, "global.jitter: must not be negative, got -1"),
    ("revocation_checks not a boolean", "global:\n  revocation_checks: 'off'\n", 2,
     "global.revocation_checks: must be true or false, got 'off'"),
    ("timeout above interval", "global:\n  interval: 1m\n  timeout: 2m\n", 3,
     "global: timeout (2m) must not exceed interval (1m)"),
    ("interval below default timeout", "global:\n  interval: 5s\n", 2,
     "global: timeout (10s) must not exceed interval (5s)"),
    ("zero concurrency", "global:\n  concurrency: 0\n", 2,
     "global.concurrency: must be an integer of at least 1, got 0"),
    ("float concurrency", "global:\n  per_host_concurrency: 1.5\n", 2,
     "global.per_host_concurrency: must be an integer of at least 1, got 1.5"),
    # --- probe
    ("unknown probe key", "probe:\n  allowed_target: []\n", 2,
     "probe.allowed_target: unknown key (did you mean 'allowed_targets'?); allowed here: "
     "allowed_targets, allowed_domains, timeout_offset"),
    ("bad domain pattern", "probe:\n  allowed_domains: ['*.example.org', 'a b']\n", 2,
     "probe.allowed_domains[1]: 'a b' is not a domain name pattern (letters, digits, '-', '.', '*' and '?')"),
    ("probe pattern with host bits", "probe:\n  allowed_targets:\n    - 10.0.0.0/8\n    - 192.0.2.1/24\n", 4,
     "probe.allowed_targets[1]: '192.0.2.1/24' has host bits set: write the network address, e.g. 192.0.2.0/24"),
    ("duplicate probe pattern", "probe:\n  allowed_targets: ['*.example.org',\n    '*.example.org']\n", 3,
     "probe.allowed_targets[1]: duplicate pattern (first on line 2)"),
    ("probe pattern not a string", "probe:\n  allowed_targets: [25]\n", 2,
     "probe.allowed_targets[0]: must be a string, got 25; put it in quotes to make it text"),
    ("negative timeout offset", "probe:\n  timeout_offset: -1\n", 2,
     "probe.timeout_offset: must not be negative, got -1"),
    # --- dns
    ("nameserver by name", "dns:\n  nameservers:\n    - 192.0.2.53\n    - dns.google\n", 4,
     "dns.nameservers[1]: 'dns.google' is not an IP address (name servers are given by address, not by name)"),
    ("nameserver as number", "dns:\n  nameservers: [1:2:3:4:5:6:7:8]\n", 2,
     "dns.nameservers[0]: must be a string, got 1:2:3:4:5:6:7:8; put it in quotes to make it text"),
    ("nameservers as string", "dns:\n  nameservers: 192.0.2.53\n", 2,
     "dns.nameservers: must be a list, got '192.0.2.53'"),
    ("duplicate nameserver", "dns:\n  nameservers:\n    - 192.0.2.53\n    - 192.0.2.53:53\n", 4,
     "dns.nameservers[1]: duplicate name server (first on line 3)"),
    ("negative retries", "dns:\n  retries: -1\n", 2, "dns.retries: must be an integer of at least 0, got -1"),
    ("dns unknown key", "dns:\n  servers: []\n", 2,
     "dns.servers: unknown key (did you mean 'nameservers'?); allowed here: nameservers, timeout, retries"),
    # --- modules
    ("module without protocol", "modules:\n  mine:\n    port: 25\n", 3, "modules.mine: 'protocol' is required"),
    ("module null", "modules:\n  mine:\n", 2, "modules.mine: must be a mapping, got null"),
    ("unknown protocol", "modules:\n  mine: {protocol: lmtp}\n", 2,
     "modules.mine.protocol: must be one of smtp, submission, smtps, imap, imaps, pop3, pop3s; got 'lmtp'"),
    ("bad module name", "modules:\n  my module: {protocol: smtp}\n", 2,
     "modules.my module: a module name may only have letters, digits, '_', '.' and '-'"),
    ("module port", "modules:\n  mine:\n    protocol: smtp\n    port: 0\n", 4,
     "modules.mine.port: must be an integer from 1 to 65535, got 0"),
    ("starttls on implicit tls", "modules:\n  mine:\n    protocol: imaps\n    starttls: required\n", 4,
     "modules.mine.starttls: imaps starts TLS at once, without STARTTLS; leave starttls out or set it to none"),
    ("starttls yaml boolean", "modules:\n  mine:\n    protocol: smtp\n    starttls: no\n", 4,
     "modules.mine.starttls: must be one of required, optional, none; got no (a boolean)"),
    ("ehlo on imap", "modules:\n  mine:\n    protocol: imap\n    ehlo: probe.example.org\n", 4,
     "modules.mine.ehlo: only SMTP modules send EHLO, this one is imap"),
    ("ehlo on pop3s", "modules:\n  mine:\n    protocol: pop3s\n    ehlo: probe.example.org\n", 4,
     "modules.mine.ehlo: only SMTP modules send EHLO, this one is pop3s"),
    ("bad ehlo", "modules:\n  mine:\n    protocol: smtp\n    ehlo: '[2001:db8::1]'\n", 4,
     "modules.mine.ehlo: '[2001:db8::1]' is not an address literal such as [192.0.2.1] or [IPv6:2001:db8::1]"),
    ("module timeout above its interval", "modules:\n  mine:\n    protocol: smtp\n    interval: 1m\n"
     "    timeout: 90s\n", 5, "modules.mine: timeout (1m30s) must not exceed interval (1m)"),
    ("module interval below global timeout", "modules:\n  mine:\n    protocol: smtp\n    interval: 3s\n", 4,
     "modules.mine: timeout (10s) must not exceed interval (3s)"),
    ("tls version", "modules:\n  mine:\n    protocol: smtp\n    tls:\n      min_version: tls1.2\n", 5,
     "modules.mine.tls.min_version: must be one of TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3; got 'tls1.2'"),
    ("tls min above max", "modules:\n  mine:\n    protocol: smtp\n    tls:\n      min_version: TLSv1.3\n"
     "      max_version: TLSv1.2\n", 6, "modules.mine.tls: min_version (TLSv1.3) is above max_version (TLSv1.2)"),
    ("server name ip", "modules:\n  mine:\n    protocol: smtp\n    tls: {server_name: 192.0.2.25}\n", 4,
     "modules.mine.tls.server_name: must be a DNS name: TLS cannot send an IP address as server name; "
     "leave it out to check the certificate against the target's address"),
    ("tls unknown key", "modules:\n  mine:\n    protocol: smtp\n    tls:\n      verify: false\n", 5,
     "modules.mine.tls.verify: unknown key; allowed here: ca_file, server_name, min_version, max_version"),
    ("module unknown key", "modules:\n  mine:\n    protocol: smtp\n    helo: x.example\n", 4,
     "modules.mine.helo: unknown key (did you mean 'ehlo'?); allowed here: "
     "protocol, port, starttls, timeout, interval, tls, ehlo, deep_scan, open_relay_test, check_ptr"),
    ("deep scan unknown key", "modules:\n  mine:\n    protocol: smtp\n    deep_scan: {every: 1h}\n", 4,
     "modules.mine.deep_scan.every: unknown key; allowed here: interval, min_delay, budget"),
    ("deep scan budget over interval", "modules:\n  mine:\n    protocol: smtp\n    deep_scan:\n"
     "      interval: 1m\n      budget: 5m\n", 6,
     "modules.mine.deep_scan: budget (5m) must not exceed interval (1m)"),
    ("deep scan negative delay", "modules:\n  mine:\n    protocol: smtp\n    deep_scan: {min_delay: -1s}\n", 4,
     "modules.mine.deep_scan.min_delay: must be a duration such as 30s, 5m, 1h30m, 500ms or 1d, or a number of seconds; got '-1s'"),
    ("domain_checks mx_module unknown", "domain_checks:\n  mx_module: nope\n", 2,
     "domain_checks.mx_module: no module named 'nope'"),
    ("domain_checks mx_module not smtp", "domain_checks:\n  mx_module: imaps\n", 2,
     "domain_checks.mx_module: not an SMTP module: 'imaps'"),
    ("domain_checks probe_mx not a boolean", "domain_checks:\n  probe_mx: 'yes'\n", 2,
     "domain_checks.probe_mx: must be true or false, got 'yes'"),
    ("backoff_max negative", "global:\n  backoff_max: -5m\n", 2,
     "global.backoff_max: must be a duration such as 30s, 5m, 1h30m, 500ms or 1d, or a number of seconds; got '-5m'"),
    # --- targets
    ("target port too big", "targets:\n  - host: a.example\n    module: smtp\n  - host: b.example\n"
     "    module: smtp\n  - host: c.example\n    module: smtp\n    port: 70000\n", 8,
     "targets[2].port: must be an integer from 1 to 65535, got 70000"),
    ("target port text", "targets:\n  - {host: a.example, module: smtp, port: abc}\n", 2,
     "targets[0].port: must be an integer from 1 to 65535, got 'abc'"),
    ("target port boolean", "targets:\n  - {host: a.example, module: smtp, port: true}\n", 2,
     "targets[0].port: must be an integer from 1 to 65535, got true (a boolean)"),
    ("target without module", "targets:\n  - host: a.example\n", 2, "targets[0]: 'module' is required"),
    ("target with empty module", "targets:\n  - host: a.example\n    module:\n", 3,
     "targets[0]: 'module' is required"),
    ("target without host", "targets:\n  - module: smtp\n", 2, "targets[0]: 'host' is required"),
    ("unknown module", "targets:\n  - {host: a.example, module: smpt}\n", 2,
     f"targets[0].module: no module named 'smpt' (did you mean 'smtp'?); {NO_SUCH_MODULE}"),
    ("target not a mapping", "targets:\n  - a.example\n", 2, "targets[0]: must be a mapping, got 'a.example'"),
    ("target null", "targets:\n  -\n", 2, "targets[0]: must be a mapping, got null"),
    ("bad host", "targets:\n  - {host: mx_1.example, module: smtp}\n", 2,
     f"targets[0].host: 'mx_1.example' has an invalid part 'mx_1': {HOST_LABEL}"),
    ("host with port", "targets:\n  - {host: 'a.example:25', module: smtp}\n", 2,
     f"targets[0].host: 'a.example:25' has an invalid part 'example:25': {HOST_LABEL}"),
    ("host bad ipv4", "targets:\n  - {host: 192.0.2.256, module: smtp}\n", 2,
     "targets[0].host: '192.0.2.256' is neither an IP address nor a host name"),
    ("host bracketed ipv6", "targets:\n  - {host: '[2001:db8::1]', module: smtp}\n", 2,
     "targets[0].host: write an IPv6 address without brackets; got '[2001:db8::1]'"),
    ("duplicate target", "targets:\n  - {host: mx.example.org, module: smtp}\n  - {host: a.example, module: smtp}\n"
     "  - {host: MX.example.org., module: smtp, port: 25}\n", 4,
     "targets[2]: duplicate of targets[0] on line 2 (same host, port and module: smtp/mx.example.org:25)"),
    ("duplicate ipv6 target", "targets:\n  - {host: '2001:db8::1', module: imaps}\n"
     "  - {host: '2001:DB8:0::1', module: imaps}\n", 3,
     "targets[1]: duplicate of targets[0] on line 2 (same host, port and module: imaps/[2001:db8::1]:993)"),
    ("target unknown key", "targets:\n  - {host: a.example, module: smtp, protocol: smtp}\n", 2,
     "targets[0].protocol: unknown key; allowed here: host, port, module, labels"),
    # --- labels
    ("reserved label", "targets:\n  - host: a.example\n    module: smtp\n    labels:\n      instance: x\n", 5,
     "targets[0].labels.instance: the exporter sets a label named 'instance' itself; choose another name"),
    ("label set by the collector", "domains:\n  - name: a.example\n    labels:\n      version: x\n", 4,
     "domains[0].labels.version: the exporter sets a label named 'version' itself; choose another name"),
    ("double underscore label", "targets:\n  - {host: a.example, module: smtp, labels: {__name: x}}\n", 2,
     "targets[0].labels.__name: label names starting with __ are reserved for Prometheus"),
    ("invalid label name", "targets:\n  - {host: a.example, module: smtp, labels: {team-name: x}}\n", 2,
     "targets[0].labels.team-name: not a valid label name (letters, digits and _, not starting with a digit)"),
    ("label name with digit first", "domains:\n  - {name: a.example, labels: {1st: x}}\n", 2,
     "domains[0].labels.1st: not a valid label name (letters, digits and _, not starting with a digit)"),
    ("label value boolean", "targets:\n  - {host: a.example, module: smtp, labels: {critical: yes}}\n", 2,
     "targets[0].labels.critical: must be a string, got yes (a boolean); put it in quotes to make it text"),
    ("label value empty", "targets:\n  - {host: a.example, module: smtp, labels: {env: ''}}\n", 2,
     "targets[0].labels.env: must not be empty (Prometheus drops empty labels)"),
    ("labels not a mapping", "targets:\n  - {host: a.example, module: smtp, labels: [env]}\n", 2,
     "targets[0].labels: must be a mapping, got a list"),
    # --- domains
    ("domain without name", "domains:\n  - dkim_selectors: [s1]\n", 2, "domains[0]: 'name' is required"),
    ("bad domain name", "domains:\n  - name: example..org\n", 2,
     f"domains[0].name: 'example..org' has an invalid part '': {HOST_LABEL}"),
    ("domain ip", "domains:\n  - name: 192.0.2.1\n", 2,
     "domains[0].name: '192.0.2.1' is neither an IP address nor a host name"),
    ("duplicate domain", "domains:\n  - name: example.org\n  - name: Example.org.\n", 3,
     "domains[1]: duplicate of domains[0] on line 2 (same name: example.org)"),
    ("selector as number", "domains:\n  - name: gmail.com\n    dkim_selectors: [20230601]\n", 3,
     "domains[0].dkim_selectors[0]: must be a string, got 20230601; put it in quotes to make it text"),
    ("bad selector", "domains:\n  - name: gmail.com\n    dkim_selectors:\n      - s1\n      - 's 2'\n", 5,
     f"domains[0].dkim_selectors[1]: 's 2' has an invalid part 's 2': {HOST_LABEL}"),
    ("duplicate selector", "domains:\n  - name: gmail.com\n    dkim_selectors:\n      - s1\n      - S1\n", 5,
     "domains[0].dkim_selectors[1]: duplicate selector (first on line 4)"),
    ("selector too long", f"domains:\n  - name: {'d' * 60}.{'e' * 60}.{'f' * 60}.example\n"
     f"    dkim_selectors: [{'s' * 63}]\n", 3,
     f"domains[0].dkim_selectors[0]: {'s' * 63}._domainkey.{'d' * 60}.{'e' * 60}.{'f' * 60}.example "
     "is longer than 253 characters"),
    ("domain unknown key", "domains:\n  - {name: gmail.com, selectors: [s1]}\n", 2,
     "domains[0].selectors: unknown key (did you mean 'dkim_selectors'?); allowed here: name, dkim_selectors, labels, blocklist_spf"),
    ("custom tag", "domains:\n  - name: !host gmail.com\n", 2,
     "domains[0].name: must be a string, got a value tagged !host; put it in quotes to make it text"),
]


@pytest.mark.parametrize("text, line, reason", [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_bad_file(tmp_path, text, line, reason):
    path = tmp_path / "bad.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert (caught.value.file, caught.value.line, caught.value.reason) == (str(path), line, reason)
    assert str(caught.value) == f"{path}:{line}: {reason}"


def test_missing_file(tmp_path):
    path = str(tmp_path / "missing.yml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.file, caught.value.line, caught.value.reason) == (
        path, None, "cannot read the file: No such file or directory"
    )
    assert str(caught.value) == f"{path}: cannot read the file: No such file or directory"


def make_fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo.yml"
    os.mkfifo(path)
    return str(path)


def make_too_large(tmp_path: Path) -> str:
    path = tmp_path / "huge.yml"
    with open(path, "wb") as file:
        file.truncate(16 * 1024 * 1024 + 1)    # sparse: it takes no disk space
    return str(path)


NOT_REGULAR = "cannot read the file: it is not a regular file (a device, FIFO or socket)"
UNREADABLE_FILES = [
    ("endless device", lambda tmp_path: "/dev/zero", NOT_REGULAR),    # was read forever
    ("fifo", make_fifo, NOT_REGULAR),                                 # blocked until a writer came
    ("directory", lambda tmp_path: str(tmp_path), "cannot read the file: Is a directory"),
    ("over 16 MiB", make_too_large, "cannot read the file: it is larger than 16 MiB"),
]


@pytest.mark.parametrize("load", [load_config, load_web_config])
@pytest.mark.parametrize("make, reason", [case[1:] for case in UNREADABLE_FILES], ids=[case[0] for case in UNREADABLE_FILES])
def test_only_a_regular_file_of_sane_size_is_read(tmp_path, load, make, reason):
    """By the loaders of the config file and of the web config file alike."""
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: {reason}"


def test_file_not_utf8(tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"targets:\n  - {host: a.example, module: smtp, labels: {city: M\xfcnchen}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert (caught.value.line, caught.value.reason) == (2, "the file is not valid UTF-8")


def test_deep_nesting_is_a_config_error(tmp_path):
    path = write(tmp_path, "targets: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.reason == "invalid YAML: nested too deeply"


def test_ca_file_must_be_readable_pem(tmp_path):
    (tmp_path / "not-pem.txt").write_text("hello\n")
    cases = [
        ("missing.pem", f"cannot read {tmp_path / 'missing.pem'}: No such file or directory"),
        (".", f"cannot read {tmp_path}: Is a directory"),
        ("/dev/zero", "cannot read /dev/zero: it is not a regular file (a device, FIFO or socket)"),
        ("not-pem.txt", f"{tmp_path / 'not-pem.txt'} holds no PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)"),
    ]
    for ca_file, problem in cases:
        path = write(tmp_path, f"modules:\n  mine:\n    protocol: smtps\n    tls:\n      ca_file: '{ca_file}'\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert (caught.value.line, caught.value.reason) == (5, f"modules.mine.tls.ca_file: {problem}")


def test_absolute_ca_file_is_kept(tmp_path):
    write_ca_file(tmp_path / "ca.pem")
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    ca_file = str(tmp_path / "ca.pem")
    config = load_config(write(elsewhere, f"modules:\n  mine: {{protocol: imaps, tls: {{ca_file: '{ca_file}'}}}}\n"))
    assert config.modules["mine"].tls.ca_file == ca_file
    assert os.path.isabs(config.modules["mine"].tls.ca_file)


# --------------------------------------------------------------------------------------
# Whatever the file holds, the loader answers with a Config or a ConfigError.
# --------------------------------------------------------------------------------------

YAML_PIECES = [
    "global:", "dns:", "modules:", "targets:", "domains:", "\n", "  ", "- ", ": ", "{", "}", "[", "]", ", ",
    "'", '"', "#", "&a ", "*a", "!!str ", "!tag ", "<<", "? ", "|", ">", "---", "...", "\t", "é", "~",
    "host", "port", "module", "labels", "protocol", "starttls", "tls", "ca_file", "ehlo", "name",
    "dkim_selectors", "nameservers", "interval", "timeout", "jitter", "smtp", "imaps", "required",
    "mx.example.org", "::1", "[::1]:53", "192.0.2.1", "1", "0", "-1", "70000", "0x19", "1.5", ".inf",
    "true", "no", "null", "5m", "1h30m", "TLSv1.2", "env",
]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 70000), st.floats(allow_nan=True),
    st.sampled_from(YAML_PIECES), st.text(max_size=10),
)
KEYS = st.sampled_from(YAML_PIECES[:5] + YAML_PIECES[30:50])
CONFIG_LIKE = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join), st.text(max_size=80)))
def test_any_text_loads_or_raises_config_error(tmp_path, text):
    check_loads_or_refuses(tmp_path, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(KEYS, CONFIG_LIKE, max_size=5))
def test_any_config_shaped_yaml_loads_or_raises_config_error(tmp_path, data):
    check_loads_or_refuses(tmp_path, yaml.safe_dump(data, allow_unicode=True))


def check_loads_or_refuses(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(str(path))
    except ConfigError as error:
        assert error.file == str(path)
        assert error.reason
    else:
        assert isinstance(config, Config)


# --------------------------------------------------------------------------------------
# probe.allowed_targets patterns
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, host_glob, network, port",
    [
        ("*.example.org", "*.example.org", None, None),
        ("MX?.Example.org:25", "mx?.example.org", None, 25),
        ("*", "*", None, None),
        ("192.0.2.0/24", None, "192.0.2.0/24", None),
        ("192.0.2.25:465", None, "192.0.2.25/32", 465),
        ("2001:db8::/32", None, "2001:db8::/32", None),
        ("::1", None, "::1/128", None),
        ("[2001:db8::/32]:993", None, "2001:db8::/32", 993),
        ("[::1]", None, "::1/128", None),
    ],
)
def test_parse_target_pattern(text, host_glob, network, port):
    pattern = parse_target_pattern(text)
    assert pattern.text == text
    assert pattern.host_glob == host_glob
    assert (str(pattern.network) if pattern.network else None) == network
    assert pattern.port == port


@pytest.mark.parametrize(
    "text, reason",
    [
        ("192.0.2.1/24", "'192.0.2.1/24' has host bits set: write the network address, e.g. 192.0.2.0/24"),
        ("192.0.2.300", "'192.0.2.300' is not an IP address or network"),
        ("2001:db8::/129", "'2001:db8::/129' is not an IP address or network"),
        ("mx.example.org:0", "the port must be an integer from 1 to 65535; got '0' in 'mx.example.org:0'"),
        ("mx.example.org:", "the port must be an integer from 1 to 65535; got '' in 'mx.example.org:'"),
        ("[::1", "'[::1' has '[' without ']'"),
        ("[::1]25", "expected ':port' after ']' in '[::1]25'"),
        ("[192.0.2.1]:25", "brackets are only for IPv6 addresses; got '[192.0.2.1]:25'"),
        ("mx_1.example.org", "'mx_1.example.org' is neither an IP address or network nor a host-name pattern "
         "(letters, digits, hyphens and dots, with * and ? as wildcards)"),
        ("", "'' is neither an IP address or network nor a host-name pattern "
         "(letters, digits, hyphens and dots, with * and ? as wildcards)"),
    ],
)
def test_parse_target_pattern_refuses(text, reason):
    with pytest.raises(ValueError) as caught:
        parse_target_pattern(text)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "pattern, name, port, matches",
    [
        ("*.example.org", "mx.example.org", 25, True),
        ("*.example.org", "a.b.example.org", 25, True),      # * crosses dots, as in fnmatch
        ("*.example.org", "example.org", 25, False),
        ("*.example.org", "mx.example.org.evil.test", 25, False),
        ("mx?.example.org:25", "mx1.example.org", 25, True),
        ("mx?.example.org:25", "mx1.example.org", 587, False),
        ("192.0.2.0/24", "mx.example.org", 25, False),        # networks never match names
    ],
)
def test_target_pattern_matches_names(pattern, name, port, matches):
    assert parse_target_pattern(pattern).matches_name(name, port) is matches


@pytest.mark.parametrize(
    "pattern, address, port, matches",
    [
        ("192.0.2.0/24", "192.0.2.200", 25, True),
        ("192.0.2.0/24", "192.0.3.1", 25, False),
        ("192.0.2.25:465", "192.0.2.25", 465, True),
        ("192.0.2.25:465", "192.0.2.25", 25, False),
        ("2001:db8::/32", "2001:db8:1::25", 993, True),
        ("2001:db8::/32", "192.0.2.1", 993, False),
        ("127.0.0.0/8", "::ffff:127.0.0.1", 25, False),       # a mapped address is not an IPv4 address
        ("*", "192.0.2.1", 25, False),                          # globs never match addresses
    ],
)
def test_target_pattern_matches_addresses(pattern, address, port, matches):
    assert parse_target_pattern(pattern).matches_address(address, port) is matches


def test_probe_section_loads(tmp_path):
    config = load_config(write(tmp_path, """
        probe:
          allowed_targets: ["*.example.org", "192.0.2.0/24:25"]
          timeout_offset: 250ms
    """))
    assert [pattern.text for pattern in config.probe.allowed_targets] == ["*.example.org", "192.0.2.0/24:25"]
    assert config.probe.timeout_offset == 0.25
    assert load_config(write(tmp_path, "")).probe == ProbeSettings()
    assert ProbeSettings().allowed_targets == () and ProbeSettings().timeout_offset == 0.5


def test_deep_scan_is_off_unless_a_module_asks_for_it(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        "modules:\n"
        "  scanned:\n    protocol: smtp\n    deep_scan: {interval: 12h, min_delay: 2s}\n"
        "  defaults:\n    protocol: imaps\n    deep_scan:\n"
    )
    config = load_config(str(path))
    assert config.modules["smtp"].deep_scan is None
    assert config.modules["scanned"].deep_scan == DeepScanSettings(interval=43200.0, min_delay=2.0, budget=300.0)
    assert config.modules["defaults"].deep_scan == DeepScanSettings()


def test_domain_checks_defaults_and_settings(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("domain_checks:\n  interval: 15m\n  probe_mx: false\n  https_timeout: 5s\n")
    settings = load_config(str(path)).domain_checks
    assert (settings.interval, settings.probe_mx, settings.https_timeout, settings.mx_module) == (900.0, False, 5.0, "smtp")
    path.write_text("")
    assert load_config(str(path)).domain_checks == DomainCheckSettings()


@pytest.mark.parametrize("text, enabled", [("", True), ("global: {revocation_checks: false}", False),
                                           ("global: {revocation_checks: true}", True)])
def test_revocation_checks_are_on_unless_switched_off(tmp_path, text, enabled):
    assert load_config(write(tmp_path, text)).global_.revocation_checks is enabled
