"""posterq.labeller: the Python API gives what the Classifier and label_folder give, and refuses
a path where bytes are expected (and bytes where a path is)."""

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from samples import poster_bytes, write_posters

import posterq
from posterq.classifier import Classifier, Prediction
from posterq.exceptions import BundleError
from posterq.frames import to_frame
from posterq.labeller import Labeller
from posterq.pool import label_folder
from posterq.results import csv_header, open_writer, row


@pytest.fixture(scope="module")
def labeller(tiny_bundle) -> Labeller:
    return Labeller(tiny_bundle)


@pytest.fixture
def folder(tmp_path, bad_files):
    root = tmp_path / "posters"
    write_posters(root / "b", 3)
    write_posters(root / "a", 2, start=10)
    (root / "text.txt").write_bytes(bad_files["text"].data)
    return root


def same(one: Prediction, other: Prediction) -> bool:
    return (one.genres == other.genres and one.scores == pytest.approx(other.scores, abs=1e-6)
            and (one.error and one.error.code) == (other.error and other.error.code))


def test_path_and_bytes_give_the_classifiers_prediction(labeller, tiny_bundle, poster_images):
    expected = Classifier(tiny_bundle).classify([poster_images[2].read_bytes()])[0]
    by_path = labeller.label_path(poster_images[2])
    assert isinstance(by_path, Prediction) and by_path.error is None
    assert same(by_path, expected)
    assert same(labeller.label_path(str(poster_images[2])), expected)
    data = poster_images[2].read_bytes()
    for form in (data, bytearray(data), memoryview(data)):
        assert same(labeller.label_bytes(form), expected)
    assert len(expected.scores) == 24 and 1 <= len(expected.genres) <= 3


def test_top_k(tiny_bundle):
    prediction = Labeller(tiny_bundle, top_k=1).label_bytes(poster_bytes(4))
    assert len(prediction.genres) == 1 and len(prediction.scores) == 24
    with pytest.raises(ValueError):
        Labeller(tiny_bundle, top_k=0)


def test_bad_posters_get_their_error(labeller, bad_files, tmp_path):
    for bad in bad_files.values():
        prediction = labeller.label_bytes(bad.data)
        assert prediction.error.code == bad.code and prediction.genres == [] and prediction.error.message
    assert labeller.label_path(tmp_path / "missing.jpg").error.code == "unreadable"


@pytest.mark.parametrize("wrong", ["heat.jpg", Path("heat.jpg")])
def test_label_bytes_refuses_a_path(labeller, wrong):
    with pytest.raises(TypeError, match=r"label_path\('heat.jpg'\)"):
        labeller.label_bytes(wrong)


def test_label_bytes_refuses_other_types(labeller):
    with pytest.raises(TypeError, match="not list"):
        labeller.label_bytes([poster_bytes(1)])
    with pytest.raises(TypeError, match="label_path"):
        labeller.label_bytes("x" * 500)  # a long text is cut short in the message


def test_label_path_refuses_bytes_and_folders(labeller, folder):
    with pytest.raises(TypeError, match=r"label_bytes"):
        labeller.label_path(poster_bytes(1))
    with pytest.raises(IsADirectoryError, match="label_folder"):
        labeller.label_path(folder)


@pytest.mark.parametrize("workers", [1, 2])
def test_folder_gives_label_folders_rows(labeller, tiny_bundle, folder, workers):
    expected = list(label_folder(folder, tiny_bundle, workers=1, progress=False))
    got = list(labeller.label_folder(folder, workers=workers, batch_size=2))
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert [name for name, _ in got] == ["a/poster_010.jpg", "a/poster_011.png", "b/poster_000.jpg",
                                         "b/poster_001.png", "b/poster_002.jpg", "text.txt"]
    assert all(same(one, other) for (_, one), (_, other) in zip(got, expected, strict=True))
    assert got[-1][1].error.code == "not_an_image"
    assert not multiprocessing.active_children()


def test_folder_results_as_a_frame_hold_what_the_csv_holds(labeller, folder, tmp_path):
    import pandas as pd

    genres = labeller.bundle.genres
    results = list(labeller.label_folder(folder, batch_size=2))
    frame = to_frame(results, genres)
    assert list(frame.columns) == csv_header(genres) and len(frame) == len(results) == 6
    assert list(frame["path"]) == [name for name, _ in results]
    assert list(frame["genres"]) == [prediction.genres for _, prediction in results]
    assert list(frame["error"].fillna("")) == ["", "", "", "", "", "not_an_image"]
    assert frame["message"].notna().tolist() == [False] * 5 + [True]
    with open_writer(tmp_path / "genres.csv", "csv", genres) as writer:
        for name, prediction in results:
            writer.write(row(name, prediction, genres))
    written = pd.read_csv(tmp_path / "genres.csv")
    assert frame[list(genres)].equals(written[list(genres)])  # the same figures, NaN for the error
    assert to_frame(results).equals(frame)  # genres in the model's output order by default
    assert list(to_frame([], genres).columns) == csv_header(genres)
    # The model's version, as `posterq label` writes it in every row, when the caller names it.
    assert frame["model_version"].isna().all()
    versioned = to_frame(results, genres, labeller.bundle.version)
    assert versioned["model_version"].tolist() == [labeller.bundle.version] * 6


def test_folder_refuses_a_file_at_once(labeller, poster_images):
    with pytest.raises(NotADirectoryError):
        labeller.label_folder(poster_images[0])


def test_bad_bundle(tmp_path):
    with pytest.raises(BundleError):
        Labeller(tmp_path)


def test_exported_from_posterq_lazily():
    assert posterq.Labeller is Labeller and posterq.Prediction is Prediction
    assert {"Labeller", "Prediction"} <= set(dir(posterq)) and "Labeller" in posterq.__all__
    with pytest.raises(AttributeError):
        posterq.nothing_here  # noqa: B018
    # Importing posterq and naming Labeller loads no runtime; only making one does.
    code = ("import sys, posterq; from posterq import Labeller; "
            "print(sorted(m for m in ('ai_edge_litert', 'tensorflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
