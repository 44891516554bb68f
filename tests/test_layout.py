"""Names by role: no two modules of the runtime share a name, and every one of them imports."""

import importlib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = ("posterq", "api", "worker")
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
    importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))


def test_the_database_has_its_own_error():
    exceptions = importlib.import_module("posterq.exceptions")
    assert exceptions.DatabaseUnavailable.code == "database_unavailable"
    assert not hasattr(exceptions, "StoreUnavailable")
