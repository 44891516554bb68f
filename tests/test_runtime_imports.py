"""The runtime never imports TensorFlow; the CLI, result rows and file listing do not even load LiteRT."""

import json
import subprocess
import sys

import pytest

RUNTIME = ["posterq", "posterq.cli", "posterq.pool", "posterq.results", "posterq.classifier",
           "posterq.bundle", "posterq.imaging", "posterq.label_rule", "posterq.genres", "posterq.exceptions"]


def loaded_after(modules: list[str], *calls: str) -> set[str]:
    """Top-level packages in sys.modules of a fresh interpreter after importing modules."""
    code = "; ".join([*(f"import {name}" for name in modules), *(call for call in calls if call),
                      "import sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"])
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_runtime_does_not_import_tensorflow():
    loaded = loaded_after(RUNTIME)
    assert "tensorflow" not in loaded and "keras" not in loaded


def test_label_parser_does_not_import_tensorflow():
    # Building the parser for `label` imports only what labelling needs.
    loaded = loaded_after(["posterq.cli"], "posterq.cli.build_parser('label')")
    assert "tensorflow" not in loaded


@pytest.mark.parametrize("module", ["posterq.cli", "posterq.results", "posterq.pool"])
def test_light_modules_do_not_load_litert(module):
    # The API and `posterq submit` write result rows, list folders and parse arguments without
    # a model; LiteRT loads only when something is classified.
    loaded = loaded_after([module], "posterq.cli.build_parser()" if module == "posterq.cli" else "")
    assert "ai_edge_litert" not in loaded and "tensorflow" not in loaded
