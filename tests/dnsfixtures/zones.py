"""The DNS data the domain-check tests run against, and its DNSSEC signing.

`test.` is the top of a private tree: the validating resolver trusts its key. Most test
domains are names inside `test.` (so they validate as secure); three delegated child
zones exercise DNSSEC: `signed.test.` (DS in the parent), `unsigned.test.` (no DS: an
insecure delegation proven by the parent's NSEC chain) and `bogus.test.` (signed, but the
parent's DS is of another key, so validation fails). The reverse zones map the MX
addresses back to names, one of them wrongly on purpose.

Each scenario's expected outcome is stated next to its records; the tests compare the
checks' results with these constants.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.reversename
import dns.zone
import functools
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

AUTH_ADDRESS = "127.77.0.1"      # Knot, authoritative for every zone below
RESOLVER_ADDRESS = "127.77.0.2"  # Unbound, validating, trusting the key of `test.`
HTTPS_ADDRESS = "127.77.0.3"     # nginx (tests/httpsfixtures): every mta-sts.<domain> host
SILENT_HTTPS_ADDRESS = "127.77.0.4"   # mta-sts.sts-silent.test: a test listens there and never answers
PORT = 53

# Domains announcing an MTA-STS policy; tests/httpsfixtures says what each policy host serves.
# sts-noaddr has the record but no mta-sts host address; sts-silent's host is SILENT_HTTPS_ADDRESS.
STS_DOMAINS = ("good", "sts-404", "sts-type", "sts-redirect", "sts-big", "sts-big-chunked", "sts-invalid", "sts-tls",
               "sts-uncovered")

# Addresses of MX hosts. Nothing listens on their port 25 (the exporter's end-to-end test
# counts on refusals there); tests/test_dane_realpostfix.py runs a real Postfix on other
# ports of MX1_GOOD and MX2_GOOD.
MX1_GOOD = "127.77.1.1"
# The exporter probes discovered MX hosts: every address here must be loopback.
MX1_GOOD_V6 = "::1"
MX2_GOOD = "127.77.1.2"       # its PTR names another host: forward-confirmed reverse DNS fails
MX_SIGNED = "127.77.1.3"
MX_UNSIGNED = "127.77.1.4"
MX_BOGUS = "127.77.1.5"
# pair.test: one MX name, two servers (tests/test_addresses_realpostfix.py runs Postfix on
# both, one presenting the certificate its TLSA record names, one another), and a second MX
# name with an IPv4 and an IPv6 (::1) address.
PAIR_FIRST = "127.77.3.1"
PAIR_SECOND = "127.77.3.2"
PAIR_DUAL = "127.77.3.3"      # mxdual.pair.test: an RSA and an ECDSA certificate, TLSA names the ECDSA one

BIG_TXT_STRINGS = [("x" * 200) + str(n) for n in range(10)]   # > 1232 bytes: truncated over UDP

# DNS blocklists (RFC 5782) served inside `test.`, and what they list. Each IP list entry is
# (address, return code); the addresses are the MX hosts' and those blspf.test's SPF authorises.
BL_ZONE = "bl.test"                # an IP list, codes as Spamhaus ZEN's
DBL_ZONE = "dbl.test"              # a domain list
REFUSING_ZONE = "refusing.test"    # answers 127.255.255.254 ("you may not query") to everything
DEAD_ZONE = "dead.test"            # no records at all: its test entry is NXDOMAIN
ALL_ZONE = "all.test"              # lists every address, 127.0.0.1 included
HIJACKED_ZONE = "nxhijack.test"    # answers an address outside 127.0.0.0/8, as NXDOMAIN-rewriting resolvers do
SPF_LISTED = "127.77.3.9"          # in blspf.test's ip4:127.77.3.8/29
SPF_OTHER_CODE = "127.77.3.10"     # listed with a code the list's table does not name
BL_ENTRIES = {
    "127.0.0.2": "127.0.0.2",      # the RFC 5782 test entry
    MX1_GOOD: "127.0.0.2",         # spam
    MX2_GOOD: "127.0.0.10",        # policy (PBL): normal for an MX that only receives
    MX1_GOOD_V6: "127.0.0.4",      # exploited, in the nibble format
    SPF_LISTED: "127.0.0.3",       # snowshoe
    SPF_OTHER_CODE: "127.0.0.99",
}
BL_REASON = "Listed for spam, see https://bl.test/lookup?ip={address}"
DBL_ENTRIES = {"test": "127.0.1.2", "good.test": "127.0.1.2", "reports.test": "127.0.1.4"}


def _dkim_rsa(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _spki_base64(key.public_key())


def _spki_base64(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _txt(text: str) -> str:
    """A TXT rdata in zone-file syntax, split into 255-octet character-strings."""
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + chunk.replace('"', '\\"') + '"' for chunk in chunks)


def _ed25519_raw_base64() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class IssuedChain:
    """A leaf and the CA that issued it (DER), with the leaf's private key so that a real
    server can present the chain."""

    leaf_der: bytes
    ca_der: bytes
    leaf_key_pem: bytes    # PKCS#8, unencrypted

    @property
    def presented(self) -> tuple[bytes, bytes]:
        """The chain as a server sends it, leaf first."""
        return (self.leaf_der, self.ca_der)


def issue_chain(leaf_name: str, leaf_key_type: str = "ec") -> IssuedChain:
    """A fresh CA and a leaf for `leaf_name` (subjectAltName) it issued; the leaf's key is
    EC P-256 or, with `leaf_key_type="rsa"`, RSA 2048."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if leaf_key_type == "rsa"
                else ec.generate_private_key(ec.SECP256R1()))

    def issue(subject: str, key, issuer: str, san: str | None) -> bytes:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30)))
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    leaf_key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return IssuedChain(
        leaf_der=issue(leaf_name, leaf_key, "DANE test CA", leaf_name),
        ca_der=issue("DANE test CA", ca_key, "DANE test CA", None),
        leaf_key_pem=leaf_key_pem,
    )


def make_chain(leaf_name: str) -> tuple[bytes, bytes]:
    """(leaf, CA) DER of a fresh `issue_chain(leaf_name)`."""
    return issue_chain(leaf_name).presented


@functools.cache
def dane_credential() -> IssuedChain:
    """What mx1.good.test presents on port 25 in the DANE tests. Its TLSA records are in
    the zone: 3 1 1 (the leaf's key) and 2 0 1 (the CA). tests/test_dane_realpostfix.py
    has a real Postfix present it."""
    return issue_chain("mx1.good.test")


def dane_chain() -> tuple[bytes, bytes]:
    """dane_credential()'s chain, leaf first."""
    return dane_credential().presented


def _tlsa_ee_spki(leaf_der: bytes) -> str:
    spki = x509.load_der_x509_certificate(leaf_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"3 1 1 {hashlib.sha256(spki).hexdigest()}"


def _tlsa_ta_cert(ca_der: bytes) -> str:
    return f"2 0 1 {hashlib.sha256(ca_der).hexdigest()}"


def test_zone_records() -> str:
    """The records of `test.` (relative names), scenario by scenario."""
    spf_many_includes = " ".join(f"include:s{n}.spf-many.test" for n in range(1, 12))
    lines = [
        "@ 3600 SOA ns.test. hostmaster.test. 1 3600 600 86400 300",
        "@ 3600 NS ns.test.",
        f"ns 3600 A {AUTH_ADDRESS}",
        # good.test: everything in order, two MX hosts, one with a PTR mismatch.
        "good 300 MX 10 mx1.good.test.",
        "good 300 MX 20 mx2.good.test.",
        f"mx1.good 300 A {MX1_GOOD}",
        f"mx1.good 300 AAAA {MX1_GOOD_V6}",
        f"mx2.good 300 A {MX2_GOOD}",
        f"good 300 TXT {_txt('v=spf1 mx include:_spf.good.test -all')}",
        f"_spf.good 300 TXT {_txt('v=spf1 ip4:127.77.1.0/24 a:mx1.good.test ~all')}",
        f"_dmarc.good 300 TXT {_txt('v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; fo=1; rua=mailto:agg@good.test,mailto:agg@reports.test; ruf=mailto:ruf@reports.test')}",
        f"good.test._report._dmarc.reports 300 TXT {_txt('v=DMARC1')}",
        f"rsa2048._domainkey.good 300 TXT {_txt('v=DKIM1; k=rsa; p=' + _dkim_rsa(2048))}",
        f"rsa1024._domainkey.good 300 TXT {_txt('v=DKIM1; k=rsa; t=y; p=' + _dkim_rsa(1024))}",
        f"ed._domainkey.good 300 TXT {_txt('v=DKIM1; k=ed25519; p=' + _ed25519_raw_base64())}",
        f"revoked._domainkey.good 300 TXT {_txt('v=DKIM1; k=rsa; p=')}",
        f"sha1._domainkey.good 300 TXT {_txt('v=DKIM1; h=sha1; p=' + _dkim_rsa(1024))}",
        f"_smtp._tls.good 300 TXT {_txt('v=TLSRPTv1; rua=mailto:tlsrpt@good.test')}",
        f"default._bimi.good 300 TXT {_txt('v=BIMI1; l=https://good.test/logo.svg')}",
        f"_mta-sts.good 300 TXT {_txt('v=STSv1; id=20240101T000000')}",
        # sub.good.test: no DMARC record of its own; the organizational domain's applies.
        f"sub.good 300 A {MX1_GOOD}",
        # nullmx.test: accepts no mail (RFC 7505) and says so everywhere.
        "nullmx 300 MX 0 .",
        f"nullmx 300 TXT {_txt('v=spf1 -all')}",
        f"_dmarc.nullmx 300 TXT {_txt('v=DMARC1; p=reject')}",
        f"default._bimi.nullmx 300 TXT {_txt('v=BIMI1; l=; a=')}",
        # mxbad.test: an MX host without address, one that is a CNAME, one that is an IP literal.
        "mxbad 300 MX 10 noaddr.mxbad.test.",
        "mxbad 300 MX 20 alias.mxbad.test.",
        "mxbad 300 MX 30 127.77.1.9.",
        "noaddr.mxbad 300 TXT \"no address here\"",
        "alias.mxbad 300 CNAME mx1.good.test.",
        # SPF failures, one per domain.
        f"spf-many 300 TXT {_txt('v=spf1 ' + spf_many_includes + ' -all')}",
        *(f"s{n}.spf-many 300 TXT {_txt(f'v=spf1 ip4:127.77.2.{n} -all')}" for n in range(1, 12)),
        f"spf-two 300 TXT {_txt('v=spf1 ip4:127.77.2.1 -all')}",
        f"spf-two 300 TXT {_txt('v=spf1 ip4:127.77.2.2 -all')}",
        f"spf-plusall 300 TXT {_txt('v=spf1 ptr +all')}",
        f"spf-loop 300 TXT {_txt('v=spf1 include:loop-b.test -all')}",
        f"loop-b 300 TXT {_txt('v=spf1 include:spf-loop.test -all')}",
        f"spf-noinclude 300 TXT {_txt('v=spf1 include:nothing.test -all')}",
        f"spf-redirect-missing 300 TXT {_txt('v=spf1 redirect=nothing.test')}",
        f"spf-redirect 300 TXT {_txt('v=spf1 redirect=_spf.good.test')}",
        f"spf-void 300 TXT {_txt('v=spf1 a:none1.test a:none2.test a:none3.test -all')}",
        f"spf-onevoid 300 TXT {_txt('v=spf1 ip4:192.0.2.0/24 a:none1.test -all')}",
        # %{d} is known without a sender: followed; %{i} is not.
        f"spf-macro 300 TXT {_txt('v=spf1 include:_spf.%{d} exists:%{i}.ip.%{d} -all')}",
        f"_spf.spf-macro 300 TXT {_txt('v=spf1 ip4:192.0.2.0/24 -all')}",
        f"spf-syntax 300 TXT {_txt('v=spf1 ip4:300.1.1.1 -all')}",
        # DMARC failures.
        f"_dmarc.dmarc-bad 300 TXT {_txt('v=DMARC1; p=bogus')}",
        f"_dmarc.dmarc-two 300 TXT {_txt('v=DMARC1; p=none')}",
        f"_dmarc.dmarc-two 300 TXT {_txt('v=DMARC1; p=reject')}",
        f"_dmarc.dmarc-ext 300 TXT {_txt('v=DMARC1; p=none; rua=mailto:agg@reports.test')}",
        # sp=none under p=reject, p not second; reports to itself, a domain with an MX.
        f"_dmarc.dmarc-sp 300 TXT {_txt('v=DMARC1; sp=none; p=reject; rua=mailto:dmarc@dmarc-sp.test')}",
        "dmarc-sp 300 MX 10 mx1.good.test.",
        # DNSSEC children: delegations (their DS records are added when signing).
        *(f"{child} 3600 NS ns.test." for child in ("signed", "unsigned", "bogus")),
        # MTA-STS: the record and the policy host of each domain of STS_DOMAINS.
        *(f"_mta-sts.{label} 300 TXT {_txt('v=STSv1; id=20240101T000000')}" for label in STS_DOMAINS if label != "good"),
        *(f"mta-sts.{label} 300 A {HTTPS_ADDRESS}" for label in STS_DOMAINS),
        f"_mta-sts.sts-noaddr 300 TXT {_txt('v=STSv1; id=1')}",
        f"_mta-sts.sts-silent 300 TXT {_txt('v=STSv1; id=1')}",
        f"mta-sts.sts-silent 300 A {SILENT_HTTPS_ADDRESS}",
        "sts-uncovered 300 MX 10 mx1.good.test.",
        "sts-uncovered 300 MX 20 mx2.good.test.",
        # DANE: mx1 matches dane_chain() by the leaf's key and by the CA; mx2 only by the
        # CA, but dane_chain()'s leaf names mx1, not mx2 (a DANE-TA match needs the name).
        f"_25._tcp.mx1.good 300 TLSA {_tlsa_ee_spki(dane_chain()[0])}",
        f"_25._tcp.mx1.good 300 TLSA {_tlsa_ta_cert(dane_chain()[1])}",
        f"_25._tcp.mx2.good 300 TLSA {_tlsa_ta_cert(dane_chain()[1])}",
        # dane-pkix.test: only a PKIX-EE record (unusable for SMTP) and one with undefined parameters.
        "dane-pkix 300 MX 10 mx.dane-pkix.test.",
        f"mx.dane-pkix 300 A {MX1_GOOD}",
        f"_25._tcp.mx.dane-pkix 300 TLSA 1 0 1 {hashlib.sha256(dane_chain()[0]).hexdigest()}",
        "_25._tcp.mx.dane-pkix 300 TLSA 3 1 7 abcd",   # matching type 7 is not defined
        # pair.test: see PAIR_FIRST. DANE-EE 3 1 1 of dane_credential()'s leaf, names ignored.
        "pair 300 MX 10 mx.pair.test.",
        "pair 300 MX 20 mx6.pair.test.",
        f"mx.pair 300 A {PAIR_FIRST}",
        f"mx.pair 300 A {PAIR_SECOND}",
        f"mx6.pair 300 A {PAIR_FIRST}",
        "mx6.pair 300 AAAA ::1",
        f"_25._tcp.mx.pair 300 TLSA {_tlsa_ee_spki(dane_chain()[0])}",
        f"_25._tcp.mx6.pair 300 TLSA {_tlsa_ee_spki(dane_chain()[0])}",
        "pair 300 MX 30 mxdual.pair.test.",
        f"mxdual.pair 300 A {PAIR_DUAL}",
        f"_25._tcp.mxdual.pair 300 TLSA {_tlsa_ee_spki(dane_chain()[0])}",
        *blocklist_records(),
        # TCP fallback: an answer too big for one UDP datagram.
        "bigtxt 300 TXT " + " ".join(f'"{s}"' for s in BIG_TXT_STRINGS[:5]),
        "bigtxt 300 TXT " + " ".join(f'"{s}"' for s in BIG_TXT_STRINGS[5:]),
    ]
    return "\n".join(lines) + "\n"


def _reversed(address: str) -> str:
    parsed = ipaddress.ip_address(address)
    if parsed.version == 4:
        return ".".join(reversed(address.split(".")))
    return ".".join(reversed(parsed.exploded.replace(":", "")))


def blocklist_records() -> list[str]:
    """The test lists (relative to `test.`), and blspf.test, whose SPF authorises a /29,
    a /125, an `a` with /31, its MX, an own include, and skips a /16 and a provider's include."""
    spf = ("v=spf1 ip4:127.77.3.8/29 ip4:127.77.0.0/16 ip6:fd00::/125 a:out.blspf.test/31 mx "
           "include:_spf.blspf.test include:_spf.good.test ~ip4:127.77.5.5 -all")
    return [
        *(f"{_reversed(address)}.bl 300 A {code}" for address, code in BL_ENTRIES.items()),
        *(f"{_reversed(address)}.bl 300 TXT {_txt(BL_REASON.format(address=address))}" for address in BL_ENTRIES),
        *(f"{name}.dbl 300 A {code}" for name, code in DBL_ENTRIES.items()),
        f"good.test.dbl 300 TXT {_txt('Spam domain, see https://bl.test/domain?good.test')}",
        "*.refusing 300 A 127.255.255.254",
        "*.all 300 A 127.0.0.2",
        "*.nxhijack 300 A 192.0.2.80",
        "blspf 300 MX 10 mx1.good.test.",
        f"blspf 300 TXT {_txt(spf)}",
        f"_spf.blspf 300 TXT {_txt('v=spf1 ip4:127.77.3.20 -all')}",
        "out.blspf 300 A 127.77.3.30",
    ]


def child_zone_records(label: str, mx_address: str) -> str:
    # Every child's MX host publishes a DANE-EE record of dane_chain()'s leaf key (DANE-EE
    # ignores names): secure in signed.test, insecure in unsigned.test, bogus in bogus.test.
    return "\n".join([
        "@ 3600 SOA ns.test. hostmaster.test. 1 3600 600 86400 300",
        "@ 3600 NS ns.test.",
        f"@ 300 MX 10 mx.{label}.test.",
        f"mx 300 A {mx_address}",
        f"_25._tcp.mx 300 TLSA {_tlsa_ee_spki(dane_chain()[0])}",
        f"@ 300 TXT {_txt('v=spf1 mx -all')}",
    ]) + "\n"


def root_zone_records(children: list[str]) -> str:
    """A private root: Unbound primes from it, and every other name is NXDOMAIN here."""
    return "\n".join([
        "@ 3600 SOA ns.test. hostmaster.test. 1 3600 600 86400 300",
        "@ 3600 NS ns.test.",
        f"ns.test. 3600 A {AUTH_ADDRESS}",
        *(f"{child} 3600 NS ns.test." for child in children),
    ]) + "\n"


def reverse_v4_records() -> str:
    def ptr(address: str, name: str) -> str:
        return f"{'.'.join(reversed(address.split('.')[1:]))} 300 PTR {name}."
    return "\n".join([
        "@ 3600 SOA ns.test. hostmaster.test. 1 3600 600 86400 300",
        "@ 3600 NS ns.test.",
        ptr(MX1_GOOD, "mx1.good.test"),
        ptr(MX2_GOOD, "elsewhere.test"),
        ptr(MX_SIGNED, "mx.signed.test"),
        ptr(MX_UNSIGNED, "mx.unsigned.test"),
        ptr(MX_BOGUS, "mx.bogus.test"),
    ]) + "\n"


REVERSE_V6_ORIGIN = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."   # ::/64, where ::1 is


def reverse_v6_records() -> str:
    return "\n".join([
        "@ 3600 SOA ns.test. hostmaster.test. 1 3600 600 86400 300",
        "@ 3600 NS ns.test.",
        f"{dns.reversename.from_address(MX1_GOOD_V6)} 300 PTR mx1.good.test.",
    ]) + "\n"


@dataclass(frozen=True)
class SignedTree:
    zones: dict[str, str]          # origin -> zone file text
    trust_anchor: str              # DNSKEY of `test.` in presentation format, for Unbound


def _key() -> tuple[ec.EllipticCurvePrivateKey, object]:
    private = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(private.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
    return private, dnskey


def _zone(origin: str, records: str) -> dns.zone.Zone:
    return dns.zone.from_text(records, origin=origin, relativize=False, check_origin=True)


def _sign(zone: dns.zone.Zone, key) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    dns.dnssec.sign_zone(
        zone, keys=[key], inception=now - datetime.timedelta(hours=1),
        expiration=now + datetime.timedelta(days=7), dnskey_ttl=3600,
    )


def build_tree() -> SignedTree:
    """Generate, sign and render every zone; fresh keys each time."""
    parent_key = _key()
    parent = _zone("test.", test_zone_records())
    zones: dict[str, str] = {}
    for label, address, ds_key in (
        ("signed", MX_SIGNED, "own"),
        ("unsigned", MX_UNSIGNED, None),
        ("bogus", MX_BOGUS, "other"),
    ):
        origin = f"{label}.test."
        child = _zone(origin, child_zone_records(label, address))
        if ds_key is not None:
            child_key = _key()
            _sign(child, child_key)
            published = child_key if ds_key == "own" else _key()
            ds = dns.dnssec.make_ds(origin, published[1], "SHA256")
            with parent.writer() as txn:
                txn.add(dns.name.from_text(origin), 3600, ds)
        zones[origin] = child.to_text(relativize=False)
    _sign(parent, parent_key)
    zones["test."] = parent.to_text(relativize=False)
    zones["127.in-addr.arpa."] = _zone("127.in-addr.arpa.", reverse_v4_records()).to_text(relativize=False)
    zones[REVERSE_V6_ORIGIN] = _zone(REVERSE_V6_ORIGIN, reverse_v6_records()).to_text(relativize=False)
    zones["."] = _zone(".", root_zone_records(list(zones))).to_text(relativize=False)
    anchor = f"test. 3600 IN DNSKEY {parent_key[1].to_text()}"
    return SignedTree(zones=zones, trust_anchor=anchor)
