from types import MappingProxyType

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics.endpoint import ENDPOINT_METRICS, add_endpoint_samples
from exporter.service.store import ResultStores
from exporter.metrics.specs import Families
from exporter.config import Target
from exporter.results import FailureReason

from results_factory import NOT_AFTER, NOT_BEFORE, failed_result, host_result, tls_result


def scrape(results: ResultStores) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for family in text_string_to_metric_families(b"".join(results.exposition_chunks()).decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    matches = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_successful_tls_result_becomes_metrics():
    results = ResultStores()
    store = results.endpoints
    target = Target("127.0.0.1", 25, "smtp", MappingProxyType({"site": "paris"}))
    store.put(target.key, target, host_result(tls_result()))
    samples = scrape(results)
    labels = {"target": "127.0.0.1:25", "module": "smtp", "site": "paris"}
    assert value(samples, "mailsec_probe_success", **labels) == 1
    assert value(samples, "mailsec_cert_not_after_timestamp_seconds", **labels) == NOT_AFTER.timestamp()
    assert value(samples, "mailsec_cert_not_before_timestamp_seconds", **labels) == NOT_BEFORE.timestamp()
    assert value(samples, "mailsec_cert_key_size", key_type="ec", **labels) == 256
    assert value(samples, "mailsec_cert_chain_valid", **labels) == 0
    assert value(samples, "mailsec_cert_self_signed", **labels) == 1
    assert value(samples, "mailsec_tls_version_info", version="TLSv1.3", **labels) == 1
    assert value(samples, "mailsec_probe_phase_duration_seconds", phase="tls_handshake", **labels) == 0.02
    assert value(samples, "mailsec_cert_info", serial="1234abcd", sans="mail.example.test", **labels) == 1
    assert not [key for key in samples if key[0] == "mailsec_probe_failure_info"]


def test_failed_result_has_reason_and_no_tls_metrics():
    results = ResultStores()
    store = results.endpoints
    target = Target("mx.example.test", 25, "smtp")
    store.put(target.key, target, host_result(failed_result(FailureReason.STARTTLS_NOT_OFFERED)))
    samples = scrape(results)
    assert value(samples, "mailsec_probe_success", target="mx.example.test:25") == 0
    assert value(samples, "mailsec_probe_failure_info", reason="starttls_not_offered") == 1
    assert not [key for key in samples if key[0].startswith("mailsec_cert_")]


def test_ipv6_target_label_is_bracketed():
    target = Target("::1", 993, "imaps")
    assert target.address == "[::1]:993"


def test_retain_drops_removed_targets_from_the_scrape():
    results = ResultStores()
    store = results.endpoints
    kept, removed = Target("a.test", 25, "smtp"), Target("b.test", 25, "smtp")
    store.put(kept.key, kept, host_result(tls_result()))
    store.put(removed.key, removed, host_result(tls_result()))
    store.retain([kept.key])
    targets = {dict(labels)["target"] for name, labels in scrape(results) if name == "mailsec_probe_success"}
    assert targets == {"a.test:25"}


def test_user_labels_cannot_collide_with_the_labels_the_collector_emits():
    from exporter.metrics.endpoint import ENDPOINT_METRICS
    from exporter.config import RESERVED_LABELS

    emitted = {"target", "module"} | {label for spec in ENDPOINT_METRICS for label in spec.labels}
    assert emitted <= RESERVED_LABELS


class _OneResult:
    """prometheus_client's own rendering of the same samples, for comparison."""

    def __init__(self, target, result):
        self.target, self.result = target, result

    def collect(self):
        families = Families(ENDPOINT_METRICS)
        add_endpoint_samples(families, self.target, self.result)
        yield from families


def test_cached_rendering_is_byte_for_byte_what_prometheus_client_writes():
    target = Target("mx.example.test", 25, "smtp", MappingProxyType({"note": 'a "quoted"\\ value\nwith a newline'}))
    results = ResultStores()
    store = results.endpoints
    store.put(target.key, target, host_result(tls_result()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OneResult(target, store.get(target.key).result))
    assert b"".join(results.exposition_chunks()) == generate_latest(registry)


def test_a_replaced_result_is_rendered_anew_and_a_removed_one_disappears():
    results = ResultStores()
    store = results.endpoints
    a, b = Target("a.test", 25, "smtp"), Target("b.test", 25, "smtp")
    store.put(a.key, a, host_result(tls_result()))
    store.put(b.key, b, host_result(tls_result()))
    assert "a.test" in b"".join(results.exposition_chunks()).decode()
    store.put(a.key, a, host_result(failed_result(FailureReason.TIMEOUT)))
    second = b"".join(results.exposition_chunks()).decode()
    assert ('mailsec_probe_failure_info{address="127.0.0.1",family="ipv4",module="smtp",reason="timeout",'
            'target="a.test:25"} 1.0') in second
    store.retain([a.key])
    assert "b.test" not in b"".join(results.exposition_chunks()).decode()
