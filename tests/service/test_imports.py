"""The API never loads TensorFlow or LiteRT; the workers never load TensorFlow; names load no Redis."""

import subprocess
import sys

import pytest

CHECK = ("import sys, {module}; bad = [m for m in {banned!r} if m in sys.modules]; "
         "print(bad); sys.exit(bool(bad))")


@pytest.mark.parametrize("module, banned", [
    ("api", ["tensorflow", "ai_edge_litert"]),
    ("api.jobs", ["tensorflow", "ai_edge_litert"]),
    ("posterq.jobs.store", ["tensorflow", "ai_edge_litert"]),
    ("posterq.submit_cli", ["tensorflow", "ai_edge_litert"]),
    ("worker.tasks", ["tensorflow"]),
    # Statuses and key names, the HTTP client and the API's request parsing need no Redis client.
    ("posterq.jobs.schema", ["redis", "celery"]),
    ("posterq.client", ["redis", "celery"]),
    ("api.intake", ["redis", "celery", "ai_edge_litert"]),
])
def test_imports_stay_light(module, banned):
    done = subprocess.run([sys.executable, "-c", CHECK.format(module=module, banned=banned)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
