"""SPF records (RFC 7208): parsing, syntax checks, and macro expansion.

`parse_spf` checks a record against the RFC 7208 §12 grammar and returns its terms, so
that an evaluator can walk them without re-parsing: each `Mechanism` says whether it
costs a DNS lookup (§4.6.4), domain-specs are kept as macro-strings for `expand_macros`.
A syntax error is what RFC 7208 calls a permerror; the SPFError message names the term.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, replace

from exporter.records.common import RecordError, RecordWarning


class SPFError(RecordError):
    """The record is invalid: an SPF evaluation of it ends in permerror."""


class Qualifier(enum.StrEnum):
    PASS = "+"
    FAIL = "-"
    SOFTFAIL = "~"
    NEUTRAL = "?"


# Terms that cost one of the ten DNS lookups an evaluation may do (RFC 7208 §4.6.4).
LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
MAX_DNS_LOOKUPS = 10
_MECHANISMS = frozenset({"all", "ip4", "ip6"}) | LOOKUP_MECHANISMS


@dataclass(frozen=True)
class Mechanism:
    qualifier: Qualifier
    name: str                       # lower-case: all, include, a, mx, ptr, ip4, ip6, exists
    text: str                       # the term as written
    position: int                   # offset of the term in the record
    domain_spec: str | None = None  # macro-string argument of include/a/mx/ptr/exists
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # ip4/ip6
    ip4_prefix_length: int | None = None  # a/mx "/N"; None means 32
    ip6_prefix_length: int | None = None  # a/mx "//N"; None means 128

    @property
    def costs_dns_lookup(self) -> bool:
        return self.name in LOOKUP_MECHANISMS


@dataclass(frozen=True)
class Modifier:
    name: str       # lower-case
    value: str      # macro-string (a domain-spec for redirect and exp)
    text: str
    position: int

    @property
    def costs_dns_lookup(self) -> bool:
        return self.name == "redirect"


Term = Mechanism | Modifier


@dataclass(frozen=True)
class SPFRecord:
    text: str
    terms: tuple[Term, ...]
    warnings: tuple[RecordWarning, ...]

    @property
    def mechanisms(self) -> tuple[Mechanism, ...]:
        return tuple(t for t in self.terms if isinstance(t, Mechanism))

    @property
    def modifiers(self) -> tuple[Modifier, ...]:
        return tuple(t for t in self.terms if isinstance(t, Modifier))

    @property
    def effective_mechanisms(self) -> tuple[Mechanism, ...]:
        """The mechanisms an evaluation can reach: those up to and including the first `all`."""
        reached: list[Mechanism] = []
        for mechanism in self.mechanisms:
            reached.append(mechanism)
            if mechanism.name == "all":
                break
        return tuple(reached)

    @property
    def all_mechanism(self) -> Mechanism | None:
        return next((m for m in self.mechanisms if m.name == "all"), None)

    @property
    def all_qualifier(self) -> Qualifier | None:
        return self.all_mechanism.qualifier if self.all_mechanism else None

    @property
    def redirect(self) -> str | None:
        return self._modifier_value("redirect")

    @property
    def explanation(self) -> str | None:
        return self._modifier_value("exp")

    @property
    def redirect_applies(self) -> bool:
        """redirect is used only when the record has no `all` (RFC 7208 §6.1)."""
        return self.redirect is not None and self.all_mechanism is None

    @property
    def dns_lookup_count(self) -> int:
        """Lookup-costing terms of this record an evaluation can reach (not counting
        those of included or redirected-to records)."""
        count = sum(m.costs_dns_lookup for m in self.effective_mechanisms)
        return count + int(self.redirect_applies)

    @property
    def uses_ptr(self) -> bool:
        return any(m.name == "ptr" for m in self.mechanisms)

    @property
    def too_permissive(self) -> bool:
        """+all or ?all: any host may send (or is at least not refused) for the domain."""
        return self.all_qualifier in (Qualifier.PASS, Qualifier.NEUTRAL)

    @property
    def implicit_neutral(self) -> bool:
        """No `all` and no redirect: unmatched senders get the default result, neutral."""
        return self.all_mechanism is None and self.redirect is None

    def _modifier_value(self, name: str) -> str | None:
        return next((m.value for m in self.modifiers if m.name == name), None)


def select_spf_records(txt_strings: list[str]) -> list[str]:
    """The TXT records that are SPF records (RFC 7208 §4.5): "v=spf1" then a space or end.

    Each item is one TXT record with its character-strings already joined. An SPF check
    needs exactly one; zero is "none" and several are a permerror.
    """
    return [text for text in txt_strings if _VERSION.match(text)]


_VERSION = re.compile(r"v=spf1(?: |\Z)", re.IGNORECASE)
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)\Z", re.DOTALL)
_DIRECTIVE = re.compile(r"([-+~?]?)([A-Za-z0-9_.-]*)(.*)\Z", re.DOTALL)
_DUAL_CIDR = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?\Z")
_TOPLABEL = re.compile(
    r"(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])\Z"
)


def parse_spf(text: str) -> SPFRecord:
    """Parse one SPF record (its TXT strings joined); raise SPFError if it is invalid."""
    if not _VERSION.match(text):
        raise SPFError('an SPF record must start with "v=spf1" followed by a space or end', 0)
    terms: list[Term] = []
    offset = len("v=spf1")
    for word in text[offset:].split(" "):
        position = offset
        offset += len(word) + 1
        if word:   # several spaces in a row are allowed (terms = *( 1*SP term ))
            terms.append(_parse_term(word, position))
    _check_modifiers_unique(terms)
    record = SPFRecord(text, tuple(terms), ())
    return replace(record, warnings=_warnings(record))


def _parse_term(word: str, position: int) -> Term:
    modifier = _MODIFIER.match(word)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        value_position = position + len(modifier.group(1)) + 1
        if name in ("redirect", "exp"):
            _check_domain_spec(value, value_position, word)
        else:
            parse_macro_string(value, position=value_position)
        return Modifier(name, value, word, position)
    directive = _DIRECTIVE.match(word)
    assert directive is not None   # every group can be empty, so it always matches
    qualifier = Qualifier(directive.group(1) or "+")
    name, rest = directive.group(2).lower(), directive.group(3)
    if name not in _MECHANISMS:
        raise SPFError(f"unknown mechanism in term {word!r}", position)
    arg_position = position + len(directive.group(1)) + len(name)
    mechanism = Mechanism(qualifier, name, word, position)
    if name == "all":
        if rest:
            raise SPFError(f"'all' takes no argument: {word!r}", arg_position)
        return mechanism
    if name in ("ip4", "ip6"):
        return _with_network(mechanism, rest, arg_position)
    if name in ("a", "mx"):
        return _with_domain_and_cidr(mechanism, rest, arg_position)
    # include, exists: domain-spec required; ptr: optional
    if not rest and name == "ptr":
        return mechanism
    if not rest.startswith(":"):
        raise SPFError(f"{name!r} needs ':' and a domain-spec: {word!r}", arg_position)
    _check_domain_spec(rest[1:], arg_position + 1, word)
    return replace(mechanism, domain_spec=rest[1:])


def _with_network(mechanism: Mechanism, rest: str, position: int) -> Mechanism:
    word = mechanism.text
    if not rest.startswith(":"):
        raise SPFError(f"{mechanism.name!r} needs ':' and an address: {word!r}", position)
    address, slash, prefix = rest[1:].partition("/")
    version = 4 if mechanism.name == "ip4" else 6
    max_prefix = 32 if version == 4 else 128
    try:
        if "%" in address:   # Python accepts IPv6 scope ids; RFC 4291 text form does not
            raise ValueError(address)
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise SPFError(f"invalid IPv{version} address in {word!r}", position + 1) from None
    if parsed.version != version:
        raise SPFError(f"invalid IPv{version} address in {word!r}", position + 1)
    length = _prefix_length(prefix, max_prefix, word, position) if slash else max_prefix
    network = ipaddress.ip_network(f"{parsed}/{length}", strict=False)
    return replace(mechanism, network=network)


def _with_domain_and_cidr(mechanism: Mechanism, rest: str, position: int) -> Mechanism:
    word = mechanism.text
    cidr = _DUAL_CIDR.search(rest)
    assert cidr is not None   # matches the empty string at the end at least
    domain_part = rest[: cidr.start()]
    ip4 = _prefix_length(cidr.group(1), 32, word, position) if cidr.group(1) else None
    ip6 = _prefix_length(cidr.group(2), 128, word, position) if cidr.group(2) else None
    domain_spec = None
    if domain_part:
        if not domain_part.startswith(":"):
            raise SPFError(f"invalid argument to {mechanism.name!r}: {word!r}", position)
        domain_spec = domain_part[1:]
        _check_domain_spec(domain_spec, position + 1, word)
    return replace(
        mechanism, domain_spec=domain_spec, ip4_prefix_length=ip4, ip6_prefix_length=ip6
    )


def _prefix_length(digits: str, maximum: int, word: str, position: int) -> int:
    # ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT): no leading zeros, within range.
    if not re.fullmatch(r"0|[1-9][0-9]{0,2}", digits):
        raise SPFError(f"invalid prefix length {digits!r} in {word!r}", position)
    length = int(digits)
    if length > maximum:
        raise SPFError(f"prefix length {length} exceeds {maximum} in {word!r}", position)
    return length


def _check_modifiers_unique(terms: list[Term]) -> None:
    seen: set[str] = set()
    for term in terms:
        if isinstance(term, Modifier) and term.name in ("redirect", "exp"):
            if term.name in seen:
                raise SPFError(f"modifier {term.name!r} appears more than once", term.position)
            seen.add(term.name)


def _warnings(record: SPFRecord) -> tuple[RecordWarning, ...]:
    found: list[RecordWarning] = []
    all_mechanism = record.all_mechanism
    if all_mechanism is not None:
        after = record.mechanisms[len(record.effective_mechanisms):]
        if after:
            found.append(RecordWarning(
                "terms_after_all",
                f"mechanisms after {all_mechanism.text!r} are never evaluated: "
                + " ".join(m.text for m in after),
            ))
        if record.redirect is not None:
            found.append(RecordWarning(
                "redirect_ignored", "redirect is ignored because the record has an 'all'"
            ))
        if record.too_permissive:
            found.append(RecordWarning(
                "permissive_all",
                f"{all_mechanism.text!r} does not refuse mail from unlisted hosts",
            ))
    elif record.redirect is None:
        found.append(RecordWarning(
            "implicit_neutral",
            "no 'all' and no redirect: unlisted hosts get neutral, as with '?all'",
        ))
    if record.uses_ptr:
        found.append(RecordWarning(
            "ptr_used", "the ptr mechanism is deprecated (RFC 7208 §5.5) and slow"
        ))
    for modifier in record.modifiers:
        if modifier.name not in ("redirect", "exp"):
            found.append(RecordWarning(
                "unknown_modifier", f"unknown modifier {modifier.text!r} is ignored"
            ))
    if record.dns_lookup_count > MAX_DNS_LOOKUPS:
        found.append(RecordWarning(
            "too_many_dns_lookups",
            f"{record.dns_lookup_count} terms need DNS lookups; more than "
            f"{MAX_DNS_LOOKUPS} is a permerror (RFC 7208 §4.6.4)",
        ))
    return tuple(found)


# --- macros (RFC 7208 §7) ---------------------------------------------------------

MACRO_LETTERS = frozenset("slodiphcrtv")
EXPLANATION_ONLY_LETTERS = frozenset("crt")   # allowed only in the exp TXT text (§7.2)
_MACRO_EXPAND = re.compile(r"%\{([A-Za-z])([0-9]*)([rR]?)([-.+,/_=]*)\}")
_ESCAPES = {"%%": "%", "%_": " ", "%-": "%20"}


@dataclass(frozen=True)
class MacroExpand:
    letter: str          # as written: upper-case means the result is URL-escaped
    digits: int | None   # keep that many right-hand parts
    reverse: bool
    delimiters: str      # characters splitting the value into parts; "" means "."


MacroPiece = str | MacroExpand   # a str is literal text (escapes already resolved)


def parse_macro_string(
    text: str, *, explanation: bool = False, position: int = 0
) -> tuple[MacroPiece, ...]:
    """Split a macro-string into literal text and macro-expands; raise SPFError if invalid.

    `explanation` parses the text an exp= modifier points to instead: it may also hold
    spaces and the letters c, r and t. `position` is where `text` starts in the record.
    """
    pieces: list[MacroPiece] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            # explain-string = *( macro-string / SP ): only explanations have spaces
            if not ("\x21" <= char <= "\x7e" or (explanation and char == " ")):
                raise SPFError(f"invalid character {char!r} in {text!r}", position + index)
            _append_literal(pieces, char)
            index += 1
            continue
        escape = text[index : index + 2]
        if escape in _ESCAPES:
            _append_literal(pieces, _ESCAPES[escape])
            index += 2
            continue
        match = _MACRO_EXPAND.match(text, index)
        if not match:
            raise SPFError(f"invalid macro in {text!r}", position + index)
        letter, digits, reverse, delimiters = match.groups()
        allowed = MACRO_LETTERS if explanation else MACRO_LETTERS - EXPLANATION_ONLY_LETTERS
        if letter.lower() not in allowed:
            raise SPFError(f"macro letter {letter!r} not allowed here in {text!r}",
                           position + index)
        if digits and not digits.strip("0"):
            raise SPFError(f"macro digit transformer must be nonzero in {text!r}",
                           position + index)
        pieces.append(MacroExpand(letter, _macro_digits(digits), bool(reverse), delimiters))
        index = match.end()
    return tuple(pieces)


def _macro_digits(digits: str) -> int | None:
    if not digits:
        return None
    significant = digits.lstrip("0")
    # A domain name has at most 127 labels: any bigger count means "all parts", and
    # capping it avoids converting arbitrarily long digit strings.
    return int(significant) if len(significant) <= 3 else 999


def _append_literal(pieces: list[MacroPiece], text: str) -> None:
    if pieces and isinstance(pieces[-1], str):
        pieces[-1] += text
    else:
        pieces.append(text)


def _check_domain_spec(text: str, position: int, word: str) -> None:
    """domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand."""
    if not text:
        raise SPFError(f"empty domain-spec in {word!r}", position)
    parse_macro_string(text, position=position)
    if re.search(r"(?:%\{[^}]*\}|%%|%_|%-)\Z", text):
        return
    literal_tail = re.split(r"%\{[^}]*\}|%%|%_|%-", text)[-1]
    name = literal_tail[:-1] if literal_tail.endswith(".") else literal_tail
    before, dot, toplabel = name.rpartition(".")
    if not dot or not _TOPLABEL.match(toplabel):
        raise SPFError(
            f"domain-spec {text!r} in {word!r} must end with a macro or '.' and a "
            "top label that is not all-numeric",
            position,
        )


@dataclass(frozen=True)
class MacroContext:
    """The values macros expand to (RFC 7208 §7.2)."""

    sender: str                                       # %{s}: MAIL FROM, or postmaster@HELO
    domain: str                                       # %{d}: the domain being checked
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address  # %{i}, %{c}, %{v}
    helo: str                                         # %{h}
    validated_domain: str = "unknown"                 # %{p}: resolving it is the caller's job
    receiver: str = "unknown"                         # %{r}
    timestamp: int = 0                                # %{t}


def expand_macros(text: str, context: MacroContext, *, explanation: bool = False) -> str:
    """Expand a macro-string (RFC 7208 §7.3); raise SPFError if it is invalid."""
    out: list[str] = []
    for piece in parse_macro_string(text, explanation=explanation):
        if isinstance(piece, str):
            out.append(piece)
            continue
        value = _transform(_macro_value(piece.letter.lower(), context), piece)
        out.append(urllib.parse.quote(value, safe="") if piece.letter.isupper() else value)
    return "".join(out)


def truncate_domain(name: str) -> str:
    """Drop left-most labels until an expanded domain fits in 253 characters (§7.3)."""
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


def _macro_value(letter: str, context: MacroContext) -> str:
    local, at, sender_domain = context.sender.rpartition("@")
    if not at:   # no "@": the whole sender is a domain
        local, sender_domain = "", context.sender
    ip = context.ip
    if letter == "i":
        if ip.version == 4:
            return str(ip)
        return ".".join(ip.exploded.replace(":", ""))
    values = {
        "s": context.sender,
        "l": local or "postmaster",
        "o": sender_domain,
        "d": context.domain,
        "p": context.validated_domain,
        "v": "in-addr" if ip.version == 4 else "ip6",
        "h": context.helo,
        "c": str(ip),
        "r": context.receiver,
        "t": str(context.timestamp),
    }
    return values[letter]


def _transform(value: str, macro: MacroExpand) -> str:
    delimiters = macro.delimiters or "."
    parts = re.split("[" + re.escape(delimiters) + "]", value)
    if macro.reverse:
        parts.reverse()
    if macro.digits is not None:
        parts = parts[-macro.digits:]
    return ".".join(parts)
