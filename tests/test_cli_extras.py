"""Commands in a runtime-only install: a missing extra is one line naming it, never a traceback.

Each case runs the CLI in a fresh interpreter where the extras' packages cannot be imported (None
in sys.modules: `import` raises ModuleNotFoundError and find_spec finds nothing, as when they are
not installed), once as it is and once with the commands' up-front checks removed, so that the
message given when an import fails while the command runs is tested too.
"""

import subprocess
import sys

import pytest
from samples import write_posters

SERVICE = ("requests", "celery", "kombu", "redis", "flask", "werkzeug", "gunicorn", "prometheus_client")
TENSORFLOW = ("tensorflow", "keras", "matplotlib")
EVAL = ("sklearn", "pandas")
RUNTIME_ONLY = SERVICE + TENSORFLOW + EVAL

RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
import dataclasses
import posterq.cli as cli
if {run_time_only!r}:
    cli.COMMANDS = tuple(dataclasses.replace(command, needs=()) for command in cli.COMMANDS)
sys.exit(cli.main({argv!r}))
"""


def run_without(blocked, *argv: str, run_time_only: bool = False, cwd=None) -> subprocess.CompletedProcess:
    """Run `posterq ARGV` in a fresh interpreter that cannot import the `blocked` packages."""
    code = RUN.format(blocked=tuple(blocked), argv=list(argv), run_time_only=run_time_only)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("run_time_only", [False, True], ids=["checked", "at-run-time"])
@pytest.mark.parametrize("argv, extra, named", [
    (["submit", "posters", "--api", "http://127.0.0.1:9"], "service", ["requests"]),
    (["worker"], "service", ["celery", "redis"]),  # the worker's first import of either names it
    (["api"], "service", ["flask"]),
    (["train", "--data", "posters"], "train", ["tensorflow", "keras", "pandas"]),  # keras: at run time
    (["evaluate", "--data", "posters"], "eval", ["scikit-learn", "pandas"]),
], ids=lambda value: value[0] if isinstance(value, list) and value[0][0].islower() else None)
def test_missing_extra_is_one_line_naming_it(tmp_path, argv, extra, named, run_time_only):
    (tmp_path / "posters").mkdir()
    done = run_without(RUNTIME_ONLY, *argv, run_time_only=run_time_only, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"posterq {argv[0]}: not available: it needs ")
    assert any(name in line for name in named) and f"install the '{extra}' extra: pip install -e '" in line
    assert line.endswith(f"[{extra}]'")


def test_evaluate_needs_only_the_eval_extra(tiny_bundle, tmp_path):
    # The eval extra (scikit-learn, pandas) is enough: no TensorFlow (and no service packages) imported.
    posters = write_posters(tmp_path / "img", 6)
    (tmp_path / "labels.csv").write_text(
        "path,genres\n" + "".join(f"img/{path.name},Drama\n" for path in posters))
    done = run_without(SERVICE + TENSORFLOW, "evaluate", "--data", str(tmp_path), "--model", str(tiny_bundle),
                       "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "macro ROC-AUC" in done.stdout and "tiny-test" in done.stdout


def test_label_needs_no_extra(tiny_bundle, poster_images, tmp_path):
    done = run_without(RUNTIME_ONLY, "label", str(poster_images[0]), "--model", str(tiny_bundle))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{poster_images[0].as_posix()}: ")
    done = run_without(RUNTIME_ONLY, "label", str(poster_images[0].parent), "--model", str(tiny_bundle),
                       "--out", str(tmp_path / "g.csv"), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "g.csv").read_text().splitlines()) == 1 + len(poster_images)


def test_help_of_an_unavailable_command_says_why():
    done = run_without(SERVICE, "submit", "--help")
    assert done.returncode == 0
    assert "not available" in done.stdout and "'service' extra" in done.stdout
