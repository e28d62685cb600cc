"""The alert rules and Grafana dashboards in dashboards/: promtool accepts them, every alert is
unit-tested, every query parses and names only metrics that docs/metrics.md documents, and
the dashboards have the shape Grafana 10 imports."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
DASHBOARDS = ROOT / "dashboards"
ALERTS = DASHBOARDS / "alerts.yml"
RULE_TESTS = sorted((DASHBOARDS / "tests").glob("*.yml"))
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
METRICS_DOC = ROOT / "docs" / "metrics.md"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)

# ---------------------------------------------------------------------------------------------
# Pure helpers


def documented_metrics(doc: str) -> set[str]:
    """Metric names a query may use: each `### mailsec_...` family, plus the _bucket, _sum and
    _count series of the families documented as histograms."""
    names = set()
    for name, body in re.findall(r"^### (mailsec_[a-z0-9_]+)\s*\n(.*?)(?=^#|\Z)", doc, re.MULTILINE | re.DOTALL):
        names.add(name)
        if body.lstrip().startswith("histogram"):
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


# Prometheus's own series that the rules may use besides the exporter's.
PROMETHEUS_METRICS = {"up"}

_STRING_LITERALS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# An identifier not preceded by a word character or dot (so not the `e3` of `1e3` nor the
# `m` of `5m`) and not followed by `(` (so not a function or an aggregation).
_IDENTIFIERS = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (written as bare names, as ours are)."""
    text = _STRING_LITERALS.sub('""', expr)
    for pattern in (_LABEL_MATCHERS, _RANGES, _LABEL_LISTS):
        text = pattern.sub(" ", text)
    return {name for name in _IDENTIFIERS.findall(text) if name.lower() not in _KEYWORDS}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables by values Prometheus accepts, to parse a panel's query."""
    expr = re.sub(r"\$__(?:rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", "example", expr)


def all_panels(panels: list[dict]) -> list[dict]:
    """Panels, including those nested in collapsed rows."""
    return [p for panel in panels for p in (panel, *all_panels(panel.get("panels", [])))]


def overlapping(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


@pytest.mark.parametrize(
    "expr, names",
    [
        ("up", {"up"}),
        ('mailsec_cert_key_size{key_type="rsa"} < 2048', {"mailsec_cert_key_size"}),
        ("mailsec_cert_not_after_timestamp_seconds - time() < 21 * 86400", {"mailsec_cert_not_after_timestamp_seconds"}),
        (
            'sum by (le, module) (rate(mailsec_exporter_probe_duration_seconds_bucket{module=~"a|b"}[$__rate_interval]))',
            {"mailsec_exporter_probe_duration_seconds_bucket"},
        ),
        (
            "a == 0 unless on (job, instance, target, module) b{reason=\"x\"}",
            {"a", "b"},
        ),
        ("x * on (target) group_left (subject, issuer) y", {"x", "y"}),
        ("x * on (target) group_left y", {"x", "y"}),
        ('count(x{l="metric_in_a_string"} offset 5m) or vector(1e3)', {"x"}),
        ("histogram_quantile(0.99, sum(rate(h_bucket[5m])) by (le))", {"h_bucket"}),
        ("max without (reason) (f) and bool g", {"f", "g"}),
    ],
)
def test_metric_names(expr, names):
    assert metric_names(expr) == names


def test_documented_metrics_include_histogram_series_only_for_histograms():
    doc = "### mailsec_a\ngauge. A.\n\n### mailsec_h_seconds\nhistogram, label `x`. H.\n## Section\n### mailsec_c_total\ncounter.\n"
    assert documented_metrics(doc) == {
        "mailsec_a",
        "mailsec_h_seconds",
        "mailsec_h_seconds_bucket",
        "mailsec_h_seconds_sum",
        "mailsec_h_seconds_count",
        "mailsec_c_total",
    }


@pytest.mark.parametrize(
    "expr, promql",
    [
        ('rate(x{m=~"$module"}[$__rate_interval])', 'rate(x{m=~"example"}[5m])'),
        ('x{t="${target}"}', 'x{t="example"}'),
        ("x", "x"),
    ],
)
def test_grafana_to_promql(expr, promql):
    assert grafana_to_promql(expr) == promql


# ---------------------------------------------------------------------------------------------
# The files


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) of every panel query of every dashboard."""
    return [
        (f"{path.name} panel {panel['id']} ({panel['title']}) {query['refId']}", query["expr"])
        for path in DASHBOARD_FILES
        for panel in all_panels(load_dashboard(path)["panels"])
        for query in panel.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str]]:
    """(where, selector) of the `label_values(selector, label)` of every query variable."""
    found = []
    for path in DASHBOARD_FILES:
        for variable in load_dashboard(path)["templating"]["list"]:
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
                assert match, f"{path.name} variable {variable['name']}: not label_values(selector, label)"
                found.append((f"{path.name} variable {variable['name']}", match.group(1)))
    return found


def test_the_files_exist():
    assert ALERTS.is_file() and RULE_TESTS
    assert {"mailsec-overview.json", "mailsec-endpoint.json"} <= {p.name for p in DASHBOARD_FILES}


def test_every_alert_has_a_severity_a_summary_and_a_description():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
        # Each names what it is about: an endpoint, a domain, a blocklist, or an exporter.
        for text in rule["annotations"].values():
            assert any(f"$labels.{label}" in text for label in ("target", "domain", "list", "instance")), rule["alert"]


def test_every_alert_and_severity_has_a_unit_test_where_it_fires():
    fired = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                fired.update((case["alertname"], alert["exp_labels"]["severity"]) for alert in case.get("exp_alerts") or [])
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert rules - fired == set(), "alert rules without a unit test expecting them to fire"


def test_alert_expressions_use_only_documented_metrics():
    known = documented_metrics(METRICS_DOC.read_text()) | PROMETHEUS_METRICS
    for rule in alert_rules():
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']}: undocumented {used - known}"


def test_dashboard_queries_use_only_documented_metrics():
    known = documented_metrics(METRICS_DOC.read_text())
    queries = dashboard_queries() + variable_queries()
    assert queries
    for where, expr in queries:
        used = metric_names(grafana_to_promql(expr))
        assert used, where
        assert used <= known, f"{where}: undocumented {used - known}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_has_the_shape_grafana_imports(path):
    board = load_dashboard(path)
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"] and board.get("id") is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    datasource = [v for v in variables.values() if v["type"] == "datasource"]
    assert len(datasource) == 1 and datasource[0]["query"] == "prometheus"
    datasource_ref = {"type": "prometheus", "uid": "${" + datasource[0]["name"] + "}"}

    panels = all_panels(board["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    grid = [p["gridPos"] for p in panels]
    assert all(g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 for g in grid)
    assert not [(a, b) for i, a in enumerate(grid) for b in grid[i + 1 :] if overlapping(a, b)], "panels overlap"

    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel["id"]
        assert panel["datasource"] == datasource_ref, panel["id"]
        refs = [q["refId"] for q in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["id"]
        for query in panel["targets"]:
            assert query["datasource"] == datasource_ref, panel["id"]
            for name in re.findall(r"\$\{?(\w+)", query["expr"]):
                assert name.startswith("__") or name in variables, f"panel {panel['id']}: undefined ${name}"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == datasource_ref


# ---------------------------------------------------------------------------------------------
# promtool


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


@needs_promtool
def test_promtool_check_rules():
    run = promtool("check", "rules", str(ALERTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in run.stdout


@needs_promtool
def test_promtool_rule_unit_tests_pass():
    run = promtool("test", "rules", *map(str, RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(RULE_TESTS), run.stdout


@needs_promtool
def test_every_dashboard_query_parses(tmp_path):
    """Each panel query, its variables replaced, as a recording rule that promtool must accept."""
    queries = dashboard_queries()
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)} for i, (_, expr) in enumerate(queries)]
    rules_file = tmp_path / "dashboard_queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    run = promtool("check", "rules", str(rules_file))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules)} rules found" in run.stdout
