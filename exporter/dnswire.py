"""DNS messages on the wire, for dnsclient: the queries it sends, and what it reads of the
answers: the header (ID, flags, rcode with its EDNS extension), the question, and the
records of the answer section of the types the checks ask for (A, AAAA, MX, TXT, PTR,
TLSA) and the CNAMEs that lead to them.

dnspython built and parsed these messages before. At 10,000 domains its objects (a `Name`
per owner and target, an rdata object per record of every section, enum conversions) were
two thirds of the exporter's CPU; this module reads what the checks use and skips the rest.
It keeps dnspython's rules, so that an answer reads the same as before:

- names: compression pointers point strictly before the part of the name that holds
  them, each before the previous one (no loop can be built), at most 16 in a name; a
  label type other than a length or a pointer, or a name over 255 octets, is malformed;
- records of one owner, class and type form one set: its TTL is the lowest of theirs
  (a TTL above 2^31 - 1 counts as 0, RFC 2181 §8), a repeated record counts once, and of
  several CNAMEs the last one is kept;
- an rdata must be exactly as long as its fields (an A of 4 octets, a TXT of at least one
  character-string, a name that ends where the rdata ends); the message must end where
  its last record ends; an OPT record only once, in the additional section, owned by the
  root; a TSIG record (this client signs nothing) is malformed;
- a CNAME chain is followed for 16 links at most.

Records of other types or classes are skipped (their rdata only has to fit in the
message), where dnspython also checked their fields: a broken RRSIG or NSEC record in the
authority section no longer makes the whole answer malformed.

Anything malformed raises `MalformedMessage`, whose text says what and where.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

RDTYPES = {"A": 1, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "TLSA": 52}   # the types a lookup may ask
_CNAME, _OPT, _TSIG = 5, 41, 250
_CLASS_IN = 1

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
_RCODE_TEXT = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
               16: "BADVERS", 23: "BADCOOKIE"}
# Answers to these may come without the question (dnspython's is_response accepts them).
_ERRORS_WITHOUT_QUESTION = frozenset({FORMERR, SERVFAIL, NOTIMP, REFUSED})

QR, TC, RD, AD, CD = 0x8000, 0x0200, 0x0100, 0x0020, 0x0010
_OPCODE_MASK = 0x7800
EDNS_DO = 0x8000
MAX_NAME_OCTETS = 255
MAX_POINTERS = 16      # dnspython's MAX_COMPRESSION_POINTER_CHAIN
MAX_CHAIN = 16         # CNAMEs followed at most (dnspython's MAX_CHAIN)

_HEADER = struct.Struct("!HHHHHH")
_RR_HEADER = struct.Struct("!HHIH")
_TYPE_CLASS = struct.Struct("!HH")
_ESCAPED = b'"().;\\@$'   # and every octet outside 0x21-0x7e: as dnspython's Name.to_text
_ESCAPES = {c: "\\" + chr(c) for c in _ESCAPED} | {c: f"\\{c:03d}" for c in range(256) if not 0x20 < c < 0x7F}


class MalformedMessage(ValueError):
    """Not a DNS message, or one this client cannot read; the text says what and where."""


@dataclass(frozen=True, slots=True)
class AddressRecord:       # A and AAAA
    address: str           # as dnspython writes it (IPv6 compressed, an IPv4 tail for ::ffff:0:0/96 and ::/96)


@dataclass(frozen=True, slots=True)
class MXRecord:
    preference: int
    exchange: str          # lower case, without the final dot; "" for the null MX "."


@dataclass(frozen=True, slots=True)
class TXTRecord:
    strings: tuple[bytes, ...]    # the character-strings, at least one, maybe empty ones


@dataclass(frozen=True, slots=True)
class NameRecord:          # PTR
    target: str            # lower case, without the final dot


@dataclass(frozen=True, slots=True)
class TLSAData:
    usage: int
    selector: int
    mtype: int
    cert: bytes


Record = AddressRecord | MXRecord | TXTRecord | NameRecord | TLSAData


def normalize_name(name: str) -> str:
    return name.rstrip(".").lower() if name != "." else ""


# --- queries ---

@dataclass(frozen=True, slots=True)
class Query:
    question: bytes        # name (lower case wire form), type and class: compared with an answer's
    rdtype: int
    body: bytes            # the message after its ID

    def wire(self, query_id: int) -> bytes:
        return query_id.to_bytes(2, "big") + self.body


EDNS_BUFFER_SIZE = 1232   # the DNS Flag Day 2020 value: no IP fragmentation on common paths
_OPT_RECORD = b"\x00" + _RR_HEADER.pack(_OPT, EDNS_BUFFER_SIZE, EDNS_DO, 0)   # EDNS0 with DO


def make_query(name: str, rdtype: str, checking_disabled: bool = False) -> Query:
    """A query for (`name`, `rdtype`, IN) with RD and AD set (CD too when asked), EDNS0 with
    DO and a 1232-octet buffer, as dnspython's make_query(..., want_dnssec=True) writes it.
    `name` is text, as normalize_name leaves it. Raises ValueError for a type this module
    does not read, and dnspython's errors for a name that cannot be one."""
    code = RDTYPES[rdtype] if rdtype in RDTYPES else _unknown_type(rdtype)
    qname = _name_wire(name)
    flags = RD | AD | (CD if checking_disabled else 0)
    question = qname + _TYPE_CLASS.pack(code, _CLASS_IN)
    return Query(question.lower(), code, _HEADER.pack(0, flags, 1, 0, 0, 1)[2:] + question + _OPT_RECORD)


def _unknown_type(rdtype: str) -> int:
    raise ValueError(f"{rdtype}: not a record type dnswire reads ({', '.join(RDTYPES)})")


def _name_wire(name: str) -> bytes:
    """The wire form of a name written as text (without the final dot)."""
    if name and name.isascii() and "\\" not in name and len(name) <= MAX_NAME_OCTETS - 2:
        labels = name.encode("ascii").split(b".")
        if all(0 < len(label) < 64 for label in labels):
            return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    # Escapes, international names, empty or long labels: dnspython reads the text (and
    # raises its errors), as before.
    import dns.name

    return dns.name.from_text(name + ".").to_wire()


# --- answers ---

def read_name(message: bytes, offset: int, end: int) -> tuple[bytes, int]:
    """The name at `offset` (its first part before `end`) in uncompressed wire form, and
    the offset after it where it is written."""
    parts = []
    octets = 1
    segment = offset      # where the part being read starts: pointers must point before it
    after = -1
    hops = 0
    while True:
        if offset >= end:
            raise MalformedMessage(f"name at {segment}: runs past its end ({end})")
        count = message[offset]
        if count == 0:
            break
        if count < 64:
            offset += count + 1
            octets += count + 1
            if offset > end:
                raise MalformedMessage(f"name at {segment}: label runs past its end ({end})")
            if octets > MAX_NAME_OCTETS:
                raise MalformedMessage(f"name at {segment}: longer than {MAX_NAME_OCTETS} octets")
        elif count >= 0xC0:
            if offset + 1 >= end:
                raise MalformedMessage(f"name at {segment}: pointer runs past its end ({end})")
            target = ((count & 0x3F) << 8) | message[offset + 1]
            if target >= segment:
                raise MalformedMessage(f"name at {segment}: compression pointer to {target} does not point backwards")
            hops += 1
            if hops > MAX_POINTERS:
                raise MalformedMessage(f"name at {segment}: more than {MAX_POINTERS} compression pointers")
            if after < 0:
                after = offset + 2
            parts.append(message[segment:offset])
            # What follows must lie before the part just read (dnspython: no overlap).
            end = segment
            offset = segment = target
        else:
            raise MalformedMessage(f"name at {segment}: unknown label type {count:#04x}")
    parts.append(message[segment:offset + 1])
    return b"".join(parts), (offset + 1 if after < 0 else after)


def name_text(wire: bytes) -> str:
    """The name as normalize_name leaves dnspython's text of it: lower case, no final dot,
    special octets escaped (`\\.`, `\\032`); "" for the root."""
    labels = []
    offset = 0
    while count := wire[offset]:
        labels.append(wire[offset + 1:offset + 1 + count].decode("latin-1").translate(_ESCAPES))
        offset += count + 1
    return normalize_name(".".join(labels) + ".")


@dataclass(frozen=True, slots=True)
class Chain:
    canonical_name: str            # the name at the end of the CNAME chain, as name_text writes it
    records: tuple[Record, ...] | None   # of the asked type there; None: none in the answer
    ttl: int                       # the TTL of those records' set (0 when there are none)


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    flags: int
    rcode: int                     # with the EDNS extended bits
    questions: tuple[bytes, ...]   # each as Query.question: name (lower case), type, class
    # (owner, lower case wire form; type) -> (TTL, records): the answer section's IN
    # records of the types read, in the order received
    answer: dict[tuple[bytes, int], tuple[int, tuple[Record, ...]]]
    aliases: dict[bytes, bytes]    # the answer section's CNAMEs: owner -> target (lower case wire forms)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)

    @property
    def authenticated(self) -> bool:
        return bool(self.flags & AD)

    def answers(self, query: Query, query_id: int) -> bool:
        """Is this the response to `query` sent with `query_id`? As dnspython's is_response:
        QR set, same ID and opcode (QUERY), the same question (an error rcode may come
        without one)."""
        if not self.flags & QR or self.id != query_id or self.flags & _OPCODE_MASK:
            return False
        if not self.questions:
            return self.rcode in _ERRORS_WITHOUT_QUESTION
        return all(question == query.question for question in self.questions)

    def chain(self, query: Query) -> Chain:
        """The records answering `query`, following CNAMEs from its name (dnspython's
        resolve_chaining); raises MalformedMessage without exactly one question or when the
        chain is longer than MAX_CHAIN."""
        if len(self.questions) != 1:
            raise MalformedMessage(f"{len(self.questions)} questions in the answer")
        owner = query.question[:-4]
        for _ in range(MAX_CHAIN):
            found = self.answer.get((owner, query.rdtype))
            if found is not None:
                return Chain(name_text(owner), found[1], found[0])
            alias = self.aliases.get(owner)
            if alias is None:
                return Chain(name_text(owner), None, 0)
            owner = alias
        raise MalformedMessage(f"CNAME chain longer than {MAX_CHAIN}")

    def rcode_text(self) -> str:
        return _RCODE_TEXT.get(self.rcode, str(self.rcode))


def parse_response(message: bytes) -> Response:
    """Read an answer; raises MalformedMessage."""
    if len(message) < 12:
        raise MalformedMessage(f"{len(message)} octets: shorter than a DNS header")
    query_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(message)
    size = len(message)
    offset = 12
    questions = []
    for _ in range(qdcount):
        name, offset = read_name(message, offset, size)
        if offset + 4 > size:
            raise MalformedMessage(f"question at {offset}: runs past the end")
        questions.append(name.lower() + message[offset:offset + 4])
        offset += 4
    answer: dict[tuple[bytes, int], list] = {}
    offset = _read_answer_section(message, offset, ancount, answer)
    offset, opt_ttl = _skip_records(message, offset, nscount, arcount)
    if offset != size:
        raise MalformedMessage(f"{size - offset} octets after the last record")
    rcode = (flags & 0xF) | ((opt_ttl >> 20) & 0xFF0)
    records, aliases = {}, {}
    for (owner, rdtype), (ttl, found) in answer.items():
        if rdtype == _CNAME:
            aliases[owner] = next(iter(found))
        else:
            records[owner, rdtype] = (ttl, tuple(found.values()))
    return Response(query_id, flags, rcode, tuple(questions), records, aliases)


def _record_header(message: bytes, offset: int) -> tuple[bytes, int, int, int, int, int]:
    """(owner, type, class, TTL, rdata start, rdata end) of the record at `offset`."""
    owner, offset = read_name(message, offset, len(message))
    if offset + 10 > len(message):
        raise MalformedMessage(f"record at {offset}: header runs past the end")
    rdtype, rdclass, ttl, rdlength = _RR_HEADER.unpack_from(message, offset)
    start = offset + 10
    if start + rdlength > len(message):
        raise MalformedMessage(f"record at {offset}: rdata of {rdlength} octets runs past the end")
    if rdtype == _TSIG:
        raise MalformedMessage(f"record at {offset}: a TSIG record, and no query was signed")
    return owner, rdtype, rdclass, ttl, start, start + rdlength


def _read_answer_section(message: bytes, offset: int, count: int, answer: dict) -> int:
    for _ in range(count):
        owner, rdtype, rdclass, ttl, start, end = _record_header(message, offset)
        if rdtype == _OPT:
            raise MalformedMessage(f"record at {offset}: OPT outside the additional section")
        reader = _RDATA_READERS.get(rdtype) if rdclass == _CLASS_IN else None
        if reader is not None:
            key, record = reader(message, start, end)
            _add(answer, (owner.lower(), rdtype), ttl if ttl <= 0x7FFFFFFF else 0, key, record)
        offset = end
    return offset


def _add(answer: dict, rrset: tuple[bytes, int], ttl: int, key: bytes, record: Record) -> None:
    entry = answer.get(rrset)
    if entry is None:
        answer[rrset] = [ttl, {key: record}]
        return
    entry[0] = min(entry[0], ttl)
    if rrset[1] == _CNAME:   # a singleton: the last one counts
        entry[1] = {key: record}
    elif key not in entry[1]:
        entry[1][key] = record


def _skip_records(message: bytes, offset: int, nscount: int, arcount: int) -> tuple[int, int]:
    """The offset after the authority and additional sections, and the OPT record's TTL
    (0 without one). Records of the types read are checked as in the answer section."""
    opt_ttl = -1
    for index in range(nscount + arcount):
        owner, rdtype, rdclass, ttl, start, end = _record_header(message, offset)
        if rdtype == _OPT:
            if index < nscount or opt_ttl >= 0 or owner != b"\x00":
                raise MalformedMessage(f"record at {offset}: OPT not once, in the additional section, owned by the root")
            opt_ttl = ttl
        elif rdclass == _CLASS_IN and rdtype in _RDATA_READERS:
            _RDATA_READERS[rdtype](message, start, end)
        offset = end
    return offset, max(opt_ttl, 0)


# --- rdata: each reader returns (what makes two records the same, the record) ---

def _a(message: bytes, start: int, end: int) -> tuple[bytes, Record]:
    if end - start != 4:
        raise MalformedMessage(f"A rdata at {start}: {end - start} octets, not 4")
    raw = message[start:end]
    return raw, AddressRecord(socket.inet_ntoa(raw))


def _aaaa(message: bytes, start: int, end: int) -> tuple[bytes, Record]:
    if end - start != 16:
        raise MalformedMessage(f"AAAA rdata at {start}: {end - start} octets, not 16")
    raw = message[start:end]
    return raw, AddressRecord(socket.inet_ntop(socket.AF_INET6, raw))


def _target(message: bytes, start: int, end: int) -> tuple[bytes, str]:
    """The name filling the rdata from `start` to `end`: (lower case wire form, text)."""
    name, _ = _cname(message, start, end)
    return name, name_text(name)


def _mx(message: bytes, start: int, end: int) -> tuple[bytes, Record]:
    if end - start < 3:
        raise MalformedMessage(f"MX rdata at {start}: {end - start} octets")
    name, text = _target(message, start + 2, end)
    return message[start:start + 2] + name, MXRecord((message[start] << 8) | message[start + 1], text)


def _ptr(message: bytes, start: int, end: int) -> tuple[bytes, Record]:
    name, text = _target(message, start, end)
    return name, NameRecord(text)


def _cname(message: bytes, start: int, end: int) -> tuple[bytes, None]:
    """The target alone, as the key: only the chain reads it."""
    name, after = read_name(message, start, end)
    if after != end:
        raise MalformedMessage(f"rdata at {start}: {end - after} octets after its name")
    return name.lower(), None


def _txt(message: bytes, start: int, end: int) -> tuple[bytes, Record]:
    strings = []
    offset = start
    while offset < end:
        stop = offset + 1 + message[offset]
        if stop > end:
            raise MalformedMessage(f"TXT rdata at {start}: a string runs past the rdata's end")
        strings.append(message[offset + 1:stop])
        offset = stop
    if not strings:
        raise MalformedMessage(f"TXT rdata at {start}: no string")
    return message[start:end], TXTRecord(tuple(strings))


def _tlsa(message: bytes, start: int, end: int) -> tuple[bytes, Record]:
    if end - start < 3:
        raise MalformedMessage(f"TLSA rdata at {start}: {end - start} octets")
    return message[start:end], TLSAData(message[start], message[start + 1], message[start + 2], message[start + 3:end])


_RDATA_READERS = {1: _a, 5: _cname, 12: _ptr, 15: _mx, 16: _txt, 28: _aaaa, 52: _tlsa}
