"""Every address of a host, against real Postfix listeners behind one name in the test DNS
(Knot, validated by Unbound, which rotates the order of the A records it answers with).

- mx.pair.test has two A records. Postfix on the first presents the chain whose key the
  TLSA record names (zones.dane_credential()); on the second, another certificate: a
  partial renewal. Each address is judged on its own, so DANE fails for the host and the
  verdict names the second address, the same on every run whatever the answer order.
- mx6.pair.test has an A and an AAAA record (::1), both served by Postfix with the named
  certificate: both addresses probed, both match, the addresses agree.
- mx1.good.test's AAAA (::1) has no listener on the port: that address fails on its own
  (connection refused) while the IPv4 one answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, DomainCheckSettings, Domain, GlobalSettings, Module, MailProtocol, StartTLS, Target
from exporter.domains.dane import DANEStatus
from exporter.domains.report import host_findings
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.results import FailureReason
from exporter.service.scheduler import Scheduler
from exporter.service.store import ResultStores
from exporter_process import sample_value
from test_dane_realpostfix import _write_credential
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, PAIR_DUAL, PAIR_FIRST, PAIR_SECOND, dane_credential, issue_chain
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

PAIR, PAIR6, DUAL, GOOD_MX1 = "mx.pair.test", "mx6.pair.test", "mxdual.pair.test", "mx1.good.test"


@dataclass(frozen=True)
class Ports:
    every: int       # served on PAIR_FIRST, PAIR_SECOND, PAIR_DUAL and ::1
    ipv4_only: int   # served on MX1_GOOD only, not on ::1 (mx1.good.test's AAAA)


@pytest.fixture(scope="module")
def ports(realservers_dir: Path) -> Iterator[Ports]:
    workdir = realservers_dir / "postfix-addresses"
    config_dir, queue_dir, _ = create_instance_directories(workdir)
    ports = Ports(free_port(PAIR_FIRST), free_port(MX1_GOOD))
    named = _write_credential(workdir, "named", dane_credential())
    other = _write_credential(workdir, "other", issue_chain(PAIR))
    rsa_chain, rsa_key = _write_credential(workdir, "rsa", issue_chain(DUAL, leaf_key_type="rsa"))
    listeners = {(PAIR_FIRST, ports.every): named, (PAIR_SECOND, ports.every): other,
                 ("[::1]", ports.every): named, (MX1_GOOD, ports.ipv4_only): named}
    master = "".join(f"{address}:{port} inet n - n - - smtpd\n"
                     f"  -o smtpd_tls_cert_file={chain}\n  -o smtpd_tls_key_file={key}\n"
                     for (address, port), (chain, key) in listeners.items())
    # Both key types, as Postfix is often set up: the ECDSA one is the one TLSA names.
    master += (f"{PAIR_DUAL}:{ports.every} inet n - n - - smtpd\n"
               f"  -o smtpd_tls_cert_file={rsa_chain}\n  -o smtpd_tls_key_file={rsa_key}\n"
               f"  -o smtpd_tls_eccert_file={named[0]}\n  -o smtpd_tls_eckey_file={named[1]}\n")
    listeners[(PAIR_DUAL, ports.every)] = named
    (config_dir / "main.cf").write_text(instance_main_cf(workdir, PAIR) + "smtpd_tls_security_level = may\n"
                                        "inet_protocols = all\ninet_interfaces = 127.0.0.1, [::1]\n")
    (config_dir / "master.cf").write_text(master + INTERNAL_SERVICES)
    instance = PostfixInstance(config_dir=config_dir, queue_dir=queue_dir, maillog=workdir / "maillog", endpoints={})
    try:
        start_postfix(instance, ((address.strip("[]"), port) for address, port in listeners))
        yield ports
    finally:
        stop_postfix(instance)


def mx_scheduler(port: int) -> tuple[Module, ResultStores, Scheduler]:
    """A scheduler on the lab's DNS whose MX module speaks SMTP on `port`, with an hour's
    jitter so that the jobs it starts by itself stay quiet during a test."""
    module = Module("smtp-addresses-test", MailProtocol.SMTP, port, StartTLS.REQUIRED, timeout=5.0, interval=3600.0)
    config = Config(global_=GlobalSettings(interval=3600.0, jitter=3600.0), dns=running_dns_lab().resolver,
                    domain_checks=DomainCheckSettings(mx_module=module.name),
                    modules=MappingProxyType({module.name: module}))
    results = ResultStores()
    scheduler = Scheduler(results, ExporterMetrics(CollectorRegistry()))
    scheduler.apply(config)
    return module, results, scheduler


async def probe_and_check(port: int, domain: str, hosts: tuple[str, ...]):
    """As the exporter does: probe the MX hosts (every address), then check the domain,
    whose DANE uses the chains those probes got; the results and /metrics as parsed."""
    module, results, scheduler = mx_scheduler(port)
    try:
        probes = {host: await scheduler.run_once(Target(host, port, module.name), module) for host in hosts}
        checked = await scheduler.check_once(Domain(domain))
    finally:
        await scheduler.stop()
    samples = [s for family in text_string_to_metric_families(b"".join(results.exposition_chunks()).decode())
               for s in family.samples]
    return probes, checked, samples


async def test_a_server_with_an_rsa_and_an_ecdsa_certificate_must_match_tlsa_with_both(ports):
    """The scheduler's own path: the domain check finds TLSA records for mxdual, so the MX
    probe then asks each address for both certificates; the record names only the ECDSA
    key, so a sender given the RSA one would fail: DANE fails at that address."""
    module, results, scheduler = mx_scheduler(ports.every)
    try:
        await scheduler.check_once(Domain("pair.test"))        # discovers the MX hosts and their TLSA
        host = await scheduler.run_once(Target(DUAL, ports.every, module.name), module)
        checked = await scheduler.check_once(Domain("pair.test"))
    finally:
        await scheduler.stop()
    [address] = host.addresses
    [other] = address.other_chains
    assert {address.tls.leaf.key_type, other[0].key_type} == {"rsa", "ec"}
    dane = {mx.mx: mx for mx in checked.dane}[DUAL]
    assert [(a, o.status) for a, o in dane.by_address] == [(PAIR_DUAL, DANEStatus.NO_MATCH)]
    samples = [s for family in text_string_to_metric_families(b"".join(results.exposition_chunks()).decode())
               for s in family.samples]
    assert sample_value(samples, "mailsec_cert_other_key_type_not_after_timestamp_seconds",
                        target=f"{DUAL}:{ports.every}", key_type=other[0].key_type) == other[0].not_after


async def test_two_servers_behind_one_name_are_judged_one_by_one_and_never_flap(ports):
    port = ports.every
    verdicts = set()
    for _ in range(4):       # Unbound rotates the A records: the order differs between runs
        probes, checked, samples = await probe_and_check(port, "pair.test", (PAIR, PAIR6))
        pair = probes[PAIR]
        assert [r.address for r in pair.addresses] == [PAIR_FIRST, PAIR_SECOND]
        assert pair.success and pair.consistent is False
        dane = {host.mx: host for host in checked.dane}[PAIR]
        verdicts.add((dane.evaluation.status, tuple((a, o.status) for a, o in dane.by_address)))
        assert sample_value(samples, "mailsec_dane_valid", mx=PAIR, address=PAIR_FIRST) == 1
        assert sample_value(samples, "mailsec_dane_valid", mx=PAIR, address=PAIR_SECOND) == 0
        assert sample_value(samples, "mailsec_dane_domain_valid", domain="pair.test") == 0
        assert sample_value(samples, "mailsec_host_addresses_consistent", target=f"{PAIR}:{port}") == 0
        assert sample_value(samples, "mailsec_host_addresses", target=f"{PAIR}:{port}") == 2
        [no_match] = [f for f in checked.findings if f.code == "dane_no_match"]
        assert f"at {PAIR_SECOND}:" in no_match.message and PAIR_FIRST not in no_match.message
        assert "mx_addresses_disagree" in {f.code for f in host_findings(Target(PAIR, port, "smtp"), pair, 0.0)}
    assert verdicts == {(DANEStatus.NO_MATCH, ((PAIR_FIRST, DANEStatus.MATCH), (PAIR_SECOND, DANEStatus.NO_MATCH)))}


async def test_an_ipv4_and_an_ipv6_address_both_answer_and_agree(ports):
    port = ports.every
    probes, checked, samples = await probe_and_check(port, "pair.test", (PAIR, PAIR6))
    both = probes[PAIR6]
    assert [(r.address, r.success) for r in both.addresses] == [(PAIR_FIRST, True), ("::1", True)]
    assert both.consistent is True
    dane = {host.mx: host for host in checked.dane}[PAIR6]
    assert [(a, o.status) for a, o in dane.by_address] == [(PAIR_FIRST, DANEStatus.MATCH), ("::1", DANEStatus.MATCH)]
    assert sample_value(samples, "mailsec_probe_success", target=f"{PAIR6}:{port}", address="::1", family="ipv6") == 1


async def test_an_ipv6_address_without_a_listener_fails_on_its_own(ports):
    probes, _, samples = await probe_and_check(ports.ipv4_only, "good.test", (GOOD_MX1,))
    host = probes[GOOD_MX1]
    assert [(r.address, r.success, r.failure) for r in host.addresses] == [
        (MX1_GOOD, True, None), ("::1", False, FailureReason.CONNECTION_REFUSED)]
    target = f"{GOOD_MX1}:{ports.ipv4_only}"
    assert sample_value(samples, "mailsec_probe_success", target=target, family="ipv4") == 1
    assert sample_value(samples, "mailsec_probe_success", target=target, family="ipv6") == 0
    assert sample_value(samples, "mailsec_host_addresses_succeeded", target=target) == 1
    findings = host_findings(Target(GOOD_MX1, ports.ipv4_only, "smtp"), host, 0.0)
    assert "mx_ipv6_unreachable" in {f.code for f in findings}
