"""Metric families of the report ingestion (DMARC and TLS-RPT aggregate reports).

A custom collector in the exporter's own registry renders the ledger's counters on each
scrape: they change with every report, unlike the probe results, which are rendered once
when stored. Labels are bounded: domains are the configured ones, reporters are capped
(the rest is `other`), MX hosts are the watched ones (the rest is `other`), and every other
label is a closed set.
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..reports.common import RejectReason, ReportKind
from ..reports.results import ReportsSnapshot
from .specs import MetricSpec

REPORT_METRICS = (
    MetricSpec("mailsec_dmarc_report_messages", "Messages in DMARC aggregate reports, by disposition, DMARC, "
               "aligned DKIM and SPF results, and whether the source address is authorized by the domain's SPF.",
               ("reporter", "disposition", "dmarc", "dkim", "spf", "source"), "counter"),
    MetricSpec("mailsec_tlsrpt_successful_sessions", "Successful TLS sessions in TLS-RPT reports, by policy type.",
               ("reporter", "policy_type"), "counter"),
    MetricSpec("mailsec_tlsrpt_failed_sessions", "Failed TLS sessions in TLS-RPT reports, by policy type, result "
               "type and receiving MX host (a watched one, else other).",
               ("reporter", "policy_type", "result_type", "mx"), "counter"),
    MetricSpec("mailsec_reports_accepted", "Reports counted, by kind (dmarc, tlsrpt) and domain.", ("kind",), "counter"),
    MetricSpec("mailsec_reports_rejected", "Reports not counted, by kind and reason.", ("kind", "reason"), "counter"),
    MetricSpec("mailsec_reports_last_received_timestamp_seconds", "When the last report of this kind from this "
               "reporter about the domain was counted.", ("kind", "reporter")),
    MetricSpec("mailsec_tlsrpt_failure_not_seen_by_probe", "1 while TLS-RPT reports (within the correlation window) "
               "show a failure on a watched MX host that our own probe of it contradicts.", ("mx", "result_type")),
    MetricSpec("mailsec_reports_imap_poll_success", "1 if the last poll of the report mailbox succeeded."),
    MetricSpec("mailsec_reports_imap_last_poll_timestamp_seconds", "When the last poll of the report mailbox started."),
    MetricSpec("mailsec_reports_state_saved", "1 if the last write of the report state file succeeded."),
)
_SPECS = {spec.name: spec for spec in REPORT_METRICS}


class _Families:
    """The report families of one scrape, with the domain's user labels added where a domain is."""

    def __init__(self, domain_labels: Mapping[str, Mapping[str, str]]):
        self._domain_labels = domain_labels
        self._families: dict[str, Metric] = {}

    def add(self, name: str, value: float, domain: str | None = None, **labels: str) -> None:
        family = self._families.get(name)
        if family is None:
            spec = _SPECS[name]
            kind = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
            family = self._families[name] = kind(name, spec.help, labels=None)
        if domain is not None:
            labels = {"domain": domain, **self._domain_labels.get(domain, {}), **labels}
        sample_name = f"{name}_total" if family.type == "counter" else name
        family.add_sample(sample_name, labels, value)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


def report_families(snapshot: ReportsSnapshot) -> Iterator[Metric]:
    families = _Families(snapshot.domain_labels)
    counts = snapshot.counts
    for key, value in counts.dmarc_messages.items():
        families.add("mailsec_dmarc_report_messages", value, key.domain, reporter=key.reporter,
                     disposition=key.disposition, dmarc=key.dmarc, dkim=key.dkim, spf=key.spf, source=key.source.value)
    for (domain, reporter, policy_type), value in counts.tlsrpt_successful.items():
        families.add("mailsec_tlsrpt_successful_sessions", value, domain, reporter=reporter, policy_type=policy_type.value)
    for key, value in counts.tlsrpt_failed.items():
        families.add("mailsec_tlsrpt_failed_sessions", value, key.domain, reporter=key.reporter,
                     policy_type=key.policy_type.value, result_type=key.result_type.value, mx=key.mx)
    for (kind, domain), value in counts.accepted.items():
        families.add("mailsec_reports_accepted", value, domain, kind=kind.value)
    # Every reason from zero, so that increase() sees the first rejection of each.
    for kind in ReportKind:
        for reason in RejectReason:
            families.add("mailsec_reports_rejected", counts.rejected.get((kind, reason), 0), kind=kind.value,
                         reason=reason.value)
    for (kind, domain, reporter), when in counts.last_received.items():
        families.add("mailsec_reports_last_received_timestamp_seconds", when, domain, kind=kind.value, reporter=reporter)
    for contradiction in snapshot.contradictions:
        families.add("mailsec_tlsrpt_failure_not_seen_by_probe", 1, contradiction.domain, mx=contradiction.mx,
                     result_type=contradiction.result_type.value)
    if snapshot.poll is not None:
        families.add("mailsec_reports_imap_poll_success", float(snapshot.poll.success))
        families.add("mailsec_reports_imap_last_poll_timestamp_seconds", snapshot.poll.observed_at)
    if snapshot.state_saved is not None:
        families.add("mailsec_reports_state_saved", float(snapshot.state_saved))
    return iter(families)


class ReportsCollector:
    """Registered in the exporter's registry: the families of the current snapshot, if any."""

    def __init__(self, snapshot: Callable[[], ReportsSnapshot | None]):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        return report_families(snapshot) if snapshot is not None else iter(())
