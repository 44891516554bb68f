"""Building the wheel from this tree and installing it into scratch environments, as a user would.

Offline and fast: the build uses this environment's setuptools (--no-build-isolation), and the
scratch environments borrow this one's packages (NumPy, Pillow, LiteRT, Celery...) through a .pth
file placed after their own site-packages, so that their posterq is the one just installed.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The checkout's folders that install as posterq.<folder> (posterq/api is a link to ../api, and so on).
SUBPACKAGES = ("api", "worker", "training")
PACKAGES = ("posterq", *SUBPACKAGES)
SHIPPED = "effnet-lite0-posters"


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    """Run a command to its end; fail with its output unless it succeeds."""
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False,
                          timeout=300, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def assert_clean(log: str) -> None:
    """No warning from the build backend (setuptools' arrive as BuildBackendWarning and the like)."""
    assert not re.search(r"\w+Warning\b|deprecat", log, re.IGNORECASE), log


def copy_tree(tree: Path) -> Path:
    """A copy of what the build reads in tree, so that building leaves nothing in the checkout."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    for name in (*PACKAGES, "models"):
        shutil.copytree(ROOT / name, tree / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tree


def build_wheel(tree: Path, out: Path) -> Path:
    """The wheel of the copied tree, built into out; the build log must be clean."""
    done = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "-w", out, tree)
    assert_clean(done.stdout + done.stderr)
    (built,) = out.glob("posterq-*.whl")
    return built


def scratch_venv(folder: Path) -> Path:
    """A new environment without pip that sees this one's packages after its own; its python."""
    run(sys.executable, "-m", "venv", "--without-pip", folder)
    python = folder / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "zz_borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def pip_into(python: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    """pip install into the environment of that python, offline and without dependencies."""
    return run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", *args,
               **kwargs)


def outside_env() -> dict:
    """The environment minus anything that would point posterq at another model or checkout."""
    return {key: value for key, value in os.environ.items()
            if key not in ("POSTERQ_MODEL", "PYTHONPATH", "VIRTUAL_ENV")}
