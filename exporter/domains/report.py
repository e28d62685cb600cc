"""The report of `mailsec-exporter check DOMAIN...`: every domain check, and the TLS probe
of each MX host, as findings grouped by check, each with a severity and a one-line fix.

Pure functions of results already gathered; the `check` command gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ..config import MailProtocol, Target
from ..presentation import CERT_CRITICAL_DAYS, CERT_WARNING_DAYS, days_until, printable
from ..results import AddressFamily, EndpointResult, HostResult, NameFacts, NamePair
from .check import DomainResult
from .common import Finding, Severity


@dataclass(frozen=True)
class DomainReport:
    result: DomainResult
    mx_probes: tuple[tuple[Target, HostResult], ...]   # one per MX host probed
    # Checks run outside domains/ (the blocklists): findings by group, and what could not run.
    more_findings: Mapping[str, tuple[Finding, ...]] = field(default_factory=lambda: MappingProxyType({}))
    more_failures: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def host_findings(target: Target, result: HostResult, now: float) -> tuple[Finding, ...]:
    """What the STARTTLS probe of every address of an MX host says, as findings: each
    address's own, then what only the addresses together show."""
    if result.resolve_failure is not None:
        return (Finding(Severity.ERROR, f"mx_tls_{result.resolve_failure.value}",
                        f"{target.address}: probe failed: {result.resolve_failure.value} ({result.resolve_detail})",
                        "give the MX host an address, or remove the MX record"),)
    several = len(result.addresses) > 1
    found = [finding for address_result in result.addresses
             for finding in endpoint_findings(target, address_result, now, several)]
    if result.consistent is False:
        found.append(Finding(Severity.WARNING, "mx_addresses_disagree",
                             f"{target.address}: its addresses present different certificates or TLS settings "
                             f"({', '.join(r.address or '?' for r in result.addresses)})",
                             "deploy the same certificate and TLS settings on every server behind the name"))
    by_family = {family: [r.success for r in result.addresses if r.address and AddressFamily.of(r.address) is family]
                 for family in AddressFamily}
    if any(by_family[AddressFamily.IPV4]) and by_family[AddressFamily.IPV6] and not any(by_family[AddressFamily.IPV6]):
        found.append(Finding(Severity.ERROR, "mx_ipv6_unreachable",
                             f"{target.address}: answers over IPv4 but not over IPv6: IPv6 senders cannot deliver",
                             "make the server listen on its IPv6 address (and the firewall let port 25 in), "
                             "or remove the AAAA record"))
    return tuple(found)


def endpoint_findings(target: Target, result: EndpointResult, now: float, name_address: bool = False) -> tuple[Finding, ...]:
    """What one address's STARTTLS probe says, as findings."""
    where = f"{target.address} ({result.address})" if name_address else target.address
    if not result.success:
        fix = {
            "starttls_not_offered": "enable STARTTLS (Postfix: smtpd_tls_security_level = may) with a valid certificate",
            "tls_handshake_error": "check the server's TLS settings: protocols, ciphers, certificate and key",
        }.get(result.failure.value, "make the server answer SMTP on this port, or remove the MX record")
        return (Finding(Severity.ERROR, f"mx_tls_{result.failure.value}",
                        f"{where}: probe failed: {result.failure.value} ({result.failure_detail})", fix),)
    findings = []
    if result.plaintext_auth_exposed:
        findings.append(Finding(Severity.WARNING, "mx_plaintext_auth",
                                f"{where}: AUTH is offered before STARTTLS",
                                "offer AUTH only after TLS (Postfix: smtpd_tls_auth_only = yes)"))
    findings.extend(policy_findings(target, result))
    tls = result.tls
    if tls is None or not tls.chain:
        return tuple(findings)
    if tls.version in ("TLSv1.0", "TLSv1.1"):
        findings.append(Finding(Severity.WARNING, "mx_tls_legacy_version", f"{where}: negotiated {tls.version}",
                                "disable TLS 1.0 and 1.1 (Postfix: smtpd_tls_protocols = >=TLSv1.2)"))
    days = days_until(tls.chain_earliest_not_after, now)
    if days < 0:
        findings.append(Finding(Severity.ERROR, "mx_cert_expired", f"{where}: a presented certificate has expired",
                                "renew the certificate and reload the mail server"))
    elif days < CERT_WARNING_DAYS:
        severity = Severity.ERROR if days < CERT_CRITICAL_DAYS else Severity.WARNING
        findings.append(Finding(severity, "mx_cert_expiring", f"{where}: a certificate expires in {days:.0f} days",
                                "renew the certificate and reload the mail server"))
    if not tls.chain_valid:
        findings.append(Finding(Severity.ERROR, "mx_cert_chain_invalid",
                                f"{where}: the certificate chain does not verify ({tls.chain_error})",
                                "serve the full chain from a trusted CA (leaf and intermediates)"))
    if not tls.hostname_valid:
        findings.append(Finding(Severity.ERROR, "mx_cert_name_mismatch",
                                f"{where}: the certificate is not valid for {tls.verified_name}",
                                "put the MX host name in the certificate's subjectAltName"))
    return tuple(findings)


def _names_text(names: tuple[str, ...] | None) -> str:
    return ", ".join(names) if names else "none"


def name_findings(where: str, address: str | None, names: NameFacts) -> list[Finding]:
    """One finding per pair of names that disagree, saying which name to change. An address
    without a forward-confirmed PTR disagrees with every name: one finding says so instead."""
    ptr, cert = _names_text(names.ptr_confirmed), _names_text(names.cert_names)
    own = names.greeting_name or names.ehlo_name or "the server's host name"
    found = []
    no_ptr = names.ptr_confirmed == ()
    if no_ptr:
        found.append(Finding(Severity.WARNING, "name_no_fcrdns",
                             f"{where}: address {address} has no PTR name that resolves back to it "
                             f"(PTR: {_names_text(names.ptr_names)})",
                             f"set the PTR of {address} to {own} (ask the address owner) and give {own} "
                             f"an A/AAAA record with {address}"))
    texts = {
        NamePair.GREETING_EHLO: (f"the greeting names {names.greeting_name}, the EHLO reply {names.ehlo_name}",
                                 "give the server one host name (Postfix: myhostname; smtpd_banner "
                                 "starts with $myhostname)"),
        NamePair.GREETING_PTR: (f"the greeting names {names.greeting_name}, the PTR of {address} {ptr}",
                                f"set the PTR of {address} to {names.greeting_name}, or the server's host "
                                f"name to {ptr}"),
        NamePair.EHLO_PTR: (f"the EHLO reply names {names.ehlo_name}, the PTR of {address} {ptr}",
                            f"set the PTR of {address} to {names.ehlo_name}, or the server's host name to {ptr}"),
        NamePair.GREETING_CERT: (f"the certificate (names {cert}) is not valid for {names.greeting_name}, "
                                 "the name in the greeting",
                                 f"add {names.greeting_name} to the certificate's subjectAltName, or set the "
                                 "server's host name to a name of the certificate"),
        NamePair.EHLO_CERT: (f"the certificate (names {cert}) is not valid for {names.ehlo_name}, the name "
                             "in the EHLO reply",
                             f"add {names.ehlo_name} to the certificate's subjectAltName, or set the "
                             "server's host name to a name of the certificate"),
        NamePair.PTR_CERT: (f"the certificate (names {cert}) is not valid for the PTR name {ptr}",
                            f"add {ptr} to the certificate's subjectAltName"),
    }
    for pair in NamePair:
        if pair in names.disagreeing and not (no_ptr and "ptr" in pair.value):
            message, fix = texts[pair]
            found.append(Finding(Severity.WARNING, f"name_mismatch_{pair.value}", f"{where}: {message}", fix))
    return found


def policy_findings(target: Target, result: EndpointResult) -> tuple[Finding, ...]:
    """What the policy facts (STARTTLS enforcement on submission, names, open relay) say.
    STARTTLS not enforced on port 25 is no finding: a public MX must not enforce it."""
    where = target.address
    findings = []
    if result.open_relay:
        findings.append(Finding(Severity.ERROR, "open_relay",
                                f"{where}: relays mail to an outside address for the exporter",
                                "relay only for authenticated clients and your own networks (Postfix: "
                                "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
                                "reject_unauth_destination; check mynetworks)"))
    if result.protocol is MailProtocol.SUBMISSION and result.starttls_enforced is False:
        findings.append(Finding(Severity.ERROR, "starttls_not_enforced",
                                f"{where}: submission accepts mail or logins before STARTTLS",
                                "require TLS on submission (Postfix master.cf: -o smtpd_tls_security_level="
                                "encrypt, -o smtpd_tls_auth_only=yes), or move clients to port 465"))
    if result.names is not None:
        findings.extend(name_findings(where, result.address, result.names))
    return tuple(findings)


def grouped_findings(report: DomainReport, now: float) -> dict[str, tuple[Finding, ...]]:
    groups = dict(report.result.findings_by_check())
    groups["mx_tls"] = tuple(f for target, result in report.mx_probes for f in host_findings(target, result, now))
    groups.update(report.more_findings)
    return groups


def failures(report: DomainReport) -> dict[str, str]:
    """Checks that could not run, with why."""
    failed = {check: str(failure) for check, failure in report.result.check_failures().items() if failure is not None}
    return {**failed, **report.more_failures}


def exit_status(reports: list[DomainReport], now: float) -> int:
    """0: clean; 1: findings of warning or error severity; 2: a check could not run."""
    if any(failures(report) for report in reports):
        return 2
    serious = (Severity.WARNING, Severity.ERROR)
    if any(f.severity in serious for r in reports for fs in grouped_findings(r, now).values() for f in fs):
        return 1
    return 0


def to_json(reports: list[DomainReport], now: float) -> dict:
    return {
        "domains": [
            {
                "domain": report.result.domain,
                "failed_checks": failures(report),
                "checks": {
                    check: [finding.to_json() for finding in findings]
                    for check, findings in grouped_findings(report, now).items()
                },
                "mx_endpoints": [
                    {"target": target.address, "success": result.success,
                     "failure": result.failure.value if result.failure else None,
                     "consistent": result.consistent,
                     "addresses": [{"address": r.address, "success": r.success,
                                    "failure": r.failure.value if r.failure else None,
                                    "tls_version": r.tls.version if r.tls else None} for r in result.addresses]}
                    for target, result in report.mx_probes
                ],
            }
            for report in reports
        ],
        "exit_status": exit_status(reports, now),
    }


_MARK = {Severity.ERROR: "ERROR", Severity.WARNING: "WARN ", Severity.INFO: "info "}


def render_text(reports: list[DomainReport], now: float) -> str:
    lines = []
    for report in reports:
        lines.append(f"== {report.result.domain}")
        for check, reason in failures(report).items():
            lines.append(f"  {check}: COULD NOT RUN: {reason}")
        for check, findings in grouped_findings(report, now).items():
            if not findings:
                continue
            lines.append(f"  {check}:")
            for finding in findings:
                lines.append(f"    {_MARK[finding.severity]} {finding.message}")
                lines.append(f"          fix: {finding.fix}")
        if not any(grouped_findings(report, now).values()) and not failures(report):
            lines.append("  no findings")
        lines.append("")
    return "\n".join(printable(line) for line in lines)   # DNS text is server-controlled
