"""The mail-policy facts on the status page and in its JSON: verdicts, offered capabilities,
the names that disagree with what to fix, and escaping of names a server chose."""

from __future__ import annotations

import dataclasses

from exporter.probes.names import compare_names
from exporter.results import AuthMechanism, MailProtocol

from exporter_process import running_app
from results_factory import tls_result
from test_status_page import ScriptedProbe, populate, write_config


def policy_result():
    result = tls_result()
    # An EHLO reply is parsed as a host name only when it is one: markup never gets that far,
    # but the PTR names come from DNS and the certificate from the server.
    names = compare_names("mail.example.test ESMTP", "other.example.test", (("x<b>.test",), ()), result.tls.leaf)
    return dataclasses.replace(result, protocol=MailProtocol.SUBMISSION, starttls_enforced=False, open_relay=True,
                               names=names)   # probed at 127.0.0.1, the target


async def test_policy_table_and_json(tmp_path):
    probe = ScriptedProbe({2501: [policy_result()]})
    async with running_app(write_config(tmp_path, (2501,)), probe=probe) as (exporter, client):
        await populate(exporter)
        document = await (await client.get("/api/v1/status")).json()
        page = await (await client.get("/")).text()
    endpoint = document["endpoints"][0]
    [result] = endpoint["last_result"]["addresses"]
    assert result["protocol"] == "submission" and result["starttls_enforced"] is False and result["open_relay"] is True
    assert result["offered_after_tls"]["auth_mechanisms"] == sorted(
        m.value for m in (AuthMechanism.PLAIN, AuthMechanism.LOGIN))
    assert result["names"]["disagreeing"] == ["ehlo_cert", "ehlo_ptr", "greeting_ehlo", "greeting_ptr", "ptr_cert"]
    codes = {finding["code"] for finding in endpoint["policy_findings"][result["address"]]}
    assert codes == {"open_relay", "starttls_not_enforced", "name_no_fcrdns", "name_mismatch_greeting_ehlo",
                     "name_mismatch_ehlo_cert"}
    assert '<h2 id="policy">Mail policy</h2>' in page
    assert "greeting_ehlo" in page and "set the PTR of 127.0.0.1 to mail.example.test" in page
    assert "x<b>.test" not in page and "x&lt;b&gt;.test" in page
