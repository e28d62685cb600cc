"""The status page at / and its JSON twin at /api/v1/status.

Both are built from one document (`status_document`), so they always agree. The HTML
is rendered on the server, without JavaScript; everything a mail server or the config
can influence (greetings, failure details, certificate names, labels) is escaped.
"""

from __future__ import annotations

import html
from typing import Any

from .. import __version__
from ..config import Domain, Target
from ..domains.report import policy_findings
from ..presentation import CERT_CRITICAL_DAYS, CERT_WARNING_DAYS, printable, utc_time
from ..probes.report import to_json as endpoint_json
from ..reputation.report import to_json as blocklist_json
from ..revocation.report import to_json as revocation_json
from ..results import JobKind, outcome_fields
from ..service.exporter import Exporter
from ..service.store import FAILURES_KEPT, SUCCESSES_KEPT
from ..tlsscan.report import summary_json as scan_summary_json


def _endpoint_document(exporter: Exporter, target: Target, now: float) -> dict[str, Any]:
    results = exporter.results
    entry = results.endpoints.get(target.key)
    scan = results.scans.get(target.key)
    revocation = results.revocations.get(target.key)
    return {
        "target": target.address,
        "module": target.module,
        "labels": dict(target.labels),
        "next_run": exporter.scheduler.next_run(JobKind.ENDPOINT, target.key),
        "last_result": endpoint_json(entry.result, now) if entry else None,
        "history": [outcome_fields(result) for result in results.endpoints.history(target.key)],
        "deep_scan": scan_summary_json(scan.result) if scan else None,
        "revocation": revocation_json(revocation.result) if revocation else None,
        "policy_findings": {r.address: [f.to_json() for f in policy_findings(target, r)]
                            for r in entry.result.addresses} if entry else {},
    }


def _domain_document(exporter: Exporter, domain: Domain) -> dict[str, Any]:
    entry = exporter.results.domains.get(domain.name)
    last = None
    if entry is not None:
        result = entry.result
        last = {
            "observed_at": result.observed_at,
            "duration_seconds": result.duration_seconds,
            "success": result.success,
            "failed_checks": {check: str(failure) for check, failure in result.check_failures().items()
                              if failure is not None},
            "findings": [finding.to_json() for finding in result.findings],
        }
    return {
        "domain": domain.name,
        "labels": dict(domain.labels),
        "next_run": exporter.scheduler.next_run(JobKind.DOMAIN, domain.name),
        "last_result": last,
    }


def _blocklist_document(exporter: Exporter, name: str) -> dict[str, Any]:
    entry = exporter.results.blocklists.get(name)
    return {
        "list": name,
        "next_run": exporter.scheduler.next_run(JobKind.BLOCKLIST, name),
        "last_result": blocklist_json(entry.result) if entry else None,
    }


def status_document(exporter: Exporter, now: float) -> dict[str, Any]:
    config = exporter.config
    targets = (*config.targets, *exporter.scheduler.discovered_targets()) if config else ()
    return {
        "version": __version__,
        "config_file": exporter.config_path,
        "last_reload_error": exporter.last_reload_error,
        "shard": {"index": exporter.shard.index, "count": exporter.shard.count},
        "generated_at": now,
        "endpoints": [_endpoint_document(exporter, target, now) for target in targets],
        "domains": [_domain_document(exporter, domain) for domain in (config.domains if config else ())],
        "blocklists": [_blocklist_document(exporter, blocklist.name)
                       for blocklist in (config.blocklists.lists if config else ())],
        "reports": reports_document(exporter),
    }


def reports_document(exporter: Exporter) -> dict[str, Any] | None:
    """The report ingestion: totals per domain, rejections, the mailbox, contradicted failures."""
    snapshot = exporter.reports.snapshot()
    if snapshot is None:
        return None
    counts = snapshot.counts
    domains: dict[str, dict[str, Any]] = {}

    def of(domain: str) -> dict[str, Any]:
        return domains.setdefault(domain, {"dmarc_messages": 0, "dmarc_pass": 0, "dmarc_authorized_fail": 0,
                                           "tls_successful": 0, "tls_failed": 0, "last_received": None})
    for key, count in counts.dmarc_messages.items():
        row = of(key.domain)
        row["dmarc_messages"] += count
        row["dmarc_pass"] += count if key.dmarc == "pass" else 0
        row["dmarc_authorized_fail"] += count if key.dmarc == "fail" and key.source == "authorized" else 0
    for (domain, _, _), count in counts.tlsrpt_successful.items():
        of(domain)["tls_successful"] += count
    for key, count in counts.tlsrpt_failed.items():
        of(key.domain)["tls_failed"] += count
    for (_, domain, _), when in counts.last_received.items():
        row = of(domain)
        row["last_received"] = max(row["last_received"] or 0.0, when)
    return {
        "domains": dict(sorted(domains.items())),
        "rejected": {f"{kind.value}/{reason.value}": count for (kind, reason), count in sorted(counts.rejected.items())},
        "mailbox": snapshot.poll.to_json() if snapshot.poll else None,
        "contradictions": [item.to_json() for item in snapshot.contradictions],
        "state_saved": snapshot.state_saved,
    }


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.ok { color: #17692a; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
.warn { color: #9a5b00; }
.pending { color: #666; }
.detail { font-family: monospace; white-space: pre-wrap; word-break: break-word; min-width: 14em; }
.banner { background: #fdecea; border: 1px solid #b00020; padding: 0.5em; }
"""


def _e(value: Any) -> str:
    return html.escape(printable(str(value)), quote=True)   # no bidi overrides or controls either


def _time(timestamp: float | None) -> str:
    return "—" if timestamp is None else utc_time(timestamp)


def _flag(value: bool | None, good: bool) -> str:
    """A yes/no cell, coloured by whether `value` is the good answer."""
    if value is None:
        return '<span class="pending">n/a</span>'
    css = "ok" if value == good else "fail"
    return f'<span class="{css}">{"yes" if value else "no"}</span>'


def _status_cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return '<span class="pending">not probed yet</span>'
    if result["success"]:
        return '<span class="ok">OK</span>'
    return f'<span class="fail">FAIL</span> {_e(result["failure"])}'


def _tls_cells(tls: dict[str, Any] | None) -> str:
    if tls is None:
        return '<td colspan="4" class="pending">no TLS handshake</td>'
    days = tls["cert_expires_in_days"]
    expiry_css = "fail" if days < CERT_CRITICAL_DAYS else "warn" if days < CERT_WARNING_DAYS else "ok"
    chain = _flag(tls["chain_valid"], True)
    if tls["chain_error"]:
        chain += f' <span class="detail">{_e(tls["chain_error"])}</span>'
    return (
        f"<td>{_e(tls['version'])}<br><small>{_e(tls['cipher'])}</small></td>"
        f'<td><span class="{expiry_css}">{_e(days)}</span><br><small>{_e(_time(tls["cert_not_after"]))}</small></td>'
        f"<td>{chain}</td>"
        f"<td>{_flag(tls['hostname_valid'], True)} <small>{_e(tls['verified_name'])}</small></td>"
    )


def _endpoint_rows(endpoint: dict[str, Any]) -> str:
    """One row per probed address (a host with one address: one row, as before)."""
    host = endpoint["last_result"]
    if host is None or not host["addresses"]:
        return _endpoint_row(endpoint, host, _target_cell(endpoint, host, None))
    return "".join(_endpoint_row(endpoint, result, _target_cell(endpoint, host, result["address"]))
                   for result in host["addresses"])


def _target_cell(endpoint: dict[str, Any], host: dict[str, Any] | None, address: str | None) -> str:
    labels = ", ".join(f"{name}={value}" for name, value in endpoint["labels"].items())
    notes = [labels] if labels else []
    if address is not None and (len(host["addresses"]) > 1 or address != endpoint["target"].rsplit(":", 1)[0]):
        notes.append(f"address {address}")
    if host is not None and host["consistent"] is False:
        notes.append("addresses disagree: certificate, TLS version or cipher")
    notes += [f"not probed: {skip['address']} ({skip['reason']})" for skip in (host or {}).get("skipped", ())]
    small = "".join(f"<br><small>{_e(note)}</small>" for note in notes)
    return f'<td><a href="#{_e(_anchor(endpoint))}">{_e(endpoint["target"])}</a>{small}</td>'


def _endpoint_row(endpoint: dict[str, Any], result: dict[str, Any] | None, target_cell: str) -> str:
    cells = [
        target_cell,
        f"<td>{_e(endpoint['module'])}</td>",
        f"<td>{_status_cell(result)}</td>",
        f'<td class="detail">{_e(result["failure_detail"]) if result else ""}</td>',
    ]
    if result is None or "tls" not in result:
        cells.append('<td colspan="6" class="pending">—</td>')
    else:
        cells.append(_tls_cells(result["tls"]))
        cells.append(f"<td>{_flag(result['starttls_offered'], True)}</td>")
        cells.append(f"<td>{_flag(result['plaintext_auth_exposed'], False)}</td>")
    cells.append(f"<td>{_e(_time(result['observed_at'])) if result else '—'}</td>")
    cells.append(f"<td>{_e(_time(endpoint['next_run']))}</td>")
    return f'<tr class="endpoint">{"".join(cells)}</tr>'


def _anchor(endpoint: dict[str, Any]) -> str:
    return f"history-{endpoint['module']}-{endpoint['target']}"


def _history_section(endpoint: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(_time(item['observed_at']))}</td><td>{_status_cell(item)}</td>"
        f'<td class="detail">{_e(item["failure_detail"])}</td><td>{item["duration_seconds"]:.3f}s</td></tr>'
        for item in endpoint["history"]
    ) or '<tr><td colspan="4" class="pending">no results yet</td></tr>'
    return (
        f'<h3 id="{_e(_anchor(endpoint))}">{_e(endpoint["target"])} ({_e(endpoint["module"])})</h3>'
        f'<table class="history"><tr><th>When</th><th>Result</th><th>Detail</th><th>Duration</th></tr>{rows}</table>'
    )


_GRADE_CSS = {"good": "ok", "sufficient": "ok", "phase_out": "warn", "insufficient": "fail"}


def _scan_row(endpoint: dict[str, Any]) -> str:
    scan = endpoint["deep_scan"]
    grade = scan["grade"] or "none"
    return (
        f'<tr class="scan"><td>{_e(endpoint["target"])}</td><td>{_e(endpoint["module"])}</td>'
        f"<td>{_status_cell(scan)}</td>"
        f'<td><span class="{_GRADE_CSS.get(grade, "pending")}">{_e(grade)}</span></td>'
        f"<td>{_e(' '.join(scan['supported_versions']) or 'none')}</td>"
        f"<td>{scan['accepted_ciphers']}</td><td>{_scan_checks(scan)}</td><td>{scan['connections']}</td>"
        f"<td>{_e(_time(scan['observed_at']))}</td></tr>"
    )


def _scan_checks(scan: dict[str, Any]) -> str:
    """The named checks of a scan, one line each; a bad verdict stands out."""
    groups = ", ".join(f"{name} ({version})" for version, name in scan["normal_client_groups"].items())
    # No staple is no fault (many CAs have no OCSP any more): not coloured.
    staple = {True: "yes", False: "no", None: "n/a"}[scan["ocsp_stapling"]]
    if scan["ocsp_staple_next_update"] is not None:
        staple += f" <small>until {_e(_time(scan['ocsp_staple_next_update']))}</small>"
    lines = [
        f"key exchange: {_e(groups or 'none seen')}",
        f"cipher order violation: {_flag(scan['cipher_order_violation'], False)}",
        f"fallback SCSV: {_flag(scan['fallback_scsv'], True)}",
        f"STARTTLS injection: {_flag(scan['starttls_injection_vulnerable'], False)}",
        f"OCSP staple: {staple}",
        f"client renegotiation: {_renegotiation(scan)}",
        f"session resumption: {_resumption(scan['session_resumption'])}",
    ]
    return "<br>".join(f"<small>{line}</small>" for line in lines)


def _renegotiation(scan: dict[str, Any]) -> str:
    """Accepted is a fault (internet.nl fails mail servers on it); the count when known."""
    text = _flag(scan["client_renegotiation_accepted"], False)
    if scan["client_renegotiation_accepted"] and scan["client_renegotiations_in_a_row"] is not None:
        text += f" <small>({scan['client_renegotiations_in_a_row']} in a row)</small>"
    return text


def _resumption(resumption: dict[str, bool | None] | None) -> str:
    """Neither way of resuming is a fault, nor its absence: not coloured."""
    if resumption is None:
        return "n/a"
    words = {True: "yes", False: "no", None: "n/a"}
    return f"by ID {words[resumption['session_id']]}, by ticket {words[resumption['ticket']]}"


_SEVERITY_CSS = {"error": "fail", "warning": "warn", "info": "pending"}


def _domain_row(domain: dict[str, Any]) -> str:
    result = domain["last_result"]
    labels = ", ".join(f"{name}={value}" for name, value in domain["labels"].items())
    name_cell = f'<td><a href="#domain-{_e(domain["domain"])}">{_e(domain["domain"])}</a>' + (
        f"<br><small>{_e(labels)}</small>" if labels else "") + "</td>"
    if result is None:
        return f'<tr class="domain">{name_cell}<td colspan="4" class="pending">not checked yet</td>' \
               f"<td>{_e(_time(domain['next_run']))}</td></tr>"
    counts = {severity: 0 for severity in _SEVERITY_CSS}
    for finding in result["findings"]:
        counts[finding["severity"]] += 1
    failed = "<br>".join(f"{_e(check)}: {_e(reason)}" for check, reason in result["failed_checks"].items())
    status = '<span class="ok">OK</span>' if result["success"] else '<span class="fail">checks failed</span>'
    findings = " ".join(f'<span class="{_SEVERITY_CSS[s]}">{n} {s}</span>' for s, n in counts.items() if n) or "none"
    return (
        f'<tr class="domain">{name_cell}<td>{status}</td><td class="detail">{failed}</td><td>{findings}</td>'
        f"<td>{_e(_time(result['observed_at']))}</td><td>{_e(_time(domain['next_run']))}</td></tr>"
    )


def _findings_section(domain: dict[str, Any]) -> str:
    result = domain["last_result"]
    findings = result["findings"] if result else []
    rows = "".join(
        f'<tr><td><span class="{_SEVERITY_CSS[f["severity"]]}">{_e(f["severity"])}</span></td>'
        f'<td>{_e(f["code"])}</td><td>{_e(f["message"])}</td><td>{_e(f["fix"])}</td></tr>'
        for f in findings
    ) or '<tr><td colspan="4" class="pending">no findings</td></tr>'
    return (
        f'<h3 id="domain-{_e(domain["domain"])}">{_e(domain["domain"])}</h3>'
        f'<table class="findings"><tr><th>Severity</th><th>Code</th><th>Finding</th><th>Fix</th></tr>{rows}</table>'
    )


def render_status_html(document: dict[str, Any]) -> str:
    endpoints = document["endpoints"]
    failing = sum(1 for e in endpoints if e["last_result"] and not e["last_result"]["success"])
    shard = document["shard"]
    banner = ""
    if document["last_reload_error"]:
        banner = (f'<p class="banner">The last reload failed; the previous configuration keeps running: '
                  f'<span class="detail">{_e(document["last_reload_error"])}</span></p>')
    rows = "".join(_endpoint_rows(endpoint) for endpoint in endpoints) or (
        '<tr><td colspan="12" class="pending">no endpoints configured</td></tr>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mailsec-exporter status</title>
<style>{_STYLE}</style></head>
<body>
<h1>mailsec-exporter {_e(document['version'])}</h1>
<p><a href="metrics">/metrics</a> · <a href="api/v1/status">/api/v1/status</a> (JSON) ·
<a href="-/healthy">/-/healthy</a> · <a href="-/ready">/-/ready</a> ·
configuration <code>{_e(document['config_file'])}</code> ·
shard {shard['index']} of {shard['count']} · page generated {_e(_time(document['generated_at']))}</p>
{banner}
<h2 id="summary">Endpoints: {len(endpoints)}, failing: {failing}</h2>
<table id="endpoints">
<tr><th>Target</th><th>Module</th><th>Status</th><th>Failure detail</th><th>TLS</th>
<th>Cert expires in (days)</th><th>Chain valid</th><th>Hostname valid</th><th>STARTTLS offered</th>
<th>Plaintext auth exposed</th><th>Last run</th><th>Next run</th></tr>
{rows}
</table>
{_scans_and_domains_html(document)}
{_blocklists_html(document["blocklists"])}
{_reports_html(document.get("reports"))}
<h2>Recent results</h2>
<p>Per endpoint: the last {FAILURES_KEPT} failures and the last {SUCCESSES_KEPT} successes, newest first.</p>
{"".join(_history_section(endpoint) for endpoint in endpoints)}
</body></html>
"""


def _offered_cell(offered: dict[str, Any] | None) -> str:
    if offered is None:
        return '<span class="pending">n/a</span>'
    mechanisms = " ".join(offered["auth_mechanisms"]) or "none"
    unknown = f"<br><small>{offered['unknown']} unknown</small>" if offered["unknown"] else ""
    return f"<small>{_e(' '.join(offered['capabilities']) or 'none')}</small><br>SASL: {_e(mechanisms)}{unknown}"


def _policy_rows(endpoint: dict[str, Any]) -> str:
    """One row per probed address."""
    return "".join(_policy_row(endpoint, result) for result in endpoint["last_result"]["addresses"])


def _policy_row(endpoint: dict[str, Any], result: dict[str, Any]) -> str:
    names = result["names"]
    disagreeing = '<span class="pending">n/a</span>' if names is None else (
        f'<span class="warn">{_e(", ".join(names["disagreeing"]))}</span>' if names["disagreeing"]
        else '<span class="ok">none</span>')
    findings = "".join(
        f'<li><span class="{_SEVERITY_CSS[f["severity"]]}">{_e(f["message"])}</span><br><small>fix: {_e(f["fix"])}</small></li>'
        for f in endpoint["policy_findings"].get(result["address"], ())
    )
    return (
        f'<tr class="policy"><td>{_e(endpoint["target"])}<br><small>{_e(result["address"])}</small></td>'
        f'<td>{_e(endpoint["module"])}</td>'
        f"<td>{_flag(result['starttls_enforced'], True)}</td><td>{_flag(result['open_relay'], False)}</td>"
        f"<td>{disagreeing}</td><td>{_offered_cell(result['offered_before_tls'])}</td>"
        f"<td>{_offered_cell(result['offered_after_tls'])}</td>"
        f"<td>{'<ul>' + findings + '</ul>' if findings else 'none'}</td></tr>"
    )


def _policy_html(document: dict[str, Any]) -> str:
    probed = [endpoint for endpoint in document["endpoints"] if endpoint["last_result"]]
    if not probed:
        return ""
    return (
        '<h2 id="policy">Mail policy</h2><table id="policy-table"><tr><th>Target</th><th>Module</th>'
        "<th>STARTTLS enforced</th><th>Open relay</th><th>Names that disagree</th><th>Offered before TLS</th>"
        "<th>Offered after TLS</th><th>Findings</th></tr>" + "".join(_policy_rows(e) for e in probed) + "</table>"
    )


def _revocation_rows(endpoint: dict[str, Any]) -> str:
    rows = []
    for check in endpoint["revocation"]["checks"]:
        css = "ok" if check["status"] == "good" else "fail" if check["status"] == "revoked" else "warn"
        verdict = check["status"] or check["failure"]
        next_update = _time(check["next_update"]) if check["next_update"] is not None else "—"
        rows.append(
            f'<tr class="revocation"><td>{_e(endpoint["target"])}</td><td>{_e(endpoint["module"])}</td>'
            f'<td>{_e(check["address"])}</td><td>{check["chain_position"]}</td><td>{_e(check["method"])}</td>'
            f'<td><span class="{css}">{_e(verdict)}</span></td>'
            f'<td class="detail">{_e(check["url"])}<br>{_e(check["detail"])}</td>'
            f"<td>{_e(next_update)}</td><td>{_e(_time(check['fetched_at']))}</td></tr>")
    return "".join(rows)


def _revocation_html(document: dict[str, Any]) -> str:
    """Each certificate's revocation status, by method; nothing when no endpoint has a check."""
    rows = "".join(_revocation_rows(endpoint) for endpoint in document["endpoints"] if endpoint.get("revocation"))
    if not rows:
        return ""
    return ('<h2 id="revocation">Certificate revocation</h2><table id="revocation-table"><tr><th>Target</th>'
            "<th>Module</th><th>Address</th><th>Chain position</th><th>Method</th><th>Status</th>"
            "<th>URL and detail</th><th>Next update</th><th>Fetched</th></tr>" + rows + "</table>")


def _scans_and_domains_html(document: dict[str, Any]) -> str:
    scanned = [endpoint for endpoint in document["endpoints"] if endpoint["deep_scan"]]
    domains = document["domains"]
    parts = [_policy_html(document), _revocation_html(document)]
    if scanned:
        parts.append(
            '<h2 id="scans">Deep TLS scans</h2><table id="deep-scans"><tr><th>Target</th><th>Module</th>'
            "<th>Status</th><th>Grade</th><th>Versions</th><th>Accepted suites</th><th>Checks</th><th>Connections</th>"
            "<th>Scanned</th></tr>" + "".join(_scan_row(endpoint) for endpoint in scanned) + "</table>"
        )
    if domains:
        failing = sum(1 for d in domains if d["last_result"] and not d["last_result"]["success"])
        parts.append(
            f'<h2 id="domains">Domains: {len(domains)}, with failed checks: {failing}</h2>'
            '<table id="domain-table"><tr><th>Domain</th><th>Status</th><th>Failed checks</th><th>Findings</th>'
            "<th>Last run</th><th>Next run</th></tr>" + "".join(_domain_row(d) for d in domains) + "</table>"
            "<h2>Domain findings</h2>" + "".join(_findings_section(d) for d in domains)
        )
    return "\n".join(parts)


def _blocklist_row(blocklist: dict[str, Any]) -> str:
    result = blocklist["last_result"]
    name = f"<td>{_e(blocklist['list'])}</td>"
    if result is None:
        return f'<tr class="blocklist">{name}<td colspan="4" class="pending">not run yet</td>' \
               f"<td>{_e(_time(blocklist['next_run']))}</td></tr>"
    status = ('<span class="ok">usable</span>' if result["usable"] else
              f'<span class="fail">unusable</span> {_e(result["problem"])}')
    detail = _e(result["problem_detail"]) or "<br>".join(
        f"{_e(error['subject'])}: {_e(error['reason'])} {_e(error['detail'])}" for error in result["errors"])
    listed = len(result["listings"])
    return (f'<tr class="blocklist">{name}<td>{status}</td><td class="detail">{detail}</td>'
            f'<td><span class="{"fail" if listed else "ok"}">{listed}</span> of {result["subjects"]}</td>'
            f"<td>{_e(_time(result['observed_at']))}</td><td>{_e(_time(blocklist['next_run']))}</td></tr>")


def _listing_row(name: str, listing: dict[str, Any]) -> str:
    url = listing["removal_url"]
    link = f'<a href="{_e(url)}" rel="noreferrer">{_e(url)}</a>' if url else "—"
    css = "warn" if listing["meanings"] == ["policy"] else "fail"
    return (f"<tr><td>{_e(name)}</td><td>{_e(listing['subject'])}<br><small>{_e('; '.join(listing['origins']))}"
            f'</small></td><td><span class="{css}">{_e(", ".join(listing["meanings"]))}</span>'
            f"<br><small>{_e(', '.join(listing['codes']))}</small></td>"
            f"<td>{_e(_time(listing['listed_since']))}</td>"
            f'<td class="detail">{_e(listing["reason"])}</td><td>{link}</td></tr>')


def _blocklists_html(blocklists: list[dict[str, Any]]) -> str:
    if not blocklists:
        return ""
    rows = "".join(_blocklist_row(blocklist) for blocklist in blocklists)
    listings = "".join(_listing_row(blocklist["list"], listing) for blocklist in blocklists
                       if blocklist["last_result"] for listing in blocklist["last_result"]["listings"])
    notes = sorted({note for blocklist in blocklists if blocklist["last_result"]
                    for note in blocklist["last_result"]["notes"]})
    return (
        '<h2 id="blocklists">Blocklists</h2><table id="blocklist-table"><tr><th>List</th><th>Status</th>'
        "<th>Problem</th><th>Listed</th><th>Last run</th><th>Next run</th></tr>" + rows + "</table>"
        '<h3>Listings</h3><table id="listings"><tr><th>List</th><th>Address or name</th><th>Meaning</th>'
        "<th>Listed since</th><th>Reason (TXT)</th><th>Removal</th></tr>"
        + (listings or '<tr><td colspan="6" class="pending">nothing listed</td></tr>') + "</table>"
        + ("<h3>Not checked</h3><ul>" + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>" if notes else "")
    )


def _reports_html(reports: dict[str, Any] | None) -> str:
    if reports is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(domain)}</td><td>{row['dmarc_messages']}</td>"
        f"<td>{(100 * row['dmarc_pass'] / row['dmarc_messages']) if row['dmarc_messages'] else 0:.1f}%</td>"
        f'<td><span class="{"fail" if row["dmarc_authorized_fail"] else "ok"}">{row["dmarc_authorized_fail"]}</span></td>'
        f"<td>{row['tls_successful']}</td>"
        f'<td><span class="{"fail" if row["tls_failed"] else "ok"}">{row["tls_failed"]}</span></td>'
        f"<td>{_e(_time(row['last_received']))}</td></tr>"
        for domain, row in reports["domains"].items()
    ) or '<tr><td colspan="7" class="pending">no report counted yet</td></tr>'
    mailbox = reports["mailbox"]
    mailbox_text = "no mailbox, or not polled yet" if mailbox is None else (
        ('<span class="ok">OK</span>' if mailbox["success"] else '<span class="fail">FAIL</span>')
        + f' {_e(mailbox["detail"])} at {_e(_time(mailbox["observed_at"]))}')
    rejected = ", ".join(f"{_e(key)}: {count}" for key, count in reports["rejected"].items() if count) or "none"
    contradictions = "".join(
        f'<li class="warn">{_e(item["message"])} (reported until {_e(_time(item["reported_until"]))})</li>'
        for item in reports["contradictions"])
    state = "" if reports["state_saved"] is not False else \
        '<p class="banner">The report state file could not be written: reports may be counted again after a restart.</p>'
    return (
        '<h2 id="reports">Reports (DMARC and TLS-RPT, since the exporter started)</h2>' + state +
        '<table id="report-table"><tr><th>Domain</th><th>DMARC messages</th><th>DMARC pass</th>'
        "<th>Authorized sources failing DMARC</th><th>TLS sessions ok</th><th>TLS sessions failed</th>"
        f"<th>Last report</th></tr>{rows}</table>"
        f"<p>Mailbox: {mailbox_text}. Rejected reports: {rejected}.</p>"
        + (f"<h3>Failures our probes do not see</h3><ul>{contradictions}</ul>" if contradictions else "")
    )
