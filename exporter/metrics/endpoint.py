"""The metric families of an endpoint probe result, and its samples.

Every address of a host is probed: each family below carries the `address` probed and its
`family` (ipv4, ipv6), except the host's rollup (mailsec_host_*) and its interval. A host
whose name did not resolve has one set of samples with both labels empty.

Nothing here is a global metric object: samples are built from the immutable results
(once per result for /metrics, see exposition.py; per request for /probe). Every family is
declared once in a `MetricSpec` table, which `docs/metrics.md` must match (a test keeps the
two in step).
"""

from __future__ import annotations

from typing import Callable

from ..config import Target
from ..results import (
    CAPABILITIES_BY_FAMILY,
    AddressFamily,
    AuthMechanism,
    EndpointResult,
    HostResult,
    OfferedCapabilities,
    SkipReason,
    TLSFacts,
    TLSPhase,
)
from .specs import Families, MetricSpec, subject_labels


ENDPOINT_METRICS = (
    MetricSpec("mailsec_probe_success", "1 if the last probe of the address completed its dialogue and TLS handshake, else 0.", ("address", "family")),
    MetricSpec("mailsec_probe_failure_info", "Why the last probe of the address failed; present only while it fails.", ("address", "family", "reason")),
    MetricSpec("mailsec_probe_duration_seconds", "How long the last probe of the address took.", ("address", "family")),
    MetricSpec("mailsec_probe_phase_duration_seconds", "How long each phase of the last probe of the address took.", ("address", "family", "phase")),
    MetricSpec("mailsec_probe_last_run_timestamp_seconds", "When the last probe of the address started.", ("address", "family")),
    MetricSpec("mailsec_probe_interval_seconds", "How often the exporter probes the endpoint (its module's interval); absent from /probe."),
    MetricSpec("mailsec_host_addresses", "How many addresses of the host the last run probed."),
    MetricSpec("mailsec_host_addresses_succeeded", "How many addresses of the host the last run probed successfully."),
    MetricSpec("mailsec_host_addresses_skipped", "Addresses of the host the last run did not probe, by reason (over_limit, no_route).", ("reason",)),
    MetricSpec("mailsec_host_addresses_consistent", "1 if the addresses that answered present the same certificate, TLS version and cipher suite; absent with fewer than two."),
    MetricSpec("mailsec_starttls_offered", "1 if the server advertised STARTTLS (STLS for POP3) before TLS; absent for implicit TLS.", ("address", "family")),
    MetricSpec("mailsec_plaintext_auth_exposed", "1 if the server offered password authentication before TLS.", ("address", "family")),
    MetricSpec("mailsec_starttls_enforced", "1 if the server refuses mail and logins before STARTTLS, 0 if it accepts either; absent where not determined.", ("address", "family", "protocol")),
    MetricSpec("mailsec_capability_offered", "1 if the server advertised the capability (SMTP extension, IMAP or POP3 capability) in that phase, 0 if not; a closed list per protocol.", ("address", "family", "capability", "phase")),
    MetricSpec("mailsec_auth_mechanism_offered", "1 if the server offered the SASL mechanism in that phase, 0 if not; a closed list.", ("address", "family", "mechanism", "phase")),
    MetricSpec("mailsec_capabilities_unknown", "How many distinct capabilities and SASL mechanisms outside the closed lists the server advertised in that phase.", ("address", "family", "phase")),
    MetricSpec("mailsec_name_mismatch", "1 if the two names of the pair disagree (greeting, EHLO reply, forward-confirmed PTR, certificate), 0 if they agree; SMTP only.", ("address", "family", "pair")),
    MetricSpec("mailsec_open_relay", "1 if the server accepted the configured outside canary recipient (an open relay from the exporter's vantage point), 0 if it refused; only with open_relay_test.", ("address", "family")),
    MetricSpec("mailsec_tls_version_info", "The TLS version negotiated by the last probe.", ("address", "family", "version")),
    MetricSpec("mailsec_tls_cipher_info", "The cipher suite negotiated by the last probe.", ("address", "family", "cipher")),
    MetricSpec("mailsec_cert_not_before_timestamp_seconds", "The leaf certificate's notBefore.", ("address", "family")),
    MetricSpec("mailsec_cert_not_after_timestamp_seconds", "The leaf certificate's notAfter.", ("address", "family")),
    MetricSpec("mailsec_cert_chain_earliest_expiry_timestamp_seconds", "The earliest notAfter among the certificates the server presented.", ("address", "family")),
    MetricSpec("mailsec_cert_chain_certificates", "How many certificates the server presented.", ("address", "family")),
    MetricSpec("mailsec_cert_chain_valid", "1 if the presented chain verifies against the trust store (system or the module's ca_file).", ("address", "family")),
    MetricSpec("mailsec_cert_hostname_valid", "1 if the leaf certificate is valid for the checked name (RFC 6125).", ("address", "family")),
    MetricSpec("mailsec_cert_self_signed", "1 if the leaf certificate is self-signed.", ("address", "family")),
    MetricSpec("mailsec_cert_key_size", "Size of the leaf certificate's public key.", ("address", "family", "key_type")),
    MetricSpec("mailsec_cert_other_key_type_not_after_timestamp_seconds", "The notAfter of the server's certificate of another key type (ECDSA next to RSA), when asked for it (MX hosts with TLSA records).", ("address", "family", "key_type")),
    MetricSpec(
        "mailsec_cert_info",
        "Text facts of the leaf certificate; always 1.",
        ("address", "family", "subject", "issuer", "serial", "fingerprint_sha256", "sans", "signature_hash"),
    ),
)

# Phases reported by mailsec_probe_phase_duration_seconds, in dialogue order.
PHASES = ("connect", "greeting", "tls_handshake")

# SAN lists can be long (hundreds of names on shared hosting): cap the label value.
_MAX_SANS_LABEL = 1024

Add = Callable[..., None]   # add(name, value, **extra_labels), as in add_endpoint_samples


def add_endpoint_samples(families: Families, target: Target, result: HostResult) -> None:
    """Add the samples of one endpoint's latest result: each address's, and the host's rollup."""
    base = subject_labels(target)

    def add_to(labels: dict[str, str]) -> Add:
        def add(name: str, value: float, **extra: str) -> None:
            families.add(name, {**labels, **extra} if extra else labels, value)
        return add

    host = add_to(base)
    if result.interval_seconds is not None:
        host("mailsec_probe_interval_seconds", result.interval_seconds)
    host("mailsec_host_addresses", float(len(result.addresses)))
    host("mailsec_host_addresses_succeeded", float(sum(1 for r in result.addresses if r.success)))
    for reason in SkipReason:
        host("mailsec_host_addresses_skipped", float(sum(1 for _, why in result.skipped if why is reason)),
             reason=reason.value)
    if result.consistent is not None:
        host("mailsec_host_addresses_consistent", float(result.consistent))
    if result.resolve_failure is not None:     # no address: the probe facts, with empty address labels
        add = add_to({**base, "address": "", "family": ""})
        add("mailsec_probe_success", 0.0)
        add("mailsec_probe_failure_info", 1.0, reason=result.resolve_failure.value)
        add("mailsec_probe_duration_seconds", result.duration_seconds)
        add("mailsec_probe_last_run_timestamp_seconds", result.observed_at)
    for address_result in result.addresses:
        address = address_result.address or ""
        family = AddressFamily.of(address).value if address else ""
        _add_address_samples(add_to({**base, "address": address, "family": family}), address_result)


def _add_address_samples(add: Add, result: EndpointResult) -> None:
    add("mailsec_probe_success", 1.0 if result.success else 0.0)
    if result.failure is not None:
        add("mailsec_probe_failure_info", 1.0, reason=result.failure.value)
    add("mailsec_probe_duration_seconds", result.duration_seconds)
    add("mailsec_probe_last_run_timestamp_seconds", result.observed_at)
    phase_seconds = (result.connect_seconds, result.greeting_seconds, result.tls_handshake_seconds)
    for phase, seconds in zip(PHASES, phase_seconds):
        if seconds is not None:
            add("mailsec_probe_phase_duration_seconds", seconds, phase=phase)
    if result.starttls_offered is not None:
        add("mailsec_starttls_offered", float(result.starttls_offered))
    if result.plaintext_auth_exposed is not None:
        add("mailsec_plaintext_auth_exposed", float(result.plaintext_auth_exposed))
    _add_policy_samples(add, result)
    tls = result.tls
    if tls is not None and tls.chain:
        _add_tls_samples(add, tls)
    for chain in result.other_chains:
        add("mailsec_cert_other_key_type_not_after_timestamp_seconds", chain[0].not_after, key_type=chain[0].key_type)


def _add_tls_samples(add: Add, tls: TLSFacts) -> None:
    leaf = tls.leaf
    add("mailsec_tls_version_info", 1.0, version=tls.version)
    add("mailsec_tls_cipher_info", 1.0, cipher=tls.cipher)
    add("mailsec_cert_not_before_timestamp_seconds", leaf.not_before)
    add("mailsec_cert_not_after_timestamp_seconds", leaf.not_after)
    add("mailsec_cert_chain_earliest_expiry_timestamp_seconds", tls.chain_earliest_not_after)
    add("mailsec_cert_chain_certificates", float(len(tls.chain)))
    add("mailsec_cert_chain_valid", float(tls.chain_valid))
    add("mailsec_cert_hostname_valid", float(tls.hostname_valid))
    add("mailsec_cert_self_signed", float(leaf.self_signed))
    add("mailsec_cert_key_size", float(leaf.key_bits), key_type=leaf.key_type)
    add(
        "mailsec_cert_info",
        1.0,
        subject=leaf.subject,
        issuer=leaf.issuer,
        serial=leaf.serial,
        fingerprint_sha256=leaf.fingerprint_sha256,
        sans=",".join(leaf.sans)[:_MAX_SANS_LABEL],
        signature_hash=leaf.signature_hash or "",
    )


def _add_offered(add: Add, phase: TLSPhase, offered: OfferedCapabilities) -> None:
    """0/1 over the closed lists (so that "not offered" is a sample, not an absence)."""
    for capability in CAPABILITIES_BY_FAMILY[offered.family]:
        add("mailsec_capability_offered", float(capability in offered.capabilities),
            capability=capability.value, phase=phase.value)
    for mechanism in AuthMechanism:
        add("mailsec_auth_mechanism_offered", float(mechanism in offered.auth_mechanisms),
            mechanism=mechanism.value, phase=phase.value)
    add("mailsec_capabilities_unknown", float(offered.unknown), phase=phase.value)


def _add_policy_samples(add: Add, result: EndpointResult) -> None:
    if result.starttls_enforced is not None and result.protocol is not None:
        add("mailsec_starttls_enforced", float(result.starttls_enforced), protocol=result.protocol.value)
    for phase, offered in ((TLSPhase.BEFORE_TLS, result.offered_before_tls),
                           (TLSPhase.AFTER_TLS, result.offered_after_tls)):
        if offered is not None:
            _add_offered(add, phase, offered)
    if result.names is not None:
        for pair in sorted(result.names.compared):
            add("mailsec_name_mismatch", float(pair in result.names.disagreeing), pair=pair.value)
    if result.open_relay is not None:
        add("mailsec_open_relay", float(result.open_relay))
