"""An endpoint probe's result, every address of the host, for people (the /probe?debug=true
report) and for programs (the JSON of the status page)."""

from __future__ import annotations

from typing import Any

from ..config import Module, Target
from ..presentation import days_until, printable, utc_time, yes_no
from ..results import AddressFamily, EndpointResult, HostResult, NameFacts, OfferedCapabilities, outcome_fields


def debug_report(target: Target, module: Module, result: HostResult) -> str:
    """A readable account of one probe: outcome, then each address's facts and dialogue."""
    lines = [
        f"Probe of {target.address} with module {module.name} "
        f"(protocol {module.protocol}, STARTTLS {module.starttls}, timeout {module.timeout:.3g}s)",
        f"Started: {utc_time(result.observed_at)}, took {result.duration_seconds:.3f}s",
        "Result: success" if result.success else f"Result: failure: {result.failure} ({result.failure_detail})",
        f"Addresses: {', '.join(r.address or '?' for r in result.addresses) or 'none'}",
    ]
    lines.extend(f"Not probed: {address} ({reason})" for address, reason in result.skipped)
    if result.consistent is not None:
        lines.append(f"Addresses agree (certificate, TLS version, cipher): {yes_no(result.consistent)}")
    for address_result in result.addresses:
        lines.append("")
        lines.extend(_address_lines(module, address_result))
    # Greetings, details, certificate names: the server's words, shown without their controls.
    return "\n".join(printable(line) for line in lines) + "\n"


def _address_lines(module: Module, result: EndpointResult) -> list[str]:
    lines = [
        f"== {result.address}: " + ("success" if result.success else f"failure: {result.failure} ({result.failure_detail})"),
        f"Took {result.duration_seconds:.3f}s",
    ]
    if not module.protocol.implicit_tls:
        lines.append(f"STARTTLS offered: {yes_no(result.starttls_offered)}")
        lines.append(f"Password authentication offered before TLS: {yes_no(result.plaintext_auth_exposed)}")
    lines.append(f"Capabilities before TLS: {' '.join(result.capabilities_before_tls) or 'none'}")
    lines.append(f"Capabilities after TLS: {' '.join(result.capabilities_after_tls) or 'none'}")
    lines.extend(_policy_lines(module, result))
    lines.extend(_tls_lines(result))
    lines.append("Dialogue (C: client, S: server, TLS: handshake, *: events):")
    lines.extend(result.transcript or ("(nothing was exchanged)",))
    return lines


def _offered_text(offered: OfferedCapabilities | None) -> str:
    if offered is None:
        return "n/a"
    capabilities = " ".join(sorted(offered.capabilities)) or "none"
    mechanisms = " ".join(sorted(offered.auth_mechanisms)) or "none"
    return f"{capabilities}; SASL mechanisms: {mechanisms}; unknown: {offered.unknown}"


def _names_lines(names: NameFacts) -> list[str]:
    def text(value: str | tuple[str, ...] | None) -> str:
        if value is None:
            return "unknown"
        return value if isinstance(value, str) else (", ".join(value) or "none")

    disagreeing = ", ".join(pair.value for pair in sorted(names.disagreeing)) or "none"
    return [
        f"Names: greeting {text(names.greeting_name)}; EHLO reply {text(names.ehlo_name)}; "
        f"PTR {text(names.ptr_names)} (forward-confirmed: {text(names.ptr_confirmed)}); "
        f"certificate {text(names.cert_names)}",
        f"Names that disagree: {disagreeing}",
    ]


def _policy_lines(module: Module, result: EndpointResult) -> list[str]:
    lines = [
        f"Offered before TLS: {_offered_text(result.offered_before_tls)}",
        f"Offered after TLS: {_offered_text(result.offered_after_tls)}",
    ]
    if not module.protocol.implicit_tls:
        lines.append(f"STARTTLS enforced (no mail or login before TLS): {yes_no(result.starttls_enforced)}")
    if result.names is not None:
        lines.extend(_names_lines(result.names))
    if module.open_relay_test is not None:
        lines.append(f"Open relay (RCPT TO:<{module.open_relay_test.recipient}> accepted): {yes_no(result.open_relay)}")
    return lines


def _offered_json(offered: OfferedCapabilities | None) -> dict[str, Any] | None:
    if offered is None:
        return None
    return {
        "capabilities": sorted(offered.capabilities),
        "auth_mechanisms": sorted(offered.auth_mechanisms),
        "unknown": offered.unknown,
    }


def _names_json(names: NameFacts | None) -> dict[str, Any] | None:
    if names is None:
        return None
    return {
        "greeting_name": names.greeting_name,
        "ehlo_name": names.ehlo_name,
        "ptr_names": names.ptr_names,
        "ptr_confirmed": names.ptr_confirmed,
        "cert_names": names.cert_names,
        "compared": sorted(names.compared),
        "disagreeing": sorted(names.disagreeing),
    }


def _tls_lines(result: EndpointResult) -> list[str]:
    tls = result.tls
    if tls is None:
        return ["TLS: no handshake completed"]
    lines = [
        f"TLS: {tls.version}, cipher {tls.cipher}",
        "Chain valid: yes" if tls.chain_valid else f"Chain valid: no ({tls.chain_error})",
        f"Certificate valid for {tls.verified_name}: {yes_no(tls.hostname_valid)}",
    ]
    for position, cert in enumerate(tls.chain):
        lines.append(
            f"Certificate {position}: subject {cert.subject}; issuer {cert.issuer}; "
            f"valid {utc_time(cert.not_before)} to {utc_time(cert.not_after)}; "
            f"{cert.key_type} {cert.key_bits} bits; SANs {', '.join(cert.sans) or 'none'}"
        )
    for chain in result.other_chains:
        leaf = chain[0]
        lines.append(f"Certificate of another key type: {leaf.key_type} {leaf.key_bits} bits; subject {leaf.subject}; "
                     f"valid to {utc_time(leaf.not_after)}")
    return lines


def _tls_json(result: EndpointResult, now: float) -> dict[str, Any] | None:
    tls = result.tls
    if tls is None or not tls.chain:
        return None
    leaf = tls.leaf
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "chain_valid": tls.chain_valid,
        "chain_error": tls.chain_error,
        "hostname_valid": tls.hostname_valid,
        "verified_name": tls.verified_name,
        "cert_subject": leaf.subject,
        "cert_issuer": leaf.issuer,
        "cert_not_after": leaf.not_after,
        "cert_expires_in_days": round(days_until(leaf.not_after, now), 1),
        "chain_earliest_not_after": tls.chain_earliest_not_after,
        "self_signed": leaf.self_signed,
    }


def address_json(result: EndpointResult, now: float) -> dict[str, Any]:
    return {
        **outcome_fields(result),
        "address": result.address,
        "family": AddressFamily.of(result.address).value if result.address else None,
        "starttls_offered": result.starttls_offered,
        "plaintext_auth_exposed": result.plaintext_auth_exposed,
        "tls": _tls_json(result, now),
        "protocol": result.protocol.value if result.protocol else None,
        "starttls_enforced": result.starttls_enforced,
        "offered_before_tls": _offered_json(result.offered_before_tls),
        "offered_after_tls": _offered_json(result.offered_after_tls),
        "names": _names_json(result.names),
        "open_relay": result.open_relay,
    }


def to_json(result: HostResult, now: float) -> dict[str, Any]:
    return {
        **outcome_fields(result),
        "consistent": result.consistent,
        "skipped": [{"address": address, "reason": reason.value} for address, reason in result.skipped],
        "addresses": [address_json(address_result, now) for address_result in result.addresses],
    }
