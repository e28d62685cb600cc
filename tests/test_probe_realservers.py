"""/probe for every module type against the real Postfix and Dovecot: the answer carries the
certificate the server was given."""

from __future__ import annotations

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter_process import running_app, sample_value
from mail_config import config_for

pytestmark = pytest.mark.integration

SCENARIOS = ["smtp-good", "submission-good", "smtps-good", "imap-good", "imaps-good", "pop3-good", "pop3s-good"]


@pytest.fixture
def config(tmp_path, mail_endpoints):
    settings = yaml.safe_load(config_for(mail_endpoints))
    settings["targets"] = []    # /probe only: the scheduler stays idle
    settings["probe"] = {"allowed_targets": ["127.0.0.0/8"]}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(settings))
    return path


async def test_probe_of_every_module_type(config, mail_endpoints):
    answers = {}
    async with running_app(config) as (_, client):
        for scenario in SCENARIOS:
            endpoint = mail_endpoints[scenario]
            response = await client.get("/probe", params={"target": f"{endpoint.host}:{endpoint.port}",
                                                          "module": scenario})
            assert response.status == 200
            answers[scenario] = [s for f in text_string_to_metric_families(await response.text()) for s in f.samples]
    for scenario, samples in answers.items():
        leaf = mail_endpoints[scenario].leaf
        assert sample_value(samples, "probe_success") == 1, scenario
        assert sample_value(samples, "mailsec_cert_not_after_timestamp_seconds") == leaf.not_valid_after_utc.timestamp()
        assert sample_value(samples, "mailsec_cert_chain_valid") == 1
        assert sample_value(samples, "mailsec_tls_version_info", version="TLSv1.3") == 1
