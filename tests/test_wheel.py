"""The wheel, built from this tree and installed as a user would: every module, one top-level
package, the shipped model as package data, `posterq label` finding that model from any folder,
and clean build logs (tests/wheels.py builds and installs it)."""

import json
import os
import zipfile
from pathlib import Path

import pytest
from samples import poster_bytes
from wheels import (
    PACKAGES,
    ROOT,
    SHIPPED,
    SUBPACKAGES,
    assert_clean,
    build_wheel,
    copy_tree,
    outside_env,
    pip_into,
    run,
    scratch_venv,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="module")
def wheel(tree, tmp_path_factory) -> Path:
    return build_wheel(tree, tmp_path_factory.mktemp("wheel"))


def installed_name(path: Path) -> str:
    """Where a checkout file lands in the wheel: api/x.py as posterq/api/x.py."""
    name = path.relative_to(ROOT).as_posix()
    return f"posterq/{name}" if name.split("/")[0] in SUBPACKAGES else name


def test_wheel_holds_every_module_and_the_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every file of the packages: modules, and data such as the API's web page (api/static/).
    sources = {installed_name(path) for package in PACKAGES for path in (ROOT / package).rglob("*")
               if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}
    assert sources - names == set(), "missing from [tool.setuptools] packages or package-data"
    # One top-level package: installing posterq never shadows another project's api or worker.
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"posterq"}
    shipped = {path.relative_to(ROOT / "models").as_posix() for path in (ROOT / "models").rglob("*")
               if path.is_file()}
    assert {f"posterq/_models/{name}" for name in shipped} <= names
    assert f"posterq/_models/{SHIPPED}/model.tflite" in names


def test_installed_wheel_labels_with_its_shipped_model(wheel, tmp_path):
    python = scratch_venv(tmp_path / "venv")
    pip_into(python, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "heat.jpg").write_bytes(poster_bytes(3))
    where = run(python, "-c", "import posterq, posterq.config as c; print(posterq.__file__); "
                "print(c.DEFAULT_MODEL_DIR)", cwd=elsewhere, env=outside_env()).stdout.split()
    venv = (tmp_path / "venv").resolve()
    assert all(Path(path).resolve().is_relative_to(venv) for path in where), where
    assert Path(where[1]).name == SHIPPED and (Path(where[1]) / "model.tflite").is_file()

    done = run(tmp_path / "venv" / "bin" / "posterq", "label", "heat.jpg", "--format", "jsonl",
               cwd=elsewhere, env=outside_env())
    row = json.loads(done.stdout)
    # The same bundle as the checkout's models/: the same scores.
    from posterq.labeller import Labeller

    expected = Labeller(ROOT / "models" / SHIPPED).label_path(elsewhere / "heat.jpg")
    assert row["path"] == "heat.jpg" and row["error"] is None and row["genres"] == expected.genres
    assert row["scores"] == pytest.approx(expected.scores, abs=1e-5)
    assert not (elsewhere / "genres.csv").exists()


def test_editable_install_log_is_clean_and_finds_the_checkouts_model(tree, tmp_path):
    python = scratch_venv(tmp_path / "venv")
    # make install's filter for setuptools' note on every editable install of a flat layout
    # ("Editable installation... be careful with folders..."), which is not a warning about us.
    env = {**os.environ, "PYTHONWARNINGS": "ignore:Editable installation"}
    done = pip_into(python, "--no-build-isolation", "-e", tree, env=env)
    assert_clean(done.stdout + done.stderr)
    model = run(python, "-c", "import posterq.config as c; print(c.DEFAULT_MODEL_DIR)", cwd=tmp_path,
                env=outside_env()).stdout.strip()
    assert Path(model) == tree.resolve() / "models" / SHIPPED
