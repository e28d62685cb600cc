"""dnswire: the queries as dnspython wrote them, answers read as dnspython read them
(generated messages, byte mutations of them, and the real answers of Knot and Unbound
for every name of the test zones), and hostile messages that must fail cleanly."""

from __future__ import annotations

import socket
import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.dnswire import (
    AddressRecord, MalformedMessage, MXRecord, NameRecord, TLSAData, TXTRecord, make_query, name_text, parse_response,
    read_name,
)

FLAGS = dns.flags.RD | dns.flags.AD


def dnspython_query(name: str, rdtype: str, checking_disabled: bool = False) -> dns.message.Message:
    return dns.message.make_query(name + ".", rdtype, use_edns=0, want_dnssec=True, payload=1232,
                                  flags=FLAGS | (dns.flags.CD if checking_disabled else 0))


# --- queries ---

@pytest.mark.parametrize("name, rdtype, checking_disabled", [
    ("example.com", "MX", False),
    ("_dmarc.Example.COM", "TXT", True),
    ("_25._tcp.mx1.example.net", "TLSA", False),
    ("4.3.2.1.in-addr.arpa", "PTR", False),
    ("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61, "AAAA", False),   # 255 octets
    ("x", "A", True),
    ("", "A", False),                        # the root: left to dnspython
    ("a\\.b.example", "TXT", False),         # an escaped dot: left to dnspython
    ("b\\195\\188cher.example", "A", False),
    ("bücher.example", "MX", False),         # IDNA, by dnspython
])
def test_queries_are_written_as_dnspython_wrote_them(name, rdtype, checking_disabled):
    query = make_query(name, rdtype, checking_disabled)
    expected = dnspython_query(name, rdtype, checking_disabled)
    expected.id = 0xBEEF
    assert query.wire(0xBEEF) == expected.to_wire()


@pytest.mark.parametrize("name", ["a..b", "a" * 64 + ".example", ".".join(["abcdefghi"] * 26), "."])
def test_a_name_that_cannot_be_one_raises_dnspythons_error(name):
    with pytest.raises(dns.exception.DNSException):
        make_query(name, "A")


def test_a_type_it_does_not_read_is_a_programming_error():
    with pytest.raises(ValueError, match="SOA"):
        make_query("example.com", "SOA")


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_*@()$;\"", min_size=1, max_size=63),
                min_size=1, max_size=6), st.sampled_from(["A", "AAAA", "MX", "TXT", "PTR", "TLSA"]), st.booleans())
def test_generated_names_are_written_as_dnspython_wrote_them(labels, rdtype, checking_disabled):
    name = ".".join(labels)
    try:
        expected = dnspython_query(name, rdtype, checking_disabled)
    except dns.exception.DNSException:
        with pytest.raises(dns.exception.DNSException):
            make_query(name, rdtype, checking_disabled)
        return
    expected.id = 7
    assert make_query(name, rdtype, checking_disabled).wire(7) == expected.to_wire()


# --- answers, compared with dnspython ---

def ours(rdata) -> object:
    """A dnspython rdata as the dnswire record the checks read."""
    if rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return AddressRecord(rdata.address)
    if rdata.rdtype == dns.rdatatype.MX:
        return MXRecord(rdata.preference, _normalized(rdata.exchange))
    if rdata.rdtype == dns.rdatatype.TXT:
        return TXTRecord(tuple(rdata.strings))
    if rdata.rdtype == dns.rdatatype.PTR:
        return NameRecord(_normalized(rdata.target))
    return TLSAData(rdata.usage, rdata.selector, rdata.mtype, rdata.cert)


def _normalized(name: dns.name.Name) -> str:
    text = name.to_text()
    return text.rstrip(".").lower() if text != "." else ""


def assert_read_alike(wire: bytes, qname: str, rdtype: str) -> None:
    """dnswire reads `wire` as dnspython does, or both refuse it."""
    query = make_query(qname, rdtype)
    try:
        expected = dns.message.from_wire(wire)
    except Exception:
        return assert_refused_or_lenient(wire)
    response = parse_response(wire)   # must not raise where dnspython reads it
    assert (response.id, response.flags, response.rcode) == (expected.id, int(expected.flags), expected.rcode())
    sent = dnspython_query(qname, rdtype)
    sent.id = response.id
    assert response.answers(query, response.id) == sent.is_response(expected)
    if not sent.is_response(expected) or expected.rcode() == dns.rcode.NXDOMAIN:
        return   # the client reads no records of these
    try:
        chain = expected.resolve_chaining()
    except dns.exception.DNSException:
        with pytest.raises(MalformedMessage):
            response.chain(query)
        return
    if len(expected.question) == 1 and expected.question[0].rdtype == dns.rdatatype.from_text(rdtype) \
            and expected.question[0].name == dns.name.from_text(qname + ".") \
            and expected.question[0].rdclass == 1:
        got = response.chain(query)
        assert got.canonical_name == _normalized(chain.canonical_name)
        if chain.answer is None:
            assert got.records is None
        else:
            assert got.records == tuple(ours(rdata) for rdata in chain.answer)
            assert got.ttl == chain.answer.ttl


def assert_refused_or_lenient(wire: bytes) -> None:
    """dnspython refused `wire`: dnswire refuses it with MalformedMessage, or reads it
    (it skips the fields of records of types it does not read)."""
    try:
        parse_response(wire)
    except MalformedMessage:
        pass


NAMES = ["example.com.", "Example.COM.", "mx1.example.com.", "alias.example.com.", "a.alias.example.com.",
         "other.example.net.", "x\\.y.example.com.", "\\000\\255.example.com."]
RECORD_TEXT = {
    "A": st.builds(lambda b: ".".join(map(str, b)), st.lists(st.integers(0, 255), min_size=4, max_size=4)),
    "AAAA": st.builds(lambda b: socket.inet_ntop(socket.AF_INET6, bytes(b)),
                      st.lists(st.sampled_from([0, 0, 0, 1, 0xFF, 0xAB]), min_size=16, max_size=16)),
    "MX": st.builds(lambda p, n: f"{p} {n}", st.integers(0, 65535), st.sampled_from(NAMES + ["."])),
    "TXT": st.lists(st.binary(max_size=40).map(lambda b: '"' + "".join(f"\\{c:03d}" for c in b) + '"'),
                    min_size=1, max_size=3).map(" ".join),
    "PTR": st.sampled_from(NAMES),
    # dnspython refuses a SHA-256 or SHA-512 digest of another length (see below)
    "TLSA": st.builds(lambda u, s, m, c: f"{u} {s} {m} {(c * 64)[:{1: 32, 2: 64}.get(m, len(c))].hex()}",
                      st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(min_size=1, max_size=40)),
    "CNAME": st.sampled_from(NAMES),
    "SOA": st.just("ns.example.com. host.example.com. 1 7200 900 1209600 300"),
    "NS": st.sampled_from(NAMES),
    "TYPE65280": st.binary(max_size=20).map(lambda b: f"\\# {len(b)} {b.hex()}"),
}
RECORDS = st.tuples(st.sampled_from(NAMES), st.sampled_from(list(RECORD_TEXT)),
                    st.sampled_from([0, 1, 300, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])).flatmap(
    lambda head: RECORD_TEXT[head[1]].map(lambda text: (*head, text)))
MESSAGES = st.fixed_dictionaries({
    "qname": st.sampled_from([name.rstrip(".") for name in NAMES[:6]]),
    "rdtype": st.sampled_from(["A", "AAAA", "MX", "TXT", "PTR", "TLSA"]),
    "answer": st.lists(RECORDS, max_size=8),
    "authority": st.lists(RECORDS, max_size=3),
    "additional": st.lists(RECORDS, max_size=3),
    "rcode": st.sampled_from([0, 0, 0, 2, 3, 5, 16]),
    "edns": st.booleans(),
    "ad": st.booleans(),
})


def render(spec: dict) -> bytes:
    query = dnspython_query(spec["qname"], spec["rdtype"])
    response = dns.message.make_response(query)
    if not spec["edns"]:
        response.use_edns(False)
    if spec["rcode"] < 16 or spec["edns"]:
        response.set_rcode(dns.rcode.Rcode(spec["rcode"]))
    if spec["ad"]:
        response.flags |= dns.flags.AD
    for section, records in ((response.answer, spec["answer"]), (response.authority, spec["authority"]),
                             (response.additional, spec["additional"])):
        for name, rdtype, ttl, text in records:
            rdata = dns.rdata.from_text("IN", rdtype, text)
            # One RRset per record, so that the wire keeps repeats, mixed TTLs and orders.
            section.append(dns.rrset.from_rdata(dns.name.from_text(name), ttl, rdata))
    return response.to_wire()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES)
def test_generated_answers_read_as_dnspython_reads_them(spec):
    assert_read_alike(render(spec), spec["qname"], spec["rdtype"])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES, st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 2000))
def test_mutated_answers_read_as_dnspython_reads_them_or_fail_cleanly(spec, changes, cut):
    wire = bytearray(render(spec))
    for position, value in changes:
        wire[position % len(wire)] = value
    assert_read_alike(bytes(wire[:max(cut, 12)]), spec["qname"], spec["rdtype"])


# --- hostile and edge-case messages, built by hand ---

def header(qd=1, an=0, ns=0, ar=0, flags=0x8180, query_id=1) -> bytes:
    return struct.pack("!HHHHHH", query_id, flags, qd, an, ns, ar)


QUESTION = b"\x07example\x03com\x00\x00\x01\x00\x01"           # example.com A IN, at offset 12


def rr(owner: bytes, rdtype: int, rdata: bytes, ttl: int = 300, rdclass: int = 1, rdlength: int | None = None) -> bytes:
    return owner + struct.pack("!HHIH", rdtype, rdclass, ttl, len(rdata) if rdlength is None else rdlength) + rdata


POINTER = b"\xc0\x0c"    # to the question's name


@pytest.mark.parametrize("wire, error", [
    (b"\x00" * 11, "shorter than a DNS header"),
    (header() + b"\x07example\x03co", "runs past"),
    (header() + b"\x07example\x03com\x00\x00\x01", "question at"),
    (header() + b"\xc0\x0c\x00\x01\x00\x01", "does not point backwards"),                     # a pointer to itself
    (header() + b"\x01a\xc0\x0e\x00\x01\x00\x01", "does not point backwards"),                 # a forward pointer
    (header() + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01", "unknown label type"),          # 0x40: extended label
    (header() + b"\x81a\x00\x00\x01\x00\x01", "unknown label type"),                          # 0x80
    (header(an=1) + QUESTION + b"\x01a" + POINTER + b"\x00\x01", "header runs past"),          # truncated RR header
    (header(an=1) + QUESTION + rr(POINTER, 1, b"\x01\x02\x03\x04", rdlength=65535), "runs past the end"),
    (header(an=1) + QUESTION + rr(POINTER, 1, b"\x01\x02\x03"), "not 4"),
    (header(an=1) + QUESTION + rr(POINTER, 28, b"\x00" * 4), "not 16"),
    (header(an=1) + QUESTION + rr(POINTER, 16, b""), "no string"),
    (header(an=1) + QUESTION + rr(POINTER, 16, b"\x05abc"), "runs past the rdata"),
    (header(an=1) + QUESTION + rr(POINTER, 15, b"\x00\x0a" + POINTER + b"\x00"), "after its name"),
    (header(an=1) + QUESTION + rr(POINTER, 15, b"\x00"), "MX rdata"),
    (header(an=1) + QUESTION + rr(POINTER, 52, b"\x03\x01"), "TLSA rdata"),
    (header(an=1) + QUESTION + rr(POINTER, 12, b"\x03abc"), "runs past its end"),               # name leaves the rdata
    (header(an=1) + QUESTION + rr(POINTER, 12, b"\xc0\x60"), "does not point backwards"),
    (header(an=1) + QUESTION + rr(b"\x00", 41, b"", rdclass=1232), "OPT"),
    (header(ar=2) + QUESTION + rr(b"\x00", 41, b"", rdclass=1232) * 2, "OPT"),
    (header(ar=1) + QUESTION + rr(POINTER, 41, b"", rdclass=1232), "OPT"),
    (header(ar=1) + QUESTION + rr(b"\x00", 250, b"x", rdclass=255), "TSIG"),
    (header() + QUESTION + b"\x00", "after the last record"),
    (header(qd=0, an=1) + rr(b"\x00", 5, b"\x03abc\x00") + b"\x00", "after the last record"),
])
def test_hostile_messages_are_malformed(wire, error):
    with pytest.raises(MalformedMessage, match=error):
        parse_response(wire)


def pointer_ladder(hops: int) -> tuple[bytes, int]:
    """A message body where the name at the returned offset follows `hops` pointers,
    each to the one before it."""
    body = header() + QUESTION
    previous = 12
    for _ in range(hops):
        offset = len(body)
        body += b"\x01x" + struct.pack("!H", 0xC000 | previous)
        previous = offset
    return body, previous


def test_sixteen_pointers_are_read_and_seventeen_are_malformed():
    body, start = pointer_ladder(16)
    name, _ = read_name(body, start, len(body))
    assert name_text(name) == "x." * 16 + "example.com"
    body, start = pointer_ladder(17)
    with pytest.raises(MalformedMessage, match="more than 16 compression pointers"):
        read_name(body, start, len(body))


def test_a_name_over_255_octets_through_pointers_is_malformed():
    body = header() + QUESTION
    previous = 12
    for _ in range(5):                  # 5 x 50 octets + example.com (13): 264
        offset = len(body)
        body += b"\x31" + b"y" * 49 + struct.pack("!H", 0xC000 | previous)
        previous = offset
    with pytest.raises(MalformedMessage, match="longer than 255 octets"):
        read_name(body, previous, len(body))


def test_a_pointer_into_the_name_that_holds_it_is_malformed():
    # example.com at 12, then a name "a" + pointer to 13 (inside "example": overlapping)
    body = header() + QUESTION + b"\x01a\xc0\x0d"
    with pytest.raises(MalformedMessage):
        read_name(body, len(body) - 4, len(body))


def test_zero_length_txt_strings_and_repeats():
    txt = b"\x00\x03abc\x00"
    wire = header(an=3) + QUESTION.replace(b"\x00\x01\x00\x01", b"\x00\x10\x00\x01") \
        + rr(POINTER, 16, txt, ttl=50) + rr(POINTER, 16, txt, ttl=20) + rr(POINTER, 16, b"\x00", ttl=0x80000000)
    chain = parse_response(wire).chain(make_query("example.com", "TXT"))
    assert chain.records == (TXTRecord((b"", b"abc", b"")), TXTRecord((b"",)))
    assert chain.ttl == 0             # above 2^31 - 1 counts as 0


def test_cname_chain_longer_than_sixteen_and_a_loop_are_malformed():
    for links, error in ((17, "CNAME chain longer than 16"), (16, "CNAME chain longer than 16")):
        records = b""
        for n in range(links):
            records += rr(b"\x02c" + bytes([48 + n % 10]) + POINTER if n else POINTER, 5,
                          b"\x02c" + bytes([48 + (n + 1) % 10]) + POINTER)
        wire = header(an=links) + QUESTION + records
        with pytest.raises(MalformedMessage, match=error):
            parse_response(wire).chain(make_query("example.com", "A"))


def test_a_tlsa_digest_of_the_wrong_length_is_read_for_the_dane_check_to_report():
    # dnspython refused the whole answer (the query then timed out); records/tlsa.make_tlsa
    # reports such a record as malformed.
    wire = header(an=1) + QUESTION.replace(b"\x00\x01\x00\x01", b"\x00\x34\x00\x01") \
        + rr(POINTER, 52, b"\x03\x01\x01" + b"\xab" * 31)
    with pytest.raises(Exception):
        dns.message.from_wire(wire)
    chain = parse_response(wire).chain(make_query("example.com", "TLSA"))
    assert chain.records == (TLSAData(3, 1, 1, b"\xab" * 31),)


def test_an_error_rcode_may_come_without_the_question():
    query = make_query("example.com", "A")
    assert parse_response(header(qd=0, flags=0x8182, query_id=9)).answers(query, 9)        # SERVFAIL
    assert not parse_response(header(qd=0, flags=0x8180, query_id=9)).answers(query, 9)    # NOERROR
    assert not parse_response(header(flags=0x8180, query_id=9) + QUESTION).answers(query, 8)
    assert not parse_response(header(flags=0x0180, query_id=9) + QUESTION).answers(query, 9)   # QR clear
    assert not parse_response(header(flags=0x8980, query_id=9) + QUESTION).answers(query, 9)   # opcode IQUERY
    assert parse_response(header(flags=0x8180, query_id=9) + QUESTION.upper()).answers(query, 9)


# --- the real answers of Knot and Unbound for the test zones ---

def ask(address: str, query_wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(query_wire, (address, 53))
        data = sock.recv(65535)
    if data[2] & 0x02:   # TC: again over TCP
        with socket.create_connection((address, 53), timeout=3) as conn:
            conn.sendall(len(query_wire).to_bytes(2, "big") + query_wire)
            size = int.from_bytes(_exactly(conn, 2), "big")
            data = _exactly(conn, size)
    return data


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk
        data += chunk
    return data


@pytest.mark.integration
def test_real_answers_of_knot_and_unbound_read_as_dnspython_reads_them():
    from tests.dnsfixtures import running_dns_lab
    from tests.dnsfixtures.zones import AUTH_ADDRESS, RESOLVER_ADDRESS

    lab = running_dns_lab()
    names = set()
    for zone_file in (lab.directory / "knot").glob("*.zone"):
        for line in zone_file.read_text().splitlines():
            if line and not line[0].isspace() and not line.startswith(";"):
                names.add(line.split()[0].rstrip("."))
    names |= {f"nothing-here.{name}" for name in sorted(names)[:20] if name}
    compared = 0
    for name in sorted(names):
        for rdtype in ("A", "AAAA", "MX", "TXT", "PTR", "TLSA"):
            for server in (AUTH_ADDRESS, RESOLVER_ADDRESS):
                wire = ask(server, make_query(name, rdtype).wire(compared % 65536))
                assert_read_alike(wire, name, rdtype)
                compared += 1
    assert compared > 1000
