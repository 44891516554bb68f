"""A worker host with nothing but the wheel: `posterq worker` from a fresh environment, outside the
checkout, serves a job that the API takes, with every module imported from that environment."""

import subprocess

import pytest
from harness import all_results, assert_exactly_once, settings_env, wait_for_job
from samples import poster_bytes
from wheels import build_wheel, copy_tree, outside_env, pip_into, run, scratch_venv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory):
    """The python of a fresh environment holding only the wheel of this tree."""
    wheel = build_wheel(copy_tree(tmp_path_factory.mktemp("tree")), tmp_path_factory.mktemp("wheel"))
    python = scratch_venv(tmp_path_factory.mktemp("venv") / "venv")
    pip_into(python, wheel)
    return python


def test_the_installed_worker_imports_only_from_its_environment(wheel_python, tmp_path):
    modules = "posterq, posterq.api, posterq.worker.celery_app, posterq.worker.tasks, posterq.training"
    files = run(wheel_python, "-c", f"import {modules}; print('\\n'.join(m.__file__ for m in ({modules})))",
                cwd=tmp_path, env=outside_env()).stdout.split()
    venv = wheel_python.parent.parent.resolve()
    assert files and all(str(venv) in file for file in files), files
    # Installed, there is no top-level api or worker to collide with another project's.
    probe = "import importlib.util as u; print(u.find_spec('api'), u.find_spec('worker'))"
    absent = run(wheel_python, "-c", probe, cwd=tmp_path, env=outside_env()).stdout.split()
    assert absent == ["None", "None"]


def test_a_worker_started_from_the_wheel_serves_a_job(wheel_python, service_settings, api, store, tmp_path):
    hostname = "wheel@test"
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [wheel_python.parent / "posterq", "worker", "--concurrency", "1", "--hostname", hostname],
            cwd=tmp_path, env={**outside_env(), **settings_env(service_settings)}, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        files = [("files", (f"p{n}.jpg", poster_bytes(n), "image/jpeg")) for n in range(5)]
        job_id = api.post("/jobs", files=files).json()["id"]
        job = wait_for_job(api.url, job_id, timeout=120, explain=lambda: log.read_text(errors="replace"))
        rows = all_results(api.url, job_id, job["total"])
        assert_exactly_once(job, rows, total=5)
        assert {row["worker"] for row in rows} == {hostname}
        assert hostname in store.stats.workers()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
