"""How a closed set of values becomes a gauge's number, for every family that encodes one.

Higher is better or stricter wherever an order exists, so that an alert reads as "< 2"
("worse than sufficient", "weaker than quarantine"); docs/metrics.md gives each table.
"""

from __future__ import annotations

from ..domains.dnssec import DNSSECStatus
from ..records.dmarc import Policy
from ..records.mtasts import STSMode
from ..tlswire.grading import Class

GRADE_VALUES = {Class.GOOD: 3.0, Class.SUFFICIENT: 2.0, Class.PHASE_OUT: 1.0, Class.INSUFFICIENT: 0.0}
POLICY_VALUES = {Policy.NONE: 0.0, Policy.QUARANTINE: 1.0, Policy.REJECT: 2.0}
MODE_VALUES = {STSMode.NONE: 0.0, STSMode.TESTING: 1.0, STSMode.ENFORCE: 2.0}
DNSSEC_VALUES = {DNSSECStatus.BOGUS: -1.0, DNSSECStatus.INSECURE: 0.0, DNSSECStatus.SECURE: 1.0}
