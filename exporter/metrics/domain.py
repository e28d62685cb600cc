"""Metric families of the mail-domain DNS checks, and the samples of one `DomainResult`.

Declared like the endpoint families in `collector.py` (same `MetricSpec` and `Families`);
`docs/metrics.md` documents each one. Labels never carry record contents: only
the domain, a DKIM selector, an MX host, an address, a DNSSEC zone name, a check name and
closed sets (reason, qualifier, key type).
"""

from __future__ import annotations

from typing import Callable

from .specs import Families, MetricSpec
from ..config import Domain
from ..domains.check import DomainResult
from ..domains.bimi import BIMIStatus
from ..domains.dane import DANEStatus, MXDANE
from ..domains.dmarc import DMARCResult
from ..domains.mtasts import MTASTSResult
from ..domains.spf import QUALIFIER_NAMES, SPFOutcome
from .encodings import DNSSEC_VALUES, MODE_VALUES, POLICY_VALUES

DOMAIN_METRICS = (
    MetricSpec("mailsec_domain_check_success", "1 if the check could run (its DNS lookups were answered), else 0.", ("check",)),
    MetricSpec("mailsec_domain_check_failure_info", "Why a check could not run; present only while it fails.", ("check", "reason")),
    MetricSpec("mailsec_domain_check_duration_seconds", "How long the last run of all checks of the domain took."),
    MetricSpec("mailsec_domain_check_last_run_timestamp_seconds", "When the last run of the domain's checks started."),
    MetricSpec("mailsec_domain_check_interval_seconds", "How often the exporter checks the domain (domain_checks.interval); absent from /probe."),
    MetricSpec("mailsec_dns_mx_records", "Number of MX records of the domain."),
    MetricSpec("mailsec_dns_null_mx", "1 if the domain publishes a null MX (RFC 7505): it accepts no mail."),
    MetricSpec("mailsec_spf_records", "Number of SPF records at the domain (exactly 1 is valid)."),
    MetricSpec("mailsec_spf_valid", "1 if the domain has an SPF record whose evaluation cannot end in permerror."),
    MetricSpec("mailsec_spf_dns_lookups", "DNS-querying SPF terms met by a full evaluation (limit 10)."),
    MetricSpec("mailsec_spf_void_lookups", "SPF lookups that found nothing in a full evaluation (limit 2)."),
    MetricSpec("mailsec_spf_all_qualifier_info", "The qualifier of the final 'all' of the SPF record.", ("qualifier",)),
    MetricSpec("mailsec_dmarc_valid", "1 if exactly one valid DMARC record applies to the domain."),
    MetricSpec("mailsec_dmarc_policy", "DMARC p=: 0 none, 1 quarantine, 2 reject."),
    MetricSpec("mailsec_dmarc_subdomain_policy", "DMARC sp= (default p=): 0 none, 1 quarantine, 2 reject."),
    MetricSpec("mailsec_dmarc_pct", "DMARC pct=: percentage of failing mail the policy applies to."),
    MetricSpec("mailsec_dmarc_rua_configured", "1 if the DMARC record asks for aggregate reports (rua)."),
    MetricSpec("mailsec_dmarc_rua_authorized", "1 if every external rua destination agreed to receive the reports (RFC 7489 §7.1)."),
    MetricSpec("mailsec_dkim_key_present", "1 if the selector publishes a valid, not revoked DKIM key; source: "
               "configured, or reported (seen signing in DMARC reports).", ("selector", "source")),
    MetricSpec("mailsec_dkim_key_size", "Size of the selector's DKIM key.", ("selector", "key_type")),
    MetricSpec("mailsec_dkim_testing", "1 if the selector's key has t=y (testing).", ("selector",)),
    MetricSpec("mailsec_mta_sts_record_valid", "1 if _mta-sts.<domain> has exactly one valid v=STSv1 record."),
    MetricSpec("mailsec_mta_sts_mode", "Mode of the fetched MTA-STS policy: 0 none, 1 testing, 2 enforce."),
    MetricSpec("mailsec_mta_sts_max_age_seconds", "max_age of the fetched MTA-STS policy."),
    MetricSpec("mailsec_mta_sts_mx_covered", "1 if every MX host matches an mx pattern of the MTA-STS policy."),
    MetricSpec("mailsec_tlsrpt_valid", "1 if _smtp._tls.<domain> has exactly one valid v=TLSRPTv1 record."),
    MetricSpec("mailsec_bimi_present", "1 if default._bimi.<domain> has a valid BIMI record that shows a logo."),
    MetricSpec("mailsec_dnssec_status", "DNSSEC status from the validating resolver: -1 bogus, 0 insecure, 1 secure.", ("zone",)),
    MetricSpec("mailsec_fcrdns_valid", "1 if the MX address's PTR name resolves back to it.", ("mx", "address")),
    MetricSpec("mailsec_dane_tlsa_records", "Number of TLSA records at _25._tcp.<mx>.", ("mx",)),
    MetricSpec("mailsec_dane_dnssec_status", "DNSSEC status of the MX host's TLSA records, as DANE senders see it: -1 bogus, 0 insecure, 1 secure.", ("mx",)),
    MetricSpec("mailsec_dane_valid", "1 if the TLSA records authenticate the chain this address of the MX presents on port 25 (DANE in effect).", ("mx", "address")),
    MetricSpec("mailsec_dane_domain_valid", "1 if every address of every MX host with DANE in effect presents a chain its TLSA records authenticate."),
)

def add_domain_samples(families: Families, domain: Domain, result: DomainResult) -> None:
    """Add the samples of one domain's latest result."""
    base = {"domain": domain.name, **domain.labels}

    def add(name: str, value: float, **extra: str) -> None:
        families.add(name, {**base, **extra}, value)

    add("mailsec_domain_check_duration_seconds", result.duration_seconds)
    add("mailsec_domain_check_last_run_timestamp_seconds", result.observed_at)
    if result.interval_seconds is not None:
        add("mailsec_domain_check_interval_seconds", result.interval_seconds)
    for check, failure in result.check_failures().items():
        add("mailsec_domain_check_success", float(failure is None), check=check)
        if failure is not None:
            add("mailsec_domain_check_failure_info", 1.0, check=check, reason=failure.reason.value)

    if result.mx.failure is None:
        add("mailsec_dns_mx_records", float(1 if result.mx.null_mx else len(result.mx.hosts)))
        add("mailsec_dns_null_mx", float(result.mx.null_mx))
    _add_spf(add, result)
    _add_dmarc(add, result.dmarc)
    for selector in result.dkim.selectors:
        if selector.failure is not None:
            continue
        add("mailsec_dkim_key_present", float(selector.present), selector=selector.selector,
            source=selector.source.value)
        key = selector.key
        if key is not None and not key.revoked:
            add("mailsec_dkim_testing", float(key.testing), selector=selector.selector)
            if key.key_bits is not None:
                add("mailsec_dkim_key_size", float(key.key_bits), selector=selector.selector, key_type=key.key_type)
    _add_mta_sts(add, result.mta_sts)
    if result.tlsrpt.lookup is not None:
        add("mailsec_tlsrpt_valid", float(result.tlsrpt.lookup.valid))
    if result.bimi.failure is None:
        add("mailsec_bimi_present", float(result.bimi.status is BIMIStatus.VALID))
    for name in result.dnssec:
        if name.status is not None:
            add("mailsec_dnssec_status", DNSSEC_VALUES[name.status], zone=name.name)
    for reverse in result.reverse_dns:
        if reverse.failure is None:
            add("mailsec_fcrdns_valid", float(reverse.forward_confirmed), mx=reverse.mx, address=reverse.address)
    for host in result.dane:
        _add_dane(add, host)
    evaluated = [host.evaluation for host in result.dane
                 if host.evaluation is not None and host.evaluation.status is not DANEStatus.NO_RECORDS]
    if evaluated:
        add("mailsec_dane_domain_valid", float(all(evaluation.authenticated for evaluation in evaluated)))


def _add_mta_sts(add: Callable[..., None], mta_sts: MTASTSResult) -> None:
    if mta_sts.lookup is not None:
        add("mailsec_mta_sts_record_valid", float(mta_sts.lookup.valid))
    if mta_sts.policy is not None:
        add("mailsec_mta_sts_mode", MODE_VALUES[mta_sts.policy.mode])
        add("mailsec_mta_sts_max_age_seconds", float(mta_sts.policy.max_age))
    if mta_sts.mx_covered is not None:
        add("mailsec_mta_sts_mx_covered", float(mta_sts.mx_covered))


def _add_dane(add: Callable[..., None], host: MXDANE) -> None:
    if host.failure is not None:
        return
    add("mailsec_dane_tlsa_records", float(host.tlsa_records), mx=host.mx)
    add("mailsec_dane_dnssec_status", DNSSEC_VALUES[host.dnssec], mx=host.mx)
    # Not evaluated (no chain seen yet) or DANE not in use: no value rather than a made-up 0.
    if host.evaluation is None or host.evaluation.status is DANEStatus.NO_RECORDS:
        return
    for address, outcome in host.by_address or (("", host.evaluation),):   # "": decided before any chain
        add("mailsec_dane_valid", float(outcome.authenticated), mx=host.mx, address=address)


def _add_spf(add: Callable[..., None], result: DomainResult) -> None:
    spf = result.spf
    if spf.failure is not None:
        return
    add("mailsec_spf_records", float(spf.records))
    add("mailsec_spf_valid", float(spf.outcome is SPFOutcome.VALID))
    if spf.outcome is SPFOutcome.NONE:
        return
    add("mailsec_spf_dns_lookups", float(spf.dns_lookups))
    add("mailsec_spf_void_lookups", float(spf.void_lookups))
    if spf.outcome is SPFOutcome.VALID:
        qualifier = QUALIFIER_NAMES[spf.all_qualifier] if spf.all_qualifier else "none"
        add("mailsec_spf_all_qualifier_info", 1.0, qualifier=qualifier)


def _add_dmarc(add: Callable[..., None], dmarc: DMARCResult) -> None:
    if dmarc.failure is not None:
        return
    record = dmarc.record
    add("mailsec_dmarc_valid", float(record is not None))
    if record is None:
        return
    add("mailsec_dmarc_policy", POLICY_VALUES[record.policy])
    add("mailsec_dmarc_subdomain_policy", POLICY_VALUES[record.subdomain_policy])
    add("mailsec_dmarc_pct", float(record.percent))
    add("mailsec_dmarc_rua_configured", float(dmarc.rua_configured))
    if dmarc.rua_configured:
        add("mailsec_dmarc_rua_authorized", float(dmarc.rua_authorized))
