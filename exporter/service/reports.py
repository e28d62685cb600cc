"""Report ingestion at run time: the mailbox poller, the entry of the HTTP receiver, the
SPF classification of DMARC sources, the correlation with our probes, and the DKIM
selectors fed to the domain checks.

Parsing runs on a worker thread (a 50 MB XML report takes a while); counting runs on the
event loop, so the ledger needs no lock. A report that fails is counted as rejected with
its reason and logged; nothing a report or a mailbox holds stops the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..config import Config, Domain, MailProtocol
from ..config.model import IMAPSource, ReportSettings
from ..domains.check import DomainResult
from ..domains.dane import DANEStatus
from ..domains.dnssec import DNSSECStatus
from ..domains.spf import SPFAuthorizer, SPFUnavailable, spf_authorizer
from ..logfmt import with_fields
from ..reports.archive import Packing, UnpackLimits, packing_of, unpack
from ..reports.common import RejectReason, ReportKind, ReportRejected
from ..reports.dmarc import DMARCReport, parse_dmarc_report
from ..reports.imap import IMAPFailure, IMAPSession, PendingMail, read_password
from ..reports.ingest import OTHER, ReportLedger, SourceClass
from ..reports.mail import kind_of_content, report_attachments
from ..reports.results import Contradiction, PollStatus, ReportsSnapshot
from ..reports.tlsrpt import ResultType, TLSReport, parse_tlsrpt_report
from ..results import EndpointResult
from .scheduler import Scheduler
from .store import ResultStores

log = logging.getLogger(__name__)

SPF_CACHE_SECONDS = 3600.0          # how long a domain's resolved SPF ranges are used
SPF_FAILURE_CACHE_SECONDS = 60.0    # and how long a failed resolution is not retried
SPF_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Outcome:
    """What became of one report file: counted, or rejected with a reason."""

    kind: ReportKind
    reason: RejectReason | None     # None: counted

    @property
    def accepted(self) -> bool:
        return self.reason is None


def limits_of(settings: ReportSettings) -> UnpackLimits:
    limits = settings.limits
    return UnpackLimits(limits.max_compressed_bytes, limits.max_decompressed_bytes, limits.max_ratio)


class ReportsService:
    def __init__(self, scheduler: Scheduler, results: ResultStores, clock: Callable[[], float] = time.time):
        self._scheduler = scheduler
        self._results = results
        self._clock = clock
        self.settings: ReportSettings | None = None
        self.ledger: ReportLedger | None = None
        self._domains: dict[str, Domain] = {}
        self._watched: frozenset[str] = frozenset()
        self._poller: asyncio.Task | None = None
        self._poll_lock = asyncio.Lock()
        self.poll_status: PollStatus | None = None
        self._spf: dict[str, tuple[float, SPFAuthorizer | None | SPFUnavailable]] = {}
        self._recent_failures: dict[tuple[str, str, ResultType], float] = {}   # -> end of the newest report

    # --- configuration ------------------------------------------------------------------

    def apply(self, config: Config) -> None:
        """Follow a (re)loaded config: a new ledger when the state settings change, the
        poller restarted when the mailbox settings do."""
        settings = config.reports
        self._domains = {domain.name: domain for domain in config.domains}
        self._watched = frozenset(target.host for target in config.targets)
        previous, self.settings = self.settings, settings
        if settings is None:
            self._stop_poller()
            self.ledger = None
            return
        state = (settings.state_file, settings.retention, settings.reporter_labels)
        if self.ledger is None or previous is None or state != (previous.state_file, previous.retention,
                                                                 previous.reporter_labels):
            self.ledger = ReportLedger(*state, clock=self._clock)
            self.ledger.load()
        if previous is None or previous.imap != settings.imap or self._poller is None:
            self._stop_poller()
            if settings.imap is not None:
                self._poller = asyncio.get_running_loop().create_task(self._poll_loop(settings.imap),
                                                                      name="reports imap poller")

    def _stop_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def stop(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

    # --- ingestion ----------------------------------------------------------------------

    async def ingest_file(self, data: bytes, kind: ReportKind = ReportKind.UNKNOWN) -> Outcome:
        """Count one report file (gzip, zip or plain), or count it as rejected. Unpacking and
        parsing run on a worker thread: a 50 MB report must not stall the event loop."""
        assert self.settings is not None and self.ledger is not None
        try:
            content = await asyncio.to_thread(unpack, data, limits_of(self.settings))
            if kind is ReportKind.UNKNOWN:
                kind = kind_of_content(content)
            if kind is ReportKind.DMARC:
                await self._count_dmarc(await asyncio.to_thread(parse_dmarc_report, content))
            elif kind is ReportKind.TLSRPT:
                self._count_tlsrpt(await asyncio.to_thread(parse_tlsrpt_report, content))
            else:
                raise ReportRejected(RejectReason.SCHEMA, "neither an XML (DMARC) nor a JSON (TLS-RPT) report")
        except ReportRejected as exc:
            return self._rejected(kind, exc.reason, exc.detail)
        except Exception:   # a bug of ours: this report is lost, the next one is not
            log.exception("report ingestion failed unexpectedly")
            return self._rejected(kind, RejectReason.INTERNAL_ERROR, "see the traceback above")
        finally:
            self.ledger.save()
        return Outcome(kind, None)

    def _rejected(self, kind: ReportKind, reason: RejectReason, detail: str) -> Outcome:
        self.ledger.reject(kind, reason)
        log.warning("report rejected", extra=with_fields(kind=kind.value, reason=reason.value, detail=detail))
        return Outcome(kind, reason)

    async def ingest_message(self, raw: bytes) -> list[Outcome]:
        """Count every report attached to one mail."""
        assert self.settings is not None
        try:
            attachments = await asyncio.to_thread(report_attachments, raw, self.settings.limits.max_attachments)
        except ReportRejected as exc:
            return [self._rejected(ReportKind.UNKNOWN, exc.reason, exc.detail)]
        return [await self.ingest_file(attachment.data, attachment.kind) for attachment in attachments]

    async def ingest_tlsrpt_body(self, body: bytes, gzipped: bool) -> Outcome:
        """An HTTP POST of application/tlsrpt+gzip (gzipped) or application/tlsrpt+json."""
        if (packing_of(body) is Packing.GZIP) != gzipped:
            detail = "the body is not gzip" if gzipped else "the body is compressed, the content type says JSON"
            return self._rejected(ReportKind.TLSRPT, RejectReason.BAD_ARCHIVE, detail)
        return await self.ingest_file(body, ReportKind.TLSRPT)

    def reject_request(self, reason: RejectReason, detail: str) -> Outcome:
        """A POST refused before its body was read (too large, wrong content type)."""
        return self._rejected(ReportKind.TLSRPT, reason, detail)

    async def _count_dmarc(self, report: DMARCReport) -> None:
        if report.domain not in self._domains:
            raise ReportRejected(RejectReason.UNKNOWN_DOMAIN, f"{report.domain[:80]} is not in domains:")
        if self.ledger.is_duplicate(ReportKind.DMARC, report.org_name, report.email, report.report_id):
            raise ReportRejected(RejectReason.DUPLICATE, f"report {report.report_id[:80]!r} was counted before")
        authorizer = await self._authorizer(report.domain)
        if isinstance(authorizer, SPFUnavailable):
            sources = [SourceClass.UNKNOWN] * len(report.rows)
        else:
            sources = [SourceClass.AUTHORIZED if authorizer is not None and authorizer.authorizes(row.source_ip)
                       else SourceClass.UNAUTHORIZED for row in report.rows]
        self.ledger.record_dmarc(report, sources)

    async def _authorizer(self, domain: str) -> SPFAuthorizer | None | SPFUnavailable:
        """The domain's SPF ranges, resolved at most once an hour (a failure once a minute)."""
        now = time.monotonic()
        cached = self._spf.get(domain)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            async with asyncio.timeout(SPF_TIMEOUT_SECONDS):
                authorizer: SPFAuthorizer | None | SPFUnavailable = await spf_authorizer(domain, self._scheduler.dns)
            expires = now + SPF_CACHE_SECONDS
        except (SPFUnavailable, TimeoutError) as exc:
            log.warning("SPF of a reported domain not resolved: its sources count as unknown",
                        extra=with_fields(domain=domain, error=exc or "timeout"))
            authorizer, expires = SPFUnavailable(str(exc)), now + SPF_FAILURE_CACHE_SECONDS
        self._spf[domain] = (expires, authorizer)
        return authorizer

    def _count_tlsrpt(self, report: TLSReport) -> None:
        domains = frozenset(policy.domain for policy in report.policies) & self._domains.keys()
        if not domains:
            named = ", ".join(sorted({policy.domain for policy in report.policies}))[:120] or "no policy"
            raise ReportRejected(RejectReason.UNKNOWN_DOMAIN, f"{named}: not in domains:")
        watched = self.watched_hosts()
        self.ledger.record_tlsrpt(report, domains, lambda mx: mx if mx in watched else OTHER)
        for policy in report.policies:
            for failure in policy.failures if policy.domain in domains else ():
                mx = failure.receiving_mx if failure.receiving_mx in watched else OTHER
                if mx != OTHER or failure.result_type in _DOMAIN_CHECK_TYPES:
                    key = (policy.domain, mx, failure.result_type)
                    self._recent_failures[key] = max(self._recent_failures.get(key, 0.0), report.end)

    def watched_hosts(self) -> frozenset[str]:
        """The hosts we probe: configured targets and the MX hosts of configured domains."""
        return self._watched | {target.host for target in self._scheduler.discovered_targets()}

    # --- the mailbox --------------------------------------------------------------------

    async def _poll_loop(self, source: IMAPSource) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:   # a bug of ours: the poller keeps its schedule
                log.exception("mailbox poll failed unexpectedly")
            await asyncio.sleep(source.interval)

    async def poll_once(self) -> PollStatus:
        """Read the new mails of the mailbox once (one poll at a time)."""
        async with self._poll_lock:
            source = self.settings.imap
            started = self._clock()
            handled = 0
            try:
                # A poll must end before the next one is due; each IMAP command has its own timeout.
                async with asyncio.timeout(source.interval):
                    handled = await self._read_mailbox(source)
                status = PollStatus(started, True, f"{handled} mails read", handled)
            except IMAPFailure as exc:
                status = PollStatus(started, False, str(exc), handled)
            except TimeoutError:
                status = PollStatus(started, False, f"the poll did not end within {source.interval:g}s", handled)
            finally:
                self.ledger.save()
            if not status.success:
                log.warning("mailbox poll failed", extra=with_fields(mailbox=source.mailbox, error=status.detail))
            self.poll_status = status
            return status

    async def _read_mailbox(self, source: IMAPSource) -> int:
        password = read_password(source)
        session = await asyncio.to_thread(IMAPSession, source, password)
        handled = 0
        try:
            position = self.ledger.imap_position(source.mailbox)
            after = position[1] if position is not None and position[0] == session.uidvalidity else 0
            for mail in await asyncio.to_thread(session.pending, after, source.batch):
                await self._read_mail(session, mail)
                await asyncio.to_thread(session.mark_processed, mail.uid)
                self.ledger.set_imap_position(source.mailbox, session.uidvalidity, mail.uid)
                handled += 1
        finally:
            await asyncio.to_thread(session.close)
        return handled

    async def _read_mail(self, session: IMAPSession, mail: PendingMail) -> None:
        cap = self.settings.limits.max_message_bytes
        if mail.size > cap:    # refused by the size the server announces, before any download
            self._rejected(ReportKind.UNKNOWN, RejectReason.TOO_LARGE, f"mail UID {mail.uid}: {mail.size} bytes")
            return
        raw = await asyncio.to_thread(session.fetch, mail.uid, cap)
        if len(raw) > cap:     # the announced size lied; the fetch stopped one byte past the cap
            self._rejected(ReportKind.UNKNOWN, RejectReason.TOO_LARGE, f"mail UID {mail.uid}: more than {cap} bytes")
            return
        await self.ingest_message(raw)

    # --- what others read ---------------------------------------------------------------

    def reported_selectors(self, domain: str) -> tuple[str, ...]:
        """DKIM selectors seen passing in the domain's DMARC reports (the DKIM check's feed)."""
        return self.ledger.reported_selectors(domain) if self.ledger is not None else ()

    def contradictions(self) -> tuple[Contradiction, ...]:
        """Recent TLS-RPT failures that our last probe of the MX host, or our last check of
        the domain (MTA-STS policy, DANE, DNSSEC), contradicts."""
        if self.settings is None:
            return ()
        cutoff = self._clock() - self.settings.correlation_window
        self._recent_failures = {key: when for key, when in self._recent_failures.items() if when >= cutoff}
        found = []
        for (domain, mx, result_type), reported_until in sorted(self._recent_failures.items()):
            evidence = self._evidence_against(domain, mx, result_type, reported_until)
            if evidence is not None:
                seen, observed_at = evidence
                found.append(Contradiction(
                    domain, mx, result_type, reported_until, observed_at,
                    f"senders report {result_type.value} on {mx} for {domain}, while our {seen}: "
                    "they reach an address, a path or a resolver we do not use",
                ))
        return tuple(found)

    def _evidence_against(self, domain: str, mx: str, result_type: ResultType,
                          reported_until: float) -> tuple[str, float] | None:
        """What we saw that contradicts the reported failure, and when; None when we agree or cannot tell."""
        if result_type in _DOMAIN_CHECK_TYPES:
            entry = self._results.domains.get(domain)
            seen = domain_check_contradicts(result_type, entry.result, mx) if entry is not None else None
            return (f"domain check {seen}", entry.result.observed_at) if seen is not None else None
        probe = self._latest_smtp_probe(mx)
        seen = _probe_contradicts(result_type, probe, reported_until) if probe is not None else None
        return (f"probe {seen}", probe.observed_at) if seen is not None else None

    def _latest_smtp_probe(self, host: str) -> EndpointResult | None:
        """The latest SMTP probe of `host`, when every address of it answered: one address
        standing for the host (a sender may reach any other, so they must all have answered
        and agree, or the reports may simply be about an address that fails)."""
        config = self._scheduler.config
        results = [
            entry.result for entry in self._results.endpoints.snapshot()
            if entry.subject.host == host and entry.subject.module in config.modules
            and config.modules[entry.subject.module].protocol is MailProtocol.SMTP and entry.result.success
            and entry.result.consistent is not False
        ]
        latest = max(results, key=lambda result: result.observed_at, default=None)
        return latest.addresses[0] if latest is not None else None

    def snapshot(self) -> ReportsSnapshot | None:
        if self.ledger is None:
            return None
        return ReportsSnapshot(
            counts=self.ledger.counts(),
            poll=self.poll_status,
            contradictions=self.contradictions(),
            domain_labels={name: domain.labels for name, domain in self._domains.items()},
            state_saved=self.ledger.last_save_ok,
        )


def _probe_contradicts(result_type: ResultType, probe: EndpointResult, reported_until: float) -> str | None:
    """What our probe saw that contradicts the reported failure; None when it agrees or cannot tell."""
    tls = probe.tls
    if result_type is ResultType.STARTTLS_NOT_SUPPORTED:
        return "saw STARTTLS offered" if probe.starttls_offered else None
    if tls is None or not tls.chain:
        return None
    if result_type is ResultType.CERTIFICATE_EXPIRED and tls.chain[0].not_after > reported_until:
        return "saw a certificate that had not expired then"
    if result_type is ResultType.CERTIFICATE_NOT_TRUSTED and tls.chain_valid:
        return "saw a chain that validates"
    if result_type is ResultType.CERTIFICATE_HOST_MISMATCH and tls.hostname_valid:
        return f"saw a certificate valid for {tls.verified_name}"
    if result_type is ResultType.STS_WEBPKI_INVALID and tls.chain_valid and tls.hostname_valid:
        return f"saw a chain that validates for {tls.verified_name}"
    return None


# Failures about the domain's policies, compared with the domain check rather than a probe
# (a sender may report them without a receiving MX).
_DOMAIN_CHECK_TYPES = frozenset({
    ResultType.STS_POLICY_FETCH_ERROR, ResultType.STS_POLICY_INVALID,
    ResultType.TLSA_INVALID, ResultType.DANE_REQUIRED, ResultType.DNSSEC_INVALID,
})


def domain_check_contradicts(result_type: ResultType, result: DomainResult, mx: str) -> str | None:
    """What the last check of the domain saw that contradicts the reported failure on `mx`."""
    if result_type in (ResultType.STS_POLICY_FETCH_ERROR, ResultType.STS_POLICY_INVALID):
        return "fetched a valid MTA-STS policy" if result.mta_sts.policy is not None else None
    dane = next((entry for entry in result.dane if entry.mx == mx), None)
    if result_type is ResultType.DNSSEC_INVALID:
        status = dane.dnssec if dane is not None else result.dnssec[0].status if result.dnssec else None
        return "saw the records validate (DNSSEC secure)" if status is DNSSECStatus.SECURE else None
    if dane is None or dane.failure is not None:
        return None
    if result_type is ResultType.DANE_REQUIRED:
        secure = dane.records and dane.dnssec is DNSSECStatus.SECURE
        return "saw DNSSEC-signed TLSA records" if secure else None
    matched = dane.by_address and all(outcome.status is DANEStatus.MATCH for _, outcome in dane.by_address)
    return "saw the TLSA records match the certificate of every address" if matched else None
