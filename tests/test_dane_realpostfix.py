"""DANE against a real Postfix: the signed TLSA records of tests/dnsfixtures (Knot, validated
by Unbound) judged against the chain a real Postfix presents after STARTTLS.

The exporter's own path runs, as in production: the scheduler probes the MX host with the
MX module (`run_once` -> `probe_endpoint`) and keeps the result; the domain check takes the
chain that probe got (`Scheduler.mx_chain`); /metrics renders the result (`ResultStores`).

Postfix listens where zones.py puts the MX hosts of good.test, on ports other than 25
(nothing may listen on port 25 there: the exporter's end-to-end test counts on refusals).
The TLSA records stay at _25._tcp.<mx>: SMTP DANE is about port 25 (RFC 7672), whatever port
the test connects to.

- "dane" listeners (mx1 and mx2, same port) present zones.dane_credential(). The records of
  mx1 name its leaf key (3 1 1) and its CA (2 0 1): DANE valid. mx2's only record names the
  CA (2 0 1), but the leaf names mx1, not mx2 (RFC 7672 §3.2.3): DANE not valid.
- The "other" listener (mx1) presents a fresh chain for mx1.good.test, of another key and
  CA, which no record names: DANE not valid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, DomainCheckSettings, Domain, GlobalSettings, Module, MailProtocol, StartTLS, Target
from exporter.domains.dane import DANEStatus, MXDANE
from exporter.domains.dnssec import DNSSECStatus
from exporter.service.store import ResultStores
from exporter.records.tlsa import MatchingType, Selector, Usage
from exporter.results import HostResult
from exporter.service.scheduler import Scheduler
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter_process import sample_value
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, MX2_GOOD, IssuedChain, dane_credential, issue_chain
from tests.realservers import free_port
from tests.realservers.postfix import (
    INTERNAL_SERVICES,
    PostfixInstance,
    create_instance_directories,
    instance_main_cf,
    start_postfix,
    stop_postfix,
)

pytestmark = pytest.mark.integration

MX1, MX2 = "mx1.good.test", "mx2.good.test"


@dataclass(frozen=True)
class Listener:
    """What a Postfix smtpd presents, and where."""

    chain: IssuedChain
    addresses: tuple[str, ...]
    port: int


def _write_credential(directory: Path, name: str, chain: IssuedChain) -> tuple[Path, Path]:
    """The chain (leaf first) and the leaf's key as PEM files, as Postfix reads them."""
    chain_file, key_file = directory / f"{name}.chain.pem", directory / f"{name}.key"
    chain_file.write_bytes(b"".join(
        x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in chain.presented))
    key_file.write_bytes(chain.leaf_key_pem)
    key_file.chmod(0o600)
    return chain_file, key_file


@pytest.fixture(scope="module")
def listeners(realservers_dir: Path) -> Iterator[dict[str, Listener]]:
    workdir = realservers_dir / "postfix-dane"
    config_dir, queue_dir, _ = create_instance_directories(workdir)
    listeners = {
        "dane": Listener(dane_credential(), (MX1_GOOD, MX2_GOOD), free_port(MX1_GOOD)),
        "other": Listener(issue_chain(MX1), (MX1_GOOD,), free_port(MX1_GOOD)),
    }
    master = ""
    for name, listener in listeners.items():
        chain_file, key_file = _write_credential(workdir, name, listener.chain)
        for address in listener.addresses:
            master += (f"{address}:{listener.port} inet n - n - - smtpd\n"
                       f"  -o smtpd_tls_cert_file={chain_file}\n  -o smtpd_tls_key_file={key_file}\n")
    (config_dir / "main.cf").write_text(instance_main_cf(workdir, MX1) + "smtpd_tls_security_level = may\n")
    (config_dir / "master.cf").write_text(master + INTERNAL_SERVICES)
    instance = PostfixInstance(config_dir=config_dir, queue_dir=queue_dir, maillog=workdir / "maillog", endpoints={})
    try:
        start_postfix(instance, ((address, listener.port) for listener in listeners.values()
                                 for address in listener.addresses))
        yield listeners
    finally:
        stop_postfix(instance)


@dataclass(frozen=True)
class Run:
    probes: dict[str, HostResult]                 # by MX host
    chains: dict[str, dict[str, tuple[tuple[bytes, ...], ...]] | None]   # MX host -> {address: the chains its probe got}
    dane: dict[str, MXDANE]                        # by MX host
    findings: set[tuple[str, str]]                 # (code, message) of the DANE findings
    samples: list                                  # what /metrics shows, parsed


async def probe_mx_then_check_domain(port: int) -> Run:
    """Probe the MX hosts of good.test with an SMTP module on `port`, then check good.test,
    through the exporter's scheduler and result exposition."""
    module = Module("smtp-dane-test", MailProtocol.SMTP, port, StartTLS.REQUIRED, timeout=5.0, interval=3600.0)
    config = Config(
        # The domain check starts jobs for the MX hosts it discovers; an hour's jitter keeps
        # them quiet (one that ran anyway would only probe the same listener again).
        global_=GlobalSettings(interval=3600.0, jitter=3600.0),
        dns=running_dns_lab().resolver,
        domain_checks=DomainCheckSettings(mx_module=module.name),
        modules=MappingProxyType({module.name: module}),
    )
    results = ResultStores()
    scheduler = Scheduler(results, ExporterMetrics(CollectorRegistry()))
    scheduler.apply(config)
    try:
        probes = {host: await scheduler.run_once(Target(host, port, module.name), module) for host in (MX1, MX2)}
        result = await scheduler.check_once(Domain("good.test"))
    finally:
        await scheduler.stop()
    assert result is not None
    samples = [s for family in text_string_to_metric_families(b"".join(results.exposition_chunks()).decode()) for s in family.samples]
    return Run(
        probes=probes,
        chains={host: scheduler.mx_chains(host) for host in (MX1, MX2)},
        dane={host.mx: host for host in result.dane},
        findings={(f.code, f.message) for f in result.findings if f.code.startswith("dane_")},
        samples=samples,
    )


def dane_sample(run: Run, name: str, mx: str) -> float | None:
    return sample_value(run.samples, name, domain="good.test", mx=mx)


def _spki_sha256(cert_der: bytes) -> bytes:
    spki = x509.load_der_x509_certificate(cert_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


async def test_tlsa_records_authenticate_the_chain_postfix_presents(listeners):
    run = await probe_mx_then_check_domain(listeners["dane"].port)
    # The probe got exactly what Postfix was given, from both MX hosts (mx1's AAAA, ::1, has
    # no listener on that port: no chain there).
    [presented] = run.chains[MX1][MX1_GOOD]
    assert run.chains == {MX1: {MX1_GOOD: (presented,)}, MX2: {MX2_GOOD: (presented,)}}, run.probes
    assert presented == dane_credential().presented
    mx1 = run.dane[MX1]
    assert (mx1.dnssec, mx1.tlsa_records, mx1.evaluation.status) == (DNSSECStatus.SECURE, 2, DANEStatus.MATCH)
    # Each record matches on its own: DANE-EE by the leaf's key, DANE-TA by the CA certificate.
    assert {(r.usage, r.selector, r.matching_type, r.data) for r in mx1.evaluation.matching} == {
        (Usage.DANE_EE, Selector.SPKI, MatchingType.SHA256, _spki_sha256(presented[0])),
        (Usage.DANE_TA, Selector.CERT, MatchingType.SHA256, hashlib.sha256(presented[1]).digest()),
    }
    assert (dane_sample(run, "mailsec_dane_valid", MX1), dane_sample(run, "mailsec_dane_tlsa_records", MX1)) == (1, 2)


async def test_a_dane_ta_record_needs_a_leaf_that_names_the_mx_host(listeners):
    run = await probe_mx_then_check_domain(listeners["dane"].port)
    # mx2's record is the hash of the CA Postfix sends, but the leaf names mx1.
    mx2 = run.dane[MX2]
    assert (mx2.dnssec, mx2.tlsa_records, mx2.evaluation.status) == (DNSSECStatus.SECURE, 1, DANEStatus.NO_MATCH)
    assert mx2.records[0].data == hashlib.sha256(run.chains[MX2][MX2_GOOD][0][1]).digest()
    assert (dane_sample(run, "mailsec_dane_valid", MX2), dane_sample(run, "mailsec_dane_tlsa_records", MX2)) == (0, 1)
    assert {code for code, message in run.findings if "_25._tcp.mx2.good.test" in message} == {"dane_no_match"}


async def test_tlsa_records_do_not_authenticate_another_certificate(listeners):
    run = await probe_mx_then_check_domain(listeners["other"].port)
    assert run.chains[MX1] == {MX1_GOOD: (listeners["other"].chain.presented,)}, run.probes[MX1]
    # Nothing listens on mx2 at that port: no chain, so no DANE verdict for it.
    assert run.chains[MX2] == {} and run.dane[MX2].evaluation is None
    mx1 = run.dane[MX1]
    assert (mx1.dnssec, mx1.tlsa_records, mx1.evaluation.status) == (DNSSECStatus.SECURE, 2, DANEStatus.NO_MATCH)
    assert mx1.evaluation.matching == ()
    assert (dane_sample(run, "mailsec_dane_valid", MX1), dane_sample(run, "mailsec_dane_tlsa_records", MX1)) == (0, 2)
    assert dane_sample(run, "mailsec_dane_valid", MX2) is None
    assert {code for code, _ in run.findings} == {"dane_no_match"}
