"""Operations that plug in (issue 25, item 6), with real processes: the figures the alert rules need
are in /metrics, every query of ops/ names only metrics a live API exports, and a real Prometheus
(Debian's binary) that scrapes a live API runs every query and fires "no live worker" once the last
worker stops.

    .venv/bin/python -m pytest -m ops tests

Polls wait generously for each event (a scrape, an evaluation, a heartbeat gone): a slow machine
takes longer, never fails.
"""

import secrets
import subprocess
import time

import pytest
import redis
import requests
import yaml
from harness import RedisServer, free_port
from ops_files import RULES, SCRAPE_SERIES, binary, dashboard_expressions, expressions, metric_names
from prometheus_client.parser import text_string_to_metric_families
from samples import poster_bytes

pytestmark = pytest.mark.ops

#: The alert the test sees fire, and the wait before it fires in the test's copy of the rules.
NO_WORKER = "PosterqNoLiveWorker"
NO_WORKER_FOR = "3s"
#: How long a poll waits for one event: far more than any takes on a busy machine.
PATIENCE = 120
# The exposition's sample names of each family type, from the family's name.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _samples(response: requests.Response) -> dict[tuple[str, tuple], float]:
    """(name, sorted labels) -> value of every sample of a /metrics answer."""
    assert response.status_code == 200, response.text[:300]
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def _exported(response: requests.Response) -> set[str]:
    """Every sample name a /metrics answer's families stand for, those with no sample yet included."""
    assert response.status_code == 200, response.text[:300]
    return {family.name + suffix for family in text_string_to_metric_families(response.text)
            for suffix in SUFFIXES[family.type]}


def _poll(what: str, answer, timeout: float = PATIENCE):
    """answer() until it is truthy; its last value. Fails, saying what was awaited, after timeout."""
    deadline = time.monotonic() + timeout
    while not (value := answer()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert value, f"waited {timeout} s for {what}"
    return value


def test_metrics_say_the_database_redis_memory_and_the_models_workers_hold(api, spawn_worker, redis_client):
    worker = spawn_worker("ops-metrics@test")
    model = _poll("the worker's heartbeat", lambda: api.get("/models").json()["models"])[0]["model"]
    samples = _samples(api.get("/metrics"))
    assert samples[("posterq_database_up", ())] == 1
    assert samples[("posterq_model_workers", (("model", model),))] == 1
    assert samples[("posterq_redis_memory_used_bytes", ())] > 0
    maxmemory = int(redis_client.config_get("maxmemory")["maxmemory"])
    assert samples[("posterq_redis_memory_max_bytes", ())] == maxmemory
    worker.stop()  # its heartbeat goes at once, or within its time to live after a SIGKILL
    _poll("the stopped worker's model to go", lambda: all(
        name != "posterq_model_workers" for name, _ in _samples(api.get("/metrics"))))


def test_a_database_down_is_a_figure_not_a_failed_scrape(make_api, service_settings):
    down = service_settings.replace(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing_here")
    samples = _samples(make_api(down).get("/metrics"))
    assert samples[("posterq_database_up", ())] == 0
    # The figures read from the database are left out; those of Redis are all there.
    assert ("posterq_queued_posters", ()) not in samples
    assert samples[("posterq_workers", ())] == 0 and ("posterq_queue_posters", ()) in samples


def test_redis_maxmemory_is_reported_and_left_out_where_info_is_refused(make_api, service_settings, tmp_path):
    maxmemory = 64 << 20
    server = RedisServer(tmp_path / "redis", "--maxmemory", str(maxmemory))
    server.start()
    try:
        samples = _samples(make_api(service_settings.replace(redis_url=server.url)).get("/metrics"))
        assert samples[("posterq_redis_memory_max_bytes", ())] == maxmemory
        assert 0 < samples[("posterq_redis_memory_used_bytes", ())] < maxmemory
        # A user whose ACL refuses INFO: the memory is not known, which is not zero.
        client = redis.Redis.from_url(server.url)
        client.acl_setuser("noinfo", enabled=True, passwords=["+secret"], keys=["*"], channels=["*"],
                           commands=["+@all", "-info"])
        client.close()
        refused = service_settings.replace(redis_url=server.url.replace("redis://", "redis://noinfo:secret@"))
        samples = _samples(make_api(refused).get("/metrics"))
        assert not any(name.startswith("posterq_redis_memory") for name, _ in samples)
        assert ("posterq_workers", ()) in samples
    finally:
        server.stop()


def test_posters_waiting_for_a_model_no_worker_holds_are_counted(make_api, service_settings):
    api = make_api(service_settings.replace(models="ghost@1.0"))
    files = [("files", (f"p{i}.jpg", poster_bytes(i))) for i in range(3)]
    response = api.post("/jobs", files=files, data={"model": "ghost@1.0", "wait_for_model": "true"})
    assert response.status_code == 202, response.text
    samples = _samples(api.get("/metrics"))
    assert samples[("posterq_model_queued_posters", (("model", "ghost@1.0"),))] == 3
    assert samples[("posterq_model_unheld_queued_posters", (("model", "ghost@1.0"),))] == 3


def test_every_query_of_ops_names_only_metrics_the_api_exports(make_api, service_settings):
    # With API keys on, /metrics says the figures by key too (an operator's key reads it).
    operator = "ops-" + secrets.token_urlsafe(24)
    user = "user-" + secrets.token_urlsafe(24)
    api = make_api(service_settings.replace(api_keys=user, operator_keys=operator))
    exported = _exported(api.get("/metrics", headers={"Authorization": f"Bearer {operator}"}))
    for expr in expressions():
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names - exported - SCRAPE_SERIES == set(), f"{expr!r} names metrics /metrics does not export"


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping one API every second with a copy of the rules."""

    def __init__(self, folder, target: str, rules: list[dict]):
        self.url = f"http://127.0.0.1:{free_port()}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alerts.yml").write_text(yaml.safe_dump({"groups": [{"name": "posterq", "rules": rules}]}))
        (folder / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "posterq", "static_configs": [{"targets": [target]}]}]}))
        self.log_path = folder / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address={self.url[7:]}"],
                stdout=log, stderr=subprocess.STDOUT)
        _poll(f"prometheus at {self.url} to be ready (log: {self.log_path})", self._ready)

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text()[-3000:]
        try:
            return requests.get(self.url + "/-/ready", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def api(self, path: str, **params) -> dict:
        """The data of one answer of Prometheus's HTTP API; an error answer fails the test."""
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30).json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def rule(self, name: str) -> dict:
        """One alert rule as /api/v1/rules reports it: its state, health, last evaluation."""
        groups = self.api("rules")["groups"]
        return next(rule for group in groups for rule in group["rules"] if rule["name"] == name)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def prometheus(api, tmp_path):
    """A real Prometheus scraping the test API with the rules of ops/; "no live worker" waits seconds."""
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    for rule in rules:
        if rule["alert"] == NO_WORKER:
            rule["for"] = NO_WORKER_FOR
    server = Prometheus(tmp_path / "prometheus", api.url.removeprefix("http://"), rules)
    yield server
    server.stop()


def _next_evaluation(prometheus: Prometheus) -> dict:
    """The "no live worker" rule after its next evaluation (one that starts after this call)."""
    seen = prometheus.rule(NO_WORKER)["lastEvaluation"]

    def evaluated():
        rule = prometheus.rule(NO_WORKER)
        return rule if rule["lastEvaluation"] != seen else None

    return _poll("the rules' next evaluation", evaluated)


def _live_workers(prometheus: Prometheus) -> float:
    result = prometheus.api("query", query='max(posterq_workers{job="posterq"})')["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _alert_states(prometheus: Prometheus) -> set[str]:
    return {alert["state"] for alert in prometheus.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == NO_WORKER}


def test_prometheus_fires_no_live_worker_once_the_worker_stops(prometheus, spawn_worker_with,
                                                               service_settings):
    # A heartbeat that lives 6 s: a busy machine never lets it lapse while the worker runs.
    worker = spawn_worker_with("ops-alert@test", service_settings.replace(heartbeat_interval=2))
    _poll("Prometheus to scrape the live worker", lambda: _live_workers(prometheus) >= 1)
    # Evaluations after that scrape: the rule is quiet while the worker lives. The evaluation that
    # runs as the poll ends may still be on the scrape before it: the next ones are not.
    _next_evaluation(prometheus)
    for _ in range(3):
        rule = _next_evaluation(prometheus)
        assert (rule["health"], rule["state"]) == ("ok", "inactive"), rule
        assert _alert_states(prometheus) == set()
    worker.stop()
    _poll(f"{NO_WORKER} to fire", lambda: _alert_states(prometheus) == {"firing"})
    assert prometheus.rule(NO_WORKER)["state"] == "firing"


def test_prometheus_answers_every_query_of_the_dashboard_and_the_rules(prometheus, spawn_worker, api):
    spawn_worker("ops-queries@test")
    job = api.post("/jobs", files=[("files", ("a.jpg", poster_bytes(1)))]).json()
    assert api.wait(job["id"])["done"] == 1
    # Two scrapes since the poster was classified (its outcome's series is new), so that rates have
    # two points to go on.
    scraped = "count_over_time(posterq_posters_total[1m]) >= 2"
    _poll("two scrapes of the finished job", lambda: prometheus.api("query", query=scraped)["result"])
    for expr in expressions():
        prometheus.api("query", query=expr)  # an error answer fails
    shown = prometheus.api("query", query=dashboard_expressions()[1])["result"]
    assert shown, f"{dashboard_expressions()[1]!r} shows nothing after a poster was classified"
