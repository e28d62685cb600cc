"""A scan result for people (a text table) and for programs (JSON-ready dicts): the whole
of it for `mailsec-exporter scan HOST:PORT [--json]`, a summary for the status page."""

from __future__ import annotations

from ..presentation import printable, utc_time, yes_no
from ..results import outcome_fields
from .results import ClientRenegotiation, Resumption, SessionResumption, TLSScanResult


def render_table(result: TLSScanResult) -> str:
    lines = []
    status = "completed" if result.success else f"FAILED: {result.failure} ({result.failure_detail})"
    lines.append(f"Scan of {result.address or '?'}: {status}")
    lines.append(f"  {result.connections} connections, {result.duration_seconds:.1f} s")
    lines.append(f"Grade: {result.grade.label if result.grade is not None else 'none (nothing accepted)'}")
    lines.append("")
    lines.append("Protocol versions:")
    for support in result.versions:
        verdict = "supported" if support.supported else f"not supported ({support.reason})"
        lines.append(f"  {support.version.label:<8} {verdict}")
    order = dict(result.server_cipher_order)
    for support in result.versions:
        ciphers = result.ciphers_for(support.version)
        if not ciphers:
            continue
        preference = {True: "server order", False: "client order"}.get(order.get(support.version), "order unknown")
        lines.append("")
        lines.append(f"Cipher suites, {support.version.label} ({preference}):")
        width = max(len(cipher.name) for cipher in ciphers)
        for cipher in ciphers:
            lines.append(f"  {cipher.name:<{width}}  {cipher.grade.label}")
    lines += _key_exchange_lines(result)
    lines += _feature_lines(result)
    for cert in result.certificates:
        lines.append("")
        lines.append(f"Certificate: {cert.subject}")
        lines.append(f"  key {cert.key_type} {cert.key_bits} bits, signature hash {cert.signature_hash or 'none (EdDSA)'}")
    return "\n".join(printable(line) for line in lines) + "\n"   # subjects, details: the server's words


def _key_exchange_lines(result: TLSScanResult) -> list[str]:
    groups = ", ".join(f"{g.name} ({g.grade.label}, seen in {g.version.label})" for g in result.groups) or "none found"
    normal = ", ".join(f"{g.name} in {g.version.label} ({g.grade.label})" for g in result.normal_client_groups) or "none seen"
    dh = (f"{result.dh_min_size} bits ({result.dh_grade.label})"
          if result.dh_min_size is not None and result.dh_grade is not None else "no DHE")
    return ["", "Key exchange:", f"  groups accepted: {groups}", f"  an ordinary client gets: {normal}",
            f"  smallest DH prime: {dh}"]


def _feature_lines(result: TLSScanResult) -> list[str]:
    return [
        "", "Features:",
        f"  secure renegotiation:    {yes_no(result.secure_renegotiation)}",
        f"  compression:             {yes_no(result.compression)}",
        f"  extended master secret:  {yes_no(result.extended_master_secret)}",
        f"  OCSP stapling:           {yes_no(result.ocsp_stapling)}{_staple_text(result)}",
        f"  cipher order violation:  {yes_no(result.cipher_order_violation)}",
        f"  fallback SCSV honoured:  {yes_no(result.fallback_scsv)}",
        f"  STARTTLS injection:      {_injection_text(result.starttls_injection)}",
        f"  session resumption:      {resumption_text(result.session_resumption)}",
        f"  client renegotiation:    {renegotiation_text(result.client_renegotiation)}",
    ]


def resumption_text(resumption: SessionResumption | None) -> str:
    """"by ID no (not resumed, TLSv1.2), by ticket yes (resumed, TLSv1.3, lifetime hint 7200 s)"."""
    if resumption is None:
        return "not checked"
    parts = []
    for name, attempt in (("by ID", resumption.session_id), ("by ticket", resumption.ticket)):
        facts = [attempt.detail] + ([attempt.version.label] if attempt.version is not None else [])
        if name == "by ticket" and resumption.ticket_lifetime_hint is not None:
            facts.append(f"lifetime hint {resumption.ticket_lifetime_hint} s")
        parts.append(f"{name} {_yes_no_unknown(attempt.resumed)} ({', '.join(facts)})")
    return ", ".join(parts)


def renegotiation_text(renegotiation: ClientRenegotiation | None) -> str:
    """"refused (no renegotiation)", "ACCEPTED, 10 in a row", "unknown (why)"."""
    if renegotiation is None:
        return "not checked"
    if renegotiation.accepted is None:
        return f"unknown ({renegotiation.detail})"
    if not renegotiation.accepted:
        return f"refused ({renegotiation.detail})"
    return f"ACCEPTED ({renegotiation.detail})"


def _yes_no_unknown(value: bool | None) -> str:
    return "unknown" if value is None else yes_no(value)


def _injection_text(vulnerable: bool | None) -> str:
    if vulnerable is None:
        return "not checked (implicit TLS, or no verdict)"
    return "VULNERABLE: commands sent before TLS run inside it" if vulnerable else "not vulnerable"


def _staple_text(result: TLSScanResult) -> str:
    staple = result.ocsp_staple
    if staple is None:
        return ""
    until = utc_time(staple.next_update) if staple.next_update is not None else "no nextUpdate"
    return f" (certificate {staple.status.value}, valid until {until})"


def to_json(result: TLSScanResult) -> dict:
    """Plain dicts, lists, strings and numbers (json.dumps takes it as is)."""
    return {
        **outcome_fields(result),
        "connections": result.connections,
        "address": result.address,
        "grade": result.grade.label if result.grade is not None else None,
        "versions": [{"version": v.version.label, "supported": v.supported, "reason": v.reason}
                     for v in result.versions],
        "ciphers": [{"version": c.version.label, "name": c.name, "code": f"0x{c.code:04x}", "class": c.grade.label}
                    for c in result.ciphers],
        "server_cipher_order": {version.label: server for version, server in result.server_cipher_order},
        "groups": [{"version": g.version.label, "name": g.name, "class": g.grade.label} for g in result.groups],
        "normal_client_groups": [{"version": g.version.label, "name": g.name, "class": g.grade.label}
                                 for g in result.normal_client_groups],
        "dh_min_size": result.dh_min_size,
        "dh_class": result.dh_grade.label if result.dh_grade is not None else None,
        "secure_renegotiation": result.secure_renegotiation,
        "compression": result.compression,
        "extended_master_secret": result.extended_master_secret,
        "ocsp_stapling": result.ocsp_stapling,
        "ocsp_staple": None if result.ocsp_staple is None else {
            "status": result.ocsp_staple.status.value, "this_update": result.ocsp_staple.this_update,
            "next_update": result.ocsp_staple.next_update},
        "cipher_order_violation": result.cipher_order_violation,
        "starttls_injection_vulnerable": result.starttls_injection,
        "fallback_scsv": result.fallback_scsv,
        "session_resumption": _resumption_json(result.session_resumption),
        "client_renegotiation": None if result.client_renegotiation is None else {
            "accepted": result.client_renegotiation.accepted, "in_a_row": result.client_renegotiation.in_a_row,
            "detail": result.client_renegotiation.detail},
        "certificates": [{"subject": c.subject, "issuer": c.issuer, "key_type": c.key_type, "key_bits": c.key_bits,
                          "signature_hash": c.signature_hash, "fingerprint_sha256": c.fingerprint_sha256}
                         for c in result.certificates],
    }


def _resumption_json(resumption: SessionResumption | None) -> dict | None:
    if resumption is None:
        return None

    def attempt(one: Resumption) -> dict:
        return {"resumed": one.resumed, "detail": one.detail, "version": one.version.label if one.version else None}

    return {"session_id": attempt(resumption.session_id), "ticket": attempt(resumption.ticket),
            "ticket_lifetime_hint_seconds": resumption.ticket_lifetime_hint}


def summary_json(result: TLSScanResult) -> dict:
    """The outcome, grade and counts: what the status page shows of a scan."""
    return {
        **outcome_fields(result),
        "grade": result.grade.label if result.grade is not None else None,
        "supported_versions": [version.label for version in result.supported_versions()],
        "accepted_ciphers": len(result.ciphers),
        "connections": result.connections,
        "normal_client_groups": {g.version.label: g.name for g in result.normal_client_groups},
        "cipher_order_violation": result.cipher_order_violation,
        "fallback_scsv": result.fallback_scsv,
        "starttls_injection_vulnerable": result.starttls_injection,
        "session_resumption": {name: attempt.resumed for name, attempt in (
            ("session_id", result.session_resumption.session_id), ("ticket", result.session_resumption.ticket))}
        if result.session_resumption is not None else None,
        "client_renegotiation_accepted": result.client_renegotiation.accepted if result.client_renegotiation else None,
        "client_renegotiations_in_a_row": result.client_renegotiation.in_a_row if result.client_renegotiation else None,
        "ocsp_stapling": result.ocsp_stapling,
        "ocsp_staple_next_update": result.ocsp_staple.next_update if result.ocsp_staple else None,
    }
