"""Names by role: no two modules of the runtime share a name, and every one of them imports as
part of posterq (the checkout's api/, worker/ and training/ are posterq.api, ... through links)."""

import importlib
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = ("posterq", "api", "worker")
#: The checkout's folders that are subpackages of posterq (posterq/<name> links to ../<name>).
SUBPACKAGES = ("api", "worker", "training")
# Each package may have its own of these: the name says the role and the package says whose.
PER_PACKAGE = {"__init__.py", "cli.py", "exceptions.py"}


def runtime_modules() -> list[Path]:
    """Every .py file of posterq/, api/ and worker/, relative to the repository root."""
    return sorted(path.relative_to(ROOT) for package in RUNTIME_PACKAGES
                  for path in (ROOT / package).rglob("*.py"))


def test_no_two_runtime_modules_share_a_name():
    names = Counter(path.name for path in runtime_modules() if path.name not in PER_PACKAGE)
    shared = {name: [str(path) for path in runtime_modules() if path.name == name]
              for name, count in names.items() if count > 1}
    assert not shared


def test_no_module_shares_its_package_name():
    # posterq/jobs/jobs.py read as "the jobs of jobs": a module is named for its role in the package.
    assert not [str(path) for path in runtime_modules() if path.stem == path.parent.name]


@pytest.mark.parametrize("path", runtime_modules(), ids=str)
def test_every_runtime_module_imports(path):
    parts = path.with_suffix("").parts
    parts = ("posterq", *parts) if parts[0] in SUBPACKAGES else parts
    importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_folder_is_a_subpackage_of_posterq(name):
    link = ROOT / "posterq" / name
    assert link.is_symlink() and link.resolve() == (ROOT / name).resolve()
    assert importlib.import_module(f"posterq.{name}").__file__.startswith(str(ROOT / "posterq" / name))


def test_nothing_imports_the_folders_as_top_level_packages():
    # Imported both ways, a module would load twice, with two copies of its state.
    top_level = re.compile(rf"^\s*(from|import) ({'|'.join(SUBPACKAGES)})\b", re.M)
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert [name for name in tracked if top_level.search((ROOT / name).read_text())] == []


def test_the_database_has_its_own_error():
    exceptions = importlib.import_module("posterq.exceptions")
    assert exceptions.DatabaseUnavailable.code == "database_unavailable"
    assert not hasattr(exceptions, "StoreUnavailable")


def test_the_harness_is_no_runtime_module():
    # The service harness of tests and bench/ lives in tests/, outside the wheel.
    assert not (ROOT / "posterq" / "testing.py").exists()
    assert (ROOT / "tests" / "harness.py").is_file()
