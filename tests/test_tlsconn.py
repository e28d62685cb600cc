"""TLS version labels: one spelling everywhere ("TLSv1.0", not OpenSSL's "TLSv1")."""

from types import SimpleNamespace

import pytest

from exporter.config import TLS_VERSIONS
from exporter.probes.tlsconn import TLSStream


@pytest.mark.parametrize("openssl, label", [
    ("TLSv1", "TLSv1.0"), ("TLSv1.1", "TLSv1.1"), ("TLSv1.2", "TLSv1.2"), ("TLSv1.3", "TLSv1.3"),
])
def test_version_labels_match_the_config_and_scan_labels(openssl, label):
    stream = TLSStream(raw=None, sslobj=SimpleNamespace(version=lambda: openssl), incoming=None, outgoing=None)
    assert stream.version == label
    assert label in TLS_VERSIONS
