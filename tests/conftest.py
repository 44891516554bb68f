"""Shared fixtures, by area: model bundles, poster images, bad files. Add new areas (Redis,
worker processes, the API app) as their own sections; put generators of test data in
samples.py so that tests can import them too."""

import hashlib
import inspect
import shutil
from pathlib import Path

import pytest
from samples import TINY_INPUT, TINY_SEED, BadFile, bad_file_kinds, bundle_meta, tiny_tflite, write_posters

# ---------------------------------------------------------------------------------------------
# Model bundles
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_bundle(request, tmp_path_factory) -> Path:
    """A real TFLite bundle (48x32 input, 24 genres, thresholds 0.5, top_k 3), built once.

    Building imports TensorFlow (slow to start), so the .tflite is cached in pytest's
    cache, keyed by the builder's source: change the recipe and it is rebuilt.
    """
    recipe = inspect.getsource(tiny_tflite) + repr((TINY_INPUT, TINY_SEED))
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    cached = Path(request.config.cache.mkdir("posterq-tiny-model")) / f"{key}.tflite"
    if cached.is_file():
        tflite = cached.read_bytes()
    else:
        tflite = tiny_tflite()
        cached.write_bytes(tflite)
    from posterq.training.bundle_io import write_bundle

    return write_bundle(tmp_path_factory.mktemp("bundle") / "tiny", tflite, bundle_meta())


@pytest.fixture
def copy_bundle(tiny_bundle, tmp_path):
    """Factory: a private copy of the tiny bundle that a test may tamper with."""

    def copy(name: str = "bundle") -> Path:
        target = tmp_path / name
        shutil.copytree(tiny_bundle, target)
        return target

    return copy


# ---------------------------------------------------------------------------------------------
# Poster images and bad files
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def poster_images(tmp_path) -> list[Path]:
    """Eight small varied posters (JPEG and PNG, several sizes) in tmp_path/posters."""
    return write_posters(tmp_path / "posters", 8)


@pytest.fixture
def bad_files() -> dict[str, BadFile]:
    """Every kind of unusable file, by name -> BadFile(data, suffix, code); see samples.py."""
    return bad_file_kinds()
