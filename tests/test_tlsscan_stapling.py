"""OCSP stapling: what a stapled response says (exporter/tlsscan/stapling.py, table-driven), and
that the scan counts a staple only when a CertificateStatus with a successful response came."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from exporter.tlsscan.stapling import StapledStatus, parse_stapled_response
from exporter.tlswire import ProtocolVersion as V
from tests.ocsp_factory import ocsp_response, unsuccessful_response
from tests.realservers.pki import MailPKI, generate_pki
from tests.test_tlsscan_model import scan_model
from tests.tlsservers.model import ModelServer

NEXT = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> MailPKI:
    return generate_pki(Path(tmp_path_factory.mktemp("pki")))


def response(pki: MailPKI, case: str) -> bytes:
    leaf, issuer = pki.good_rsa.leaf.cert, pki.intermediate
    return {
        "good": lambda: ocsp_response(leaf, issuer, next_update=NEXT),
        "revoked": lambda: ocsp_response(leaf, issuer, revoked=True, next_update=NEXT),
        "no nextUpdate": lambda: ocsp_response(leaf, issuer),
        "tryLater": unsuccessful_response,
        "garbage": lambda: b"\x30\x03\x0a\x01",
        "empty": lambda: b"",
    }[case]()


@pytest.mark.parametrize("case, status, next_update", [
    ("good", StapledStatus.GOOD, NEXT.timestamp()),
    ("revoked", StapledStatus.REVOKED, NEXT.timestamp()),
    ("no nextUpdate", StapledStatus.GOOD, None),
    ("tryLater", None, None),
    ("garbage", None, None),
    ("empty", None, None),
])
def test_parse_stapled_response(pki: MailPKI, case: str, status: StapledStatus | None, next_update: float | None):
    parsed = parse_stapled_response(response(pki, case))
    if status is None:
        assert parsed is None
    else:
        assert parsed is not None and (parsed.status, parsed.next_update) == (status, next_update)


@pytest.mark.parametrize("echoes, case, stapling", [
    (True, None, False),           # the status_request echo alone is no staple (OpenSSL without a response)
    (True, "good", True),
    (True, "tryLater", False),     # a responder error carries no status: nothing to staple
    (False, None, False),
])
async def test_the_scan_counts_a_staple_only_when_one_came(pki: MailPKI, echoes: bool, case: str | None,
                                                           stapling: bool):
    staple = response(pki, case) if case else None
    model = ModelServer({V.TLS1_2: (0xC02F,)}, echoes_status_request=echoes, staple=staple)
    result, _ = await scan_model(model)
    assert result.ocsp_stapling is stapling
    if stapling:
        assert result.ocsp_staple is not None and result.ocsp_staple.next_update == NEXT.timestamp()
    else:
        assert result.ocsp_staple is None
