"""Mail policy facts of an endpoint: what it offers before and after TLS, whether it
enforces TLS, and (opt-in) whether it relays for strangers.

The classifiers are pure functions of the capability lists the dialogues read. The two
SMTP exchanges (the enforcement test before STARTTLS, the relay test) send MAIL FROM,
maybe RCPT TO, and always RSET: never DATA, so no mail is ever sent.
"""

from __future__ import annotations

import re

from ..config.model import OpenRelayTest
from ..results import (
    CAPABILITIES_BY_FAMILY,
    AuthMechanism,
    Capability,
    FailureReason,
    OfferedCapabilities,
)
from .mailproto import DialogueError, PlaintextFacts, SMTPDialogue

_MECHANISMS = {mechanism.value: mechanism for mechanism in AuthMechanism}


def _keyword_and_mechanisms(family: str, capability: str) -> tuple[str | None, list[str]]:
    """The capability keyword (None for an IMAP AUTH=) and the SASL mechanisms a capability
    line names: SMTP "AUTH PLAIN LOGIN" or "AUTH=PLAIN", IMAP "AUTH=PLAIN", POP3 "SASL PLAIN"."""
    if family == "imap":
        if capability.startswith("AUTH="):
            return None, [capability[5:]]
        return capability, []
    keyword, _, parameters = capability.partition(" ")
    if family == "smtp" and keyword.startswith("AUTH="):   # Postfix's form for broken old clients
        keyword, parameters = "AUTH", f"{keyword[5:]} {parameters}"
    if (family, keyword) in (("smtp", "AUTH"), ("pop3", "SASL")):
        return keyword, parameters.split()
    return keyword, []


def classify_capabilities(family: str, capabilities: tuple[str, ...]) -> OfferedCapabilities:
    """Sort a capability list (as the dialogues return it: keywords upper-cased) into the
    closed sets of its protocol family; anything else is counted once per distinct name."""
    known = {capability.value: capability for capability in CAPABILITIES_BY_FAMILY[family]}
    offered: set[Capability] = set()
    mechanisms: set[AuthMechanism] = set()
    unknown: set[str] = set()
    for capability in capabilities:
        keyword, named_mechanisms = _keyword_and_mechanisms(family, capability)
        if keyword is not None:
            if keyword in known:
                offered.add(known[keyword])
            else:
                unknown.add(keyword)
        for name in named_mechanisms:
            name = name.upper()
            if name in _MECHANISMS:
                mechanisms.add(_MECHANISMS[name])
            else:
                unknown.add(f"mechanism {name}")
    return OfferedCapabilities(family, frozenset(offered), frozenset(mechanisms), len(unknown))


# --- STARTTLS enforcement --------------------------------------------------------------

# An enhanced status code (RFC 3463) at the start of a reply text: "5.7.0 Must issue...".
_ENHANCED_CODE = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:\s|\Z)")


def mail_refused_for_policy(code: int, text: str) -> bool | None:
    """What the reply to MAIL FROM:<> before STARTTLS says about mail in clear.

    False: accepted (2xx). True: refused as a matter of security policy, 530 (RFC 3207's
    "must issue STARTTLS first", also "authentication required") or any 5xx with an
    enhanced code 5.7.x. None: inconclusive (4xx, or 5xx for another reason): the verdict
    must not depend on a transient state or on a guess.
    """
    if code // 100 == 2:
        return False
    if code == 530:
        return True
    enhanced = _ENHANCED_CODE.match(text)
    if code // 100 == 5 and enhanced is not None and enhanced.group(1, 2) == ("5", "7"):
        return True
    return None


async def _command(dialogue: SMTPDialogue, line: str) -> tuple[int, str]:
    """One SMTP command of a policy test: (code, first reply line). A 421 means the server
    is closing the connection, which no later command would survive: the probe fails."""
    code, texts = await dialogue.command(line)
    if code == 421:
        raise DialogueError(FailureReason.SERVICE_UNAVAILABLE, f"{line.split(':')[0]} answered 421 {texts[0]}")
    return code, texts[0]


async def smtp_starttls_enforced(dialogue: SMTPDialogue, plaintext: PlaintextFacts) -> bool | None:
    """Does the server refuse mail and passwords before STARTTLS? Runs on the plaintext
    connection, before STARTTLS: AUTH advertised in clear already answers no; otherwise
    MAIL FROM:<> is sent (the null sender: no sender-domain check can refuse it, so a
    refusal is about TLS) and, if accepted, withdrawn at once with RSET."""
    if plaintext.plaintext_auth_exposed or not plaintext.starttls_offered:
        return False
    code, text = await _command(dialogue, "MAIL FROM:<>")
    if code // 100 == 2:
        await _command(dialogue, "RSET")
    return mail_refused_for_policy(code, text)


def mailbox_starttls_enforced(plaintext: PlaintextFacts, offered: OfferedCapabilities) -> bool | None:
    """IMAP/POP3 before STARTTLS/STLS: no login of any kind offered. IMAP must say
    LOGINDISABLED (LOGIN is otherwise always allowed) and offer no AUTH=; POP3 must offer
    no USER and name no SASL mechanism (Dovecot says a bare "SASL" before STLS). Any
    mechanism counts, one outside the closed list too. False when STARTTLS is not offered
    (nothing to enforce); None when a POP3 server had no CAPA (`plaintext_auth_exposed` None)."""
    if not plaintext.starttls_offered:
        return False
    if plaintext.plaintext_auth_exposed is None:
        return None
    if plaintext.plaintext_auth_exposed or any(
        _keyword_and_mechanisms(offered.family, capability)[1] for capability in plaintext.capabilities
    ):
        return False
    if offered.family == "imap":
        return Capability.LOGINDISABLED in offered.capabilities
    return Capability.USER not in offered.capabilities


# --- the open-relay test ---------------------------------------------------------------

def relay_verdict(mail_code: int, rcpt_code: int | None) -> bool | None:
    """True: the canary recipient was accepted (2xx, 251 and 252 included). False: the sender
    or the recipient was refused for good (5xx). None: deferred (4xx), no verdict."""
    if mail_code // 100 == 5:
        return False
    if rcpt_code is None:       # MAIL FROM deferred: RCPT TO was not sent
        return None
    return {2: True, 5: False}.get(rcpt_code // 100)


async def open_relay_test(dialogue: SMTPDialogue, test: OpenRelayTest) -> bool | None:
    """MAIL FROM the configured sender, RCPT TO the canary, RSET: never DATA."""
    mail_code, _ = await _command(dialogue, f"MAIL FROM:<{test.sender}>")
    rcpt_code = None
    if mail_code // 100 == 2:
        rcpt_code, _ = await _command(dialogue, f"RCPT TO:<{test.recipient}>")
    await _command(dialogue, "RSET")
    return relay_verdict(mail_code, rcpt_code)
