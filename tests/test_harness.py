"""tests/harness.py, the harness the service tests and bench/ stand on: its checks catch what they claim."""

import json

import pytest
from commands import running
from harness import (
    AppServer,
    ServiceProcess,
    assert_exactly_once,
    exactly_once_problems,
    free_port,
    is_final,
    listening,
    wait_for_job,
)
from werkzeug.wrappers import Request, Response

GOOD = {"status": "done", "total": 3, "done": 2, "failed": 1}
ROWS = [{"index": 0, "status": "ok"}, {"index": 1, "status": "error"}, {"index": 2, "status": "ok"}]


def test_a_job_with_each_poster_once_passes():
    assert exactly_once_problems(GOOD, ROWS, total=3) == []
    assert_exactly_once(GOOD, ROWS)


@pytest.mark.parametrize("job, rows, total, problem", [
    ({**GOOD, "status": "failed"}, ROWS, None, "not done"),
    (GOOD, ROWS, 4, "expected 4"),
    ({**GOOD, "done": 3}, ROWS, None, "result rows"),  # counted twice
    (GOOD, ROWS[:2], None, "result rows"),  # a poster without a result
    (GOOD, [ROWS[0], ROWS[1], ROWS[1]], None, "indices"),  # one twice, one never
    (GOOD, [*ROWS[:2], {"index": 2, "status": "pending"}], None, "neither ok nor error"),
])
def test_each_way_of_breaking_exactly_once_is_caught(job, rows, total, problem):
    problems = exactly_once_problems(job, rows, total)
    assert any(problem in text for text in problems), problems
    with pytest.raises(AssertionError, match=problem):
        assert_exactly_once(job, rows, total)


def test_final_statuses():
    assert [is_final({"status": s}) for s in ("queued", "running", "done", "failed", "cancelled")] == [
        False, False, True, True, True]


def test_free_port_keeps_a_preferred_port_only_when_it_is_free():
    with AppServer(_jobs_app([])) as busy:
        taken = int(busy.url.rsplit(":", 1)[1])
        assert listening(taken) and free_port(taken) != taken
    spare = free_port()
    assert not listening(spare) and free_port(spare) == spare


def test_a_service_process_runs_the_code_of_its_source_root_not_the_editable_install(tmp_path):
    # As bench.fairness runs a recorded commit's service from a git worktree of it.
    package = tmp_path / "posterq"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "where.py").write_text("import os, posterq\nprint(posterq.__file__, os.getcwd())\n")
    process = ServiceProcess([], None, tmp_path / "where.log", module="posterq.where", source_root=tmp_path)
    process.process.wait(timeout=60)
    process.stop()
    assert process.log().split() == [str(package / "__init__.py"), str(tmp_path)]


def _jobs_app(answers: list[tuple[int, dict]]):
    """GET /jobs/<id> answers each of `answers` in turn, then the last one again."""
    seen = []

    @Request.application
    def app(request):
        seen.append(dict(request.args))
        status, body = answers[min(len(seen), len(answers)) - 1]
        return Response(json.dumps(body), status, {"Content-Type": "application/json"})

    app.seen = seen
    return app


def test_wait_for_job_polls_until_final_and_rides_out_a_restart_only_when_asked():
    job = {"status": "running", "total": 1, "done": 0, "failed": 0}
    answers = [(200, job), (503, {"error": {"code": "unavailable"}}), (200, {**job, "status": "done"})]
    with AppServer(_jobs_app(answers)) as server:
        done = wait_for_job(server.url, "j1", interval=0.01, wait=5, ride_out=True, http=server.http)
        assert done["status"] == "done" and server.app.seen[0] == {"limit": "1000", "wait": "5"}
    with AppServer(_jobs_app(answers)) as server, pytest.raises(Exception, match="503"):
        wait_for_job(server.url, "j1", interval=0.01)
    with AppServer(_jobs_app(answers[:1])) as server, pytest.raises(AssertionError, match="running"):
        wait_for_job(server.url, "j1", timeout=0.2, interval=0.01, explain=lambda: "the logs")


def test_running_closes_its_pipes_and_reaps_its_process_when_the_test_fails():
    # Left open, the pipes' ResourceWarning would fail whichever later test the garbage collector
    # happened to run in.
    with pytest.raises(RuntimeError), running("--help") as process:
        raise RuntimeError("a test that fails before interrupt()")
    assert process.stdout.closed and process.stderr.closed and process.returncode is not None
