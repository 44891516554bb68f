"""posterq.pool: every file once, in order, the same in one process or many."""

import multiprocessing
import os
from pathlib import Path

import pytest
from samples import write_posters

from posterq.bundle import load_bundle
from posterq.classifier import Classifier
from posterq.exceptions import BundleError, ImageError, PosterqError
from posterq.files import iter_files, read_poster
from posterq.pool import Summary, classify_paths, label_folder


@pytest.fixture
def folder(tmp_path, bad_files):
    root = tmp_path / "posters"
    write_posters(root / "b", 5)
    write_posters(root / "a" / "deep", 4, start=10)
    for name, bad in bad_files.items():
        (root / f"{name}{bad.suffix}").write_bytes(bad.data)
    (root / ".DS_Store").write_bytes(b"\0")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.jpg").write_bytes(b"\0")
    (root / "gone.jpg").symlink_to(root / "nowhere.jpg")  # a file that vanished: unreadable
    return root


def test_iter_files_sorted_recursive_without_hidden(folder):
    relative = [path.relative_to(folder).as_posix() for path in iter_files(folder)]
    assert relative == sorted(relative, key=lambda name: name.split("/"))
    assert len(relative) == 5 + 4 + 6 + 1
    assert "a/deep/poster_010.jpg" in relative and not any(name.startswith(".") for name in relative)
    assert ".cache/x.jpg" not in relative


def test_iter_files_exclude(folder):
    assert folder / "empty.jpg" not in iter_files(folder, exclude=[folder / "empty.jpg"])


def test_read_poster_errors(tmp_path):
    with pytest.raises(ImageError) as caught:
        read_poster(tmp_path / "missing.jpg")
    assert caught.value.code == "unreadable"
    (tmp_path / "big.jpg").write_bytes(b"x" * 101)
    with pytest.raises(ImageError) as caught:
        read_poster(tmp_path / "big.jpg", max_bytes=100)
    assert caught.value.code == "too_large"


def test_a_pipe_or_a_device_is_unreadable_at_once_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # no writer: a blocking open would wait forever
    for path in (tmp_path / "pipe.jpg", Path("/dev/zero")):
        with pytest.raises(ImageError) as caught:
            read_poster(path)
        assert caught.value.code == "unreadable" and "regular file" in caught.value.message


def test_classify_paths_keeps_order(tiny_bundle, poster_images, tmp_path):
    paths = [poster_images[0], tmp_path / "missing.jpg", poster_images[1]]
    results = classify_paths(Classifier(tiny_bundle, num_threads=1), paths)
    assert [r.error.code if r.error else None for r in results] == [None, "unreadable", None]


def test_one_process_and_many_agree(tiny_bundle, folder, bad_files):
    alone = list(label_folder(folder, tiny_bundle, workers=1, batch_size=4, progress=False))
    pooled = list(label_folder(folder, tiny_bundle, workers=2, batch_size=3, progress=False))
    assert [path for path, _ in alone] == [path for path, _ in pooled]
    assert [path for path, _ in alone] == [p.relative_to(folder).as_posix() for p in iter_files(folder)]
    for (_, one), (_, many) in zip(alone, pooled, strict=True):
        assert one.genres == many.genres
        assert one.scores == pytest.approx(many.scores, abs=1e-5)
        assert (one.error and one.error.code) == (many.error and many.error.code)
    codes = {path: p.error.code for path, p in pooled if p.error}
    expected = {f"{name}{bad.suffix}": bad.code for name, bad in bad_files.items()}
    assert codes == {**expected, "gone.jpg": "unreadable"}
    assert not multiprocessing.active_children()


def test_summary(tiny_bundle, folder):
    summary = Summary()
    for _, prediction in label_folder(folder, tiny_bundle, workers=1, progress=False):
        summary.add(prediction)
    assert summary.total == 16 and summary.ok == 9
    assert sum(summary.errors.values()) == 7 and summary.errors["unreadable"] == 1
    assert summary.posters_per_second > 0
    assert summary.as_dict()["total"] == 16


def test_closing_early_stops_the_processes(tiny_bundle, folder):
    results = label_folder(folder, tiny_bundle, workers=2, batch_size=1, progress=False)
    next(results)
    results.close()
    assert not multiprocessing.active_children()


def test_bad_model_in_the_processes_fails_cleanly(copy_bundle, folder):
    # The metadata verifies but names 23 genres: the interpreter has 24 outputs, so every
    # process fails to make its Classifier. The run must raise, not hang respawning them.
    bundle_folder = copy_bundle()
    bundle = load_bundle(bundle_folder)
    meta = {**bundle.meta, "genres": bundle.meta["genres"][:23]}
    broken = type(bundle)(bundle.path, meta)
    with pytest.raises(PosterqError) as caught:
        list(label_folder(folder, broken, workers=2, batch_size=2, progress=False))
    assert caught.value.code == "bundle_mismatch"
    assert not multiprocessing.active_children()


def test_refuses_bad_arguments(tiny_bundle, folder, tmp_path):
    with pytest.raises(NotADirectoryError):
        next(label_folder(folder / "b" / "poster_000.jpg", tiny_bundle))
    with pytest.raises(BundleError):
        next(label_folder(folder, tmp_path / "no-bundle"))


def test_empty_folder(tiny_bundle, tmp_path):
    os.mkdir(tmp_path / "empty")
    assert list(label_folder(tmp_path / "empty", tiny_bundle, workers=2, progress=False)) == []
