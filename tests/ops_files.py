"""The ops/ files as the tests read them: the alert rules, the dashboard's PromQL, and the metric names
an expression uses.

Tests import these directly (`from ops_files import RULES, metric_names`): tests/test_ops.py checks
the files with promtool, tests/service/test_ops.py against a live API and a real Prometheus.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULES_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "posterq-dashboard.json"
#: What the dashboard's Grafana variables stand for when its queries run outside Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": "posterq"}
#: Series Prometheus makes itself at each scrape: the rules may name them though /metrics never does.
SCRAPE_SERIES = frozenset({"up"})

# What is not a metric's name in PromQL: label matchers, ranges, the label lists of grouping and
# vector matching, strings, and the words of the language itself.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
                       "quantile", "count_values", "group", "and", "or", "unless", "bool", "offset", "by",
                       "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"})


def binary(name: str) -> str:
    """The path of one of Prometheus's programs (prometheus, promtool); the test fails without it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y --no-install-recommends prometheus "
                    "(Debian's package; .ci/run installs it)", pytrace=False)
    return path


def rules() -> list[dict]:
    """Every alert rule of ops/prometheus/alerts.yml."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    """The Grafana dashboard, as its JSON reads."""
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> list[str]:
    """Every query of the dashboard's panels, its Grafana variables replaced (GRAFANA_VARIABLES)."""
    queries = [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", ())]
    for variable, value in GRAFANA_VARIABLES.items():
        queries = [query.replace(variable, value) for query in queries]
    return queries


def expressions() -> list[str]:
    """Every PromQL expression of ops/: the alert rules' and the dashboard's."""
    return [rule["expr"] for rule in rules()] + dashboard_expressions()


def metric_names(expr: str) -> set[str]:
    """The metrics an expression selects by name (a function's or operator's name is not one)."""
    text = _STRING.sub('""', expr)  # first: a label's value may hold braces or brackets
    for pattern in (_MATCHERS, _RANGE, _LABEL_LIST):
        text = pattern.sub(" ", text)
    return {match.group() for match in _WORD.finditer(text)
            if match.group().lower() not in _KEYWORDS and not text[match.end():].lstrip().startswith("(")}
