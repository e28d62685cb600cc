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
from ..presentation import CERT_CRITICAL_DAYS, CERT_WARNING_DAYS, utc_time
from ..probes.report import to_json as endpoint_json
from ..results import JobKind, outcome_fields
from ..service.exporter import Exporter
from ..service.store import FAILURES_KEPT, SUCCESSES_KEPT
from ..tlsscan.report import summary_json as scan_summary_json


def _endpoint_document(exporter: Exporter, target: Target, now: float) -> dict[str, Any]:
    results = exporter.results
    entry = results.endpoints.get(target.key)
    scan = results.scans.get(target.key)
    return {
        "target": target.address,
        "module": target.module,
        "labels": dict(target.labels),
        "next_run": exporter.scheduler.next_run(JobKind.ENDPOINT, target.key),
        "last_result": endpoint_json(entry.result, now) if entry else None,
        "history": [outcome_fields(result) for result in results.endpoints.history(target.key)],
        "deep_scan": scan_summary_json(scan.result) if scan else None,
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
    return html.escape(str(value), quote=True)


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
    ]
    return "<br>".join(f"<small>{line}</small>" for line in lines)


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
<h2>Recent results</h2>
<p>Per endpoint: the last {FAILURES_KEPT} failures and the last {SUCCESSES_KEPT} successes, newest first.</p>
{"".join(_history_section(endpoint) for endpoint in endpoints)}
</body></html>
"""


def _scans_and_domains_html(document: dict[str, Any]) -> str:
    scanned = [endpoint for endpoint in document["endpoints"] if endpoint["deep_scan"]]
    domains = document["domains"]
    parts = []
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
