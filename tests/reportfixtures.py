"""Real-shaped DMARC and TLS-RPT reports, as the large receivers send them, the mails that
carry them, and the hostile set (bombs, entities, lies about sizes).

The XML and JSON follow what Google, Microsoft and Yahoo send (element order, namespaces,
the optional elements each one adds), with the domain and addresses replaced.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import struct
import zipfile
import zlib
from email.message import EmailMessage

DOMAIN = "example.org"
BEGIN, END = 1700006400, 1700092799

GOOGLE_DMARC = f"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>5717107811868587391</report_id>
    <date_range>
      <begin>{BEGIN}</begin>
      <end>{END}</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>{DOMAIN}</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>none</p>
    <sp>none</sp>
    <pct>100</pct>
    <np>none</np>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip>
      <count>12</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{DOMAIN}</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>{DOMAIN}</domain>
        <result>pass</result>
        <selector>google2024</selector>
      </dkim>
      <spf>
        <domain>{DOMAIN}</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.77</source_ip>
      <count>5</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{DOMAIN}</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>{DOMAIN}</domain>
        <result>fail</result>
        <selector>forged</selector>
      </dkim>
      <spf>
        <domain>spammer.example</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
</feedback>
"""

MICROSOFT_DMARC = f"""<?xml version="1.0"?>
<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <version>1.0</version>
  <report_metadata>
    <org_name>Enterprise Outlook</org_name>
    <email>dmarcreport@microsoft.com</email>
    <report_id>a1b2c3d4e5f6478899aabbccddeeff00</report_id>
    <date_range>
      <begin>{BEGIN}</begin>
      <end>{END + 1}</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>{DOMAIN}</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>quarantine</sp>
    <pct>100</pct>
    <fo>0</fo>
  </policy_published>
  <record>
    <row>
      <source_ip>203.0.113.7</source_ip>
      <count>3</count>
      <policy_evaluated>
        <disposition>quarantine</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>contoso.com</envelope_to>
      <envelope_from>{DOMAIN}</envelope_from>
      <header_from>{DOMAIN}</header_from>
    </identifiers>
    <auth_results>
      <spf>
        <domain>{DOMAIN}</domain>
        <scope>mfrom</scope>
        <result>fail</result>
      </spf>
    </auth_results>
  </record>
</feedback>
"""

YAHOO_DMARC = f"""<?xml version="1.0"?>
<feedback>
  <report_metadata>
    <org_name>Yahoo</org_name>
    <email>dmarchelp@yahooinc.com</email>
    <report_id>1700006400.123456</report_id>
    <date_range>
      <begin>{BEGIN}</begin>
      <end>{END}</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>{DOMAIN}</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>reject</p>
    <pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>2001:db8::25</source_ip>
      <count>1</count>
      <policy_evaluated>
        <disposition>reject</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{DOMAIN}</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>evil.example</domain>
        <selector>s1</selector>
        <result>pass</result>
      </dkim>
      <spf>
        <domain>evil.example</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
</feedback>
"""

# DMARCbis: a namespace on every element, np/testing/discovery_method, disposition "pass".
DMARCBIS_DMARC = f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">
  <version>1.0</version>
  <report_metadata>
    <org_name>Example Receiver</org_name>
    <email>dmarc@receiver.example</email>
    <report_id>bis-2024-0001</report_id>
    <date_range><begin>{BEGIN}</begin><end>{END}</end></date_range>
    <generator>Example MTA 1.0</generator>
  </report_metadata>
  <policy_published>
    <domain>{DOMAIN}</domain>
    <p>reject</p><sp>reject</sp><np>reject</np>
    <adkim>s</adkim><aspf>s</aspf>
    <discovery_method>treewalk</discovery_method>
    <testing>n</testing>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.11</source_ip>
      <count>4</count>
      <policy_evaluated><disposition>pass</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>{DOMAIN}</header_from></identifiers>
    <auth_results>
      <dkim><domain>{DOMAIN}</domain><selector>bis2024</selector><result>pass</result></dkim>
      <spf><domain>{DOMAIN}</domain><scope>mfrom</scope><result>fail</result></spf>
    </auth_results>
  </record>
</feedback>
"""


def google_tlsrpt(domain: str = DOMAIN, mx: str = "mx1.example.org", result_type: str = "certificate-expired",
                  report_id: str = "2023-11-15T00:00:00Z_example.org") -> dict:
    return {
        "organization-name": "Google Inc.",
        "date-range": {"start-datetime": "2023-11-15T00:00:00Z", "end-datetime": "2023-11-15T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@google.com",
        "report-id": report_id,
        "policies": [{
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: enforce", f"mx: {mx}", "max_age: 86400"],
                "policy-domain": domain,
                "mx-host": [mx],
            },
            "summary": {"total-successful-session-count": 120, "total-failure-session-count": 2},
            "failure-details": [{
                "result-type": result_type, "sending-mta-ip": "209.85.220.41",
                "receiving-mx-hostname": mx, "receiving-ip": "192.0.2.25", "failed-session-count": 2,
            }],
        }],
    }


def microsoft_tlsrpt(domain: str = DOMAIN) -> dict:
    return {
        "organization-name": "Microsoft Corporation",
        "date-range": {"start-datetime": "2023-11-15T00:00:00Z", "end-datetime": "2023-11-15T23:59:59Z"},
        "contact-info": "tlsrpt-noreply@microsoft.com",
        "report-id": "133444416000000000+example.org",
        "policies": [
            {"policy": {"policy-type": "no-policy-found", "policy-domain": domain},
             "summary": {"total-successful-session-count": 40, "total-failure-session-count": 0}},
            {"policy": {"policy-type": "tlsa", "policy-string": ["3 1 1 0123"], "policy-domain": domain,
                        "mx-host": ["mx2.example.org"]},
             "summary": {"total-successful-session-count": 7, "total-failure-session-count": 3},
             "failure-details": [{"result-type": "tlsa-invalid", "receiving-mx-hostname": "mx2.example.org.",
                                  "failed-session-count": 1},
                                 {"result-type": "made-up-by-sender", "failed-session-count": 1}]},
        ],
    }


def json_bytes(document: dict) -> bytes:
    return json.dumps(document).encode()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zipped(data: bytes, name: str = "report.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def with_id(xml: str, report_id: str) -> str:
    """The same report under another report ID."""
    start = xml.index("<report_id>") + len("<report_id>")
    return xml[:start] + report_id + xml[xml.index("</report_id>"):]


# --- mails ------------------------------------------------------------------------------

def report_mail(attachments: list[tuple[str, str, bytes]], subject: str = f"Report Domain: {DOMAIN}") -> bytes:
    """A report mail with (file name, content type, data) attachments, base64-encoded."""
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = f"dmarc@{DOMAIN}"
    message["Subject"] = subject
    message.set_content("This is an aggregate report.")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def google_dmarc_mail(xml: str = GOOGLE_DMARC) -> bytes:
    return report_mail([(f"google.com!{DOMAIN}!{BEGIN}!{END}.zip", "application/zip", zipped(xml.encode()))])


def microsoft_dmarc_mail(xml: str = MICROSOFT_DMARC) -> bytes:
    return report_mail([(f"enterprise.protection.outlook.com!{DOMAIN}!{BEGIN}!{END}.xml.gz", "application/gzip",
                         gzipped(xml.encode()))])


def yahoo_dmarc_mail(xml: str = YAHOO_DMARC) -> bytes:
    return report_mail([(f"yahoo.com!{DOMAIN}!{BEGIN}!{END}.xml.zip", "application/zip", zipped(xml.encode()))])


def google_tlsrpt_mail(document: dict | None = None) -> bytes:
    data = gzipped(json_bytes(document or google_tlsrpt()))
    return report_mail([(f"google.com!{DOMAIN}!{BEGIN}!{END}!001.json.gz", "application/tlsrpt+gzip", data)],
                       subject=f"Report Domain: {DOMAIN} Submitter: google.com Report-ID: <x@google.com>")


# --- the hostile set --------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>
"""


def external_entity(system_id: str) -> bytes:
    """A report whose org_name is an external entity: a local file or a URL."""
    return GOOGLE_DMARC.replace('<?xml version="1.0" encoding="UTF-8" ?>',
                                f'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "{system_id}">]>'
                                ).replace("<org_name>google.com</org_name>", "<org_name>&xxe;</org_name>").encode()


def zeros_deflated(size: int, wbits: int) -> bytes:
    """`size` zero bytes compressed (gzip for wbits 31, raw deflate for -15), without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


@functools.lru_cache(maxsize=None)
def gzip_bomb(size: int = 256 << 20) -> bytes:
    """About 250 KB of gzip that unpacks to `size` bytes (256 MiB by default, a ratio of 1000)."""
    return zeros_deflated(size, 31)


@functools.lru_cache(maxsize=None)
def zip_bomb(size: int = 256 << 20, declared: int | None = None) -> bytes:
    """A zip of one file of `size` zero bytes; its headers may declare another size (a liar)."""
    data = zeros_deflated(size, -15)
    declared = size if declared is None else declared
    crc = 0   # CRC-32 of zeros, computed chunk by chunk
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        crc = zlib.crc32(chunk, crc)
    name = b"report.xml"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), declared, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), declared,
                          len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def full_report_snapshot():
    """A snapshot in which every report family has samples (docs and promtool tests)."""
    from exporter.reports.common import RejectReason, ReportKind
    from exporter.reports.dmarc import parse_dmarc_report
    from exporter.reports.ingest import OTHER, ReportLedger, SourceClass
    from exporter.reports.results import Contradiction, PollStatus, ReportsSnapshot
    from exporter.reports.tlsrpt import ResultType, parse_tlsrpt_report

    ledger = ReportLedger(None, 30 * 86400.0, 20)
    ledger.record_dmarc(parse_dmarc_report(GOOGLE_DMARC.encode()), [SourceClass.AUTHORIZED, SourceClass.UNAUTHORIZED])
    ledger.record_tlsrpt(parse_tlsrpt_report(json_bytes(google_tlsrpt())), frozenset({DOMAIN}),
                         lambda mx: mx if mx == "mx1.example.org" else OTHER)
    ledger.reject(ReportKind.DMARC, RejectReason.BAD_XML)
    ledger.save()
    return ReportsSnapshot(
        counts=ledger.counts(),
        poll=PollStatus(1_700_100_000.0, True, "1 mails read", 1),
        contradictions=(Contradiction(DOMAIN, "mx1.example.org", ResultType.CERTIFICATE_EXPIRED, END,
                                      1_700_100_000.0, "senders report certificate-expired"),),
        domain_labels={DOMAIN: {"team": "mail"}},
        state_saved=True,
    )
