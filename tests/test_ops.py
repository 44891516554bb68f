"""The ops/ files check out with Prometheus's own promtool: the alert rules, their unit tests (every
rule fires, and does not), the example scrape config, and every query of the Grafana dashboard.

tests/service/test_ops.py runs them against a live API and a real Prometheus. Both fail (never skip)
where promtool is missing: .ci/run installs Debian's prometheus package.
"""

import subprocess

import pytest
import yaml
from ops_files import (
    DASHBOARD,
    RULES,
    RULES_TESTS,
    SCRAPE_CONFIG,
    binary,
    dashboard,
    dashboard_expressions,
    metric_names,
    rules,
)

pytestmark = pytest.mark.ops

SEVERITIES = {"critical", "warning"}
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def _promtool(*args: str) -> str:
    result = subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_promtool_passes_the_rules_their_unit_tests_and_the_scrape_config():
    assert f"SUCCESS: {len(rules())} rules found" in _promtool("check", "rules", str(RULES))
    assert "SUCCESS" in _promtool("test", "rules", str(RULES_TESTS))
    _promtool("check", "config", str(SCRAPE_CONFIG))


def test_every_rule_says_how_bad_what_and_why_and_waits_before_it_fires():
    for rule in rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule.get("for"), f"{rule['alert']} fires on one evaluation: a blip would page someone"


def test_every_rule_has_unit_tests_where_it_fires_and_where_it_does_not():
    firing, quiet = set(), set()
    for test in yaml.safe_load(RULES_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", ()):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - firing == set(), "rules never seen firing in alerts_test.yml"
    assert names - quiet == set(), "rules never seen quiet in alerts_test.yml"


def test_every_dashboard_query_parses(tmp_path):
    # promtool parses the expressions of recording rules: one per query.
    queries = dashboard_expressions()
    check = tmp_path / "dashboard-queries.yml"
    check.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": query} for i, query in enumerate(queries)]}]}))
    assert f"SUCCESS: {len(queries)} rules found" in _promtool("check", "rules", str(check))


def test_the_dashboard_imports_anywhere():
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] == "posterq"
    assert [(one["name"], one["type"], one["pluginId"]) for one in board["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")]
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    for panel in panels:
        sources = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
        assert all(source == DATASOURCE for source in sources), panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
    # The panels the issue asks for, by the metrics they show.
    shown = set().union(*(metric_names(query) for query in dashboard_expressions()))
    for metric in ("posterq_posters_total", "posterq_lane_queue_posters", "posterq_lane_queue_age_seconds",
                   "posterq_key_queue_posters", "posterq_workers", "posterq_batch_seconds_bucket",
                   "posterq_job_seconds_bucket", "posterq_redeliveries_total",
                   "posterq_sweep_given_back_total", "posterq_redis_memory_used_bytes",
                   "posterq_model_queued_posters"):
        assert metric in shown, f"{DASHBOARD.name} shows no {metric}"


def test_metric_names_are_told_from_labels_functions_and_words():
    expr = ('sum by (le) (rate(a_bucket{lane="}[x]", job=~"p.*"}[5m])) / on (job) group_left (model) b '
            'offset 5m > bool 1e3 and max without (instance) (c:recorded) unless histogram_quantile(0.5, d)')
    assert metric_names(expr) == {"a_bucket", "b", "c:recorded", "d"}
