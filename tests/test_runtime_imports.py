"""What each entry point loads, in a fresh interpreter: the runtime never TensorFlow; the CLI, result rows
and file listing not even LiteRT; the API no model runtime; statuses, key names and the HTTP client no Redis;
`posterq label` and the workers no pandas (posterq.frames loads it only when asked for a DataFrame).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ["posterq", "posterq.cli", "posterq.pool", "posterq.results", "posterq.classifier",
           "posterq.labeller", "posterq.bundle", "posterq.imaging", "posterq.label_rule", "posterq.genres",
           "posterq.exceptions", "posterq.frames"]
MODEL = ["tensorflow", "keras", "ai_edge_litert"]


def loaded_after(modules: list[str], *calls: str) -> set[str]:
    """Top-level packages in sys.modules of a fresh interpreter after importing modules."""
    code = "; ".join([*(f"import {name}" for name in modules), *(call for call in calls if call),
                      "import sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"])
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


CASES = [
    (RUNTIME, "", ["tensorflow", "keras", "pandas"]),
    # Building the parser for `label` imports only what labelling needs.
    (["posterq.cli"], "posterq.cli.build_parser('label')", ["tensorflow"]),
    # The API and `posterq submit` write result rows, list folders and parse arguments without a
    # model; LiteRT loads only when something is classified.
    (["posterq.cli"], "posterq.cli.build_parser()", MODEL),
    (["posterq.results"], "", MODEL),
    (["posterq.pool"], "", MODEL),
    (["posterq.submit_cli"], "", MODEL),
    (["api"], "", MODEL),
    (["posterq.api.job_routes"], "", MODEL),
    (["posterq.jobs.store"], "", MODEL),
    (["posterq.worker.tasks"], "", ["tensorflow", "keras", "pandas"]),
    # Statuses and key names, the HTTP client and the API's request parsing need no Redis client.
    (["posterq.jobs.keys"], "", ["redis", "celery"]),
    (["posterq.client"], "", ["redis", "celery", "pandas"]),
    (["posterq.api.intake"], "", ["redis", "celery", "ai_edge_litert"]),
    # The service harness of tests and bench/ (imported as bench/ does, from the repository root) is
    # no pytest plugin, and loads no model runtime.
    (["tests.harness"], "", ["pytest", *MODEL]),
]


IDS = [call or ("runtime" if len(modules) > 1 else modules[0]) for modules, call, _ in CASES]


@pytest.mark.parametrize("modules, call, banned", CASES, ids=IDS)
def test_imports_stay_light(modules, call, banned):
    loaded = loaded_after(modules, call)
    assert not loaded & set(banned), sorted(loaded & set(banned))


def test_labelling_loads_no_pandas(tiny_bundle, poster_images, tmp_path):
    # A whole `posterq label` run, model loaded and posters classified, and the Python API's.
    args = ["label", str(poster_images[0].parent), "--model", str(tiny_bundle), "--out",
            str(tmp_path / "genres.csv"), "--workers", "1", "--no-progress"]
    loaded = loaded_after(["posterq.cli", "posterq.labeller"], f"assert posterq.cli.main({args!r}) == 0",
                          f"posterq.labeller.Labeller({str(tiny_bundle)!r}).label_path({str(poster_images[0])!r})")
    assert "ai_edge_litert" in loaded and "pandas" not in loaded
