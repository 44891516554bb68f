"""posterq.bundle: a bundle loads only when its metadata is whole and matches its model file."""

import json

import pytest
from samples import bundle_meta, rewrite_meta

from posterq.bundle import load_bundle, sha256_of
from posterq.exceptions import BundleError
from posterq.genres import GENRES
from posterq.training.bundle_io import write_bundle


def test_load(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.genres == GENRES
    assert bundle.input_size == (48, 32)
    assert bundle.top_k == 3
    assert bundle.thresholds.shape == (24,)
    assert bundle.identity == {"name": "tiny-test", "version": "0.0.1"}
    assert bundle.meta["size_bytes"] == bundle.model_file.stat().st_size


def test_environment_names_the_default(tiny_bundle, monkeypatch):
    monkeypatch.setenv("POSTERQ_MODEL", str(tiny_bundle))
    assert load_bundle().path == tiny_bundle


def test_tampered_model_is_refused(copy_bundle):
    folder = copy_bundle()
    with open(folder / "model.tflite", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError) as caught:
        load_bundle(folder)
    assert caught.value.code == "bundle_mismatch"


@pytest.mark.parametrize("missing", ["model.tflite", "model.json"])
def test_missing_file(copy_bundle, missing):
    folder = copy_bundle()
    (folder / missing).unlink()
    with pytest.raises(BundleError) as caught:
        load_bundle(folder)
    assert caught.value.code == "bad_bundle"


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "nowhere")


def test_unknown_genre(copy_bundle):
    folder = copy_bundle()
    rewrite_meta(folder, genres=["Space Opera", *GENRES[1:]])
    with pytest.raises(BundleError, match="unknown genres"):
        load_bundle(folder)


def test_thresholds_must_match_genres(copy_bundle):
    folder = copy_bundle()
    rewrite_meta(folder, label_rule={"thresholds": [0.5], "top_k": 3})
    with pytest.raises(BundleError, match="threshold"):
        load_bundle(folder)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_malformed_metadata(copy_bundle, text):
    folder = copy_bundle()
    (folder / "model.json").write_text(text)
    with pytest.raises(BundleError):
        load_bundle(folder)


def test_metadata_lacking_a_key(copy_bundle):
    folder = copy_bundle()
    meta = json.loads((folder / "model.json").read_text())
    del meta["sha256"]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(folder)


def test_shipped_bundles_are_chosen_by_name_and_folders_by_path(tiny_bundle):
    from posterq.config import DEFAULT_MODEL, DEFAULT_MODEL_DIR, model_folder, shipped_models

    assert DEFAULT_MODEL in shipped_models()
    assert model_folder("") == DEFAULT_MODEL_DIR and model_folder(DEFAULT_MODEL) == DEFAULT_MODEL_DIR
    assert load_bundle(DEFAULT_MODEL).name == DEFAULT_MODEL
    assert model_folder(str(tiny_bundle)) == tiny_bundle  # a folder wins over a name
    with pytest.raises(BundleError) as caught:
        load_bundle("no-such-model")
    assert DEFAULT_MODEL in caught.value.message  # the error lists the shipped bundles


@pytest.mark.parametrize("change, says", [
    ({"genres": ["Space Opera", *GENRES[1:]]}, "unknown genres"),
    ({"label_rule": {"thresholds": [0.5], "top_k": 3}}, "threshold"),
    ({"input": {"height": 48.0, "width": 32}}, "integer height"),
    ({"architecture": None}, "architecture"),  # None: the key is left out
])
def test_writer_refuses_what_the_loader_would_refuse(tmp_path, change, says):
    # One set of checks (posterq.bundle.check_meta): training never writes a bundle the runtime refuses.
    meta = {**bundle_meta(), **change}
    meta = {key: value for key, value in meta.items() if value is not None}
    with pytest.raises(BundleError, match=says):
        write_bundle(tmp_path / "bundle", b"model bytes", meta)
    assert not (tmp_path / "bundle").exists()


def test_written_sha256_is_the_one_the_loader_checks(tmp_path):
    folder = write_bundle(tmp_path / "bundle", b"model bytes", bundle_meta())
    meta = json.loads((folder / "model.json").read_text())
    assert meta["sha256"] == sha256_of(folder / "model.tflite") == sha256_of(b"model bytes")
    assert meta["size_bytes"] == len(b"model bytes")
