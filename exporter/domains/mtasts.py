"""MTA-STS (RFC 8461): the TXT record at _mta-sts.<domain>, and the policy it announces.

When exactly one valid v=STSv1 record is published, the policy is fetched from
https://mta-sts.<domain>/.well-known/mta-sts.txt (`policy_fetch`) and parsed; then every
MX host must match one of its mx patterns (§4.1), or senders that enforce the policy will
not deliver to it. Without a valid record senders never fetch a policy, and neither do we.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..dnsclient import Resolver
from ..records.mtasts import MTASTSError, STSMode, STSPolicy, STSRecord, parse_sts_policy, parse_sts_record, select_sts_records
from .common import CheckFailure, CheckFailureReason, Finding, Severity, SingleRecord, check_single_record
from .mx import MXResult
from .policy_fetch import AddressAllowed, PolicyFetchError, fetch_policy, policy_url

SHORT_MAX_AGE_SECONDS = 86400   # below a day, a policy barely outlives an attacker's DNS spoofing



@dataclass(frozen=True)
class MTASTSResult:
    failure: CheckFailure | None                 # the TXT lookup could not be done
    lookup: SingleRecord[STSRecord] | None = None
    policy_failure: CheckFailure | None = None   # the announced policy could not be had
    policy: STSPolicy | None = None              # fetched and valid
    uncovered_mx: tuple[str, ...] | None = None  # MX hosts no pattern matches; None: not judged
    findings: tuple[Finding, ...] = ()

    @property
    def mx_covered(self) -> bool | None:
        return None if self.uncovered_mx is None else not self.uncovered_mx


async def check_mta_sts(
    domain: str, dns: Resolver, *, ca_file: str | None, timeout: float, address_allowed: AddressAllowed | None = None,
) -> MTASTSResult:
    """The record, then, when it announces one, the policy (MX coverage: `judge_mx_coverage`).
    `address_allowed`: see `fetch_policy` (None: any address of the policy host)."""
    record = await check_single_record(
        dns, f"_mta-sts.{domain}", select_sts_records, parse_sts_record, "MTA-STS",
        missing_code="mta_sts_missing",
        missing_fix="publish an MTA-STS policy and 'v=STSv1; id=...' to require TLS from senders",
        invalid_code="mta_sts_record_invalid",
        invalid_fix="publish exactly one 'v=STSv1; id=...' record (RFC 8461 §3.1)",
    )
    result = MTASTSResult(failure=record.failure, lookup=record.lookup, policy_failure=record.failure,
                          findings=record.findings)
    if record.lookup is None or not record.lookup.valid:
        return result
    try:
        policy = parse_sts_policy(await fetch_policy(domain, dns, ca_file=ca_file, timeout=timeout,
                                                     address_allowed=address_allowed))
    except PolicyFetchError as exc:
        return replace(result, policy_failure=exc.failure, findings=result.findings + (_unavailable(domain, exc.failure),))
    except MTASTSError as exc:
        failure = CheckFailure(CheckFailureReason.POLICY_INVALID, f"{policy_url(domain)}: {exc}")
        return replace(result, policy_failure=failure, findings=result.findings + (_unavailable(domain, failure),))
    return replace(result, policy=policy, findings=result.findings + tuple(_policy_findings(domain, policy)))


def judge_mx_coverage(result: MTASTSResult, mx: MXResult) -> MTASTSResult:
    """Which MX hosts the policy's patterns leave out (§4.1). Judged only for a policy in
    testing or enforce mode and a domain whose MX hosts are known."""
    policy = result.policy
    if policy is None or policy.mode is STSMode.NONE or mx.failure is not None or not mx.hosts:
        return result
    uncovered = tuple(host.name for host in mx.hosts if not policy.allows_mx(host.name))
    findings = tuple(
        Finding(
            Severity.ERROR if policy.mode is STSMode.ENFORCE else Severity.WARNING, "mta_sts_mx_not_covered",
            f"MX {name} matches no mx pattern of the MTA-STS policy ({', '.join(policy.mx)}): "
            + ("senders enforcing it will not deliver there" if policy.mode is STSMode.ENFORCE
               else "senders report a failure for it"),
            f"add 'mx: {name}' to the policy (and change the id of the _mta-sts record)",
        )
        for name in uncovered
    )
    return replace(result, uncovered_mx=uncovered, findings=result.findings + findings)


def _unavailable(domain: str, failure: CheckFailure) -> Finding:
    return Finding(
        Severity.ERROR, "mta_sts_policy_unavailable",
        f"the MTA-STS policy announced by _mta-sts.{domain} cannot be used ({failure.reason}): {failure.detail}",
        f"serve a valid policy at {policy_url(domain)}: status 200, Content-Type text/plain, "
        "a certificate valid for that name, no redirect",
    )


def _policy_findings(domain: str, policy: STSPolicy) -> list[Finding]:
    url = policy_url(domain)
    found = []
    if policy.mode is STSMode.NONE:
        found.append(Finding(Severity.WARNING, "mta_sts_mode_none", f"{url}: mode none, MTA-STS is withdrawn",
                             "set 'mode: enforce' (or 'testing'), or remove the _mta-sts record"))
    elif policy.mode is STSMode.TESTING:
        found.append(Finding(Severity.INFO, "mta_sts_testing", f"{url}: mode testing, senders deliver even without valid TLS",
                             "set 'mode: enforce' once TLS-RPT reports show no failures"))
    if policy.mode is not STSMode.NONE and policy.max_age < SHORT_MAX_AGE_SECONDS:
        found.append(Finding(Severity.WARNING, "mta_sts_max_age_short",
                             f"{url}: max_age {policy.max_age} s is under a day",
                             "set max_age to weeks, e.g. 'max_age: 1209600' (RFC 8461 §3.2)"))
    return found
