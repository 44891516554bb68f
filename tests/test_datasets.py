"""Tests of posterq.training.datasets: the Kaggle, CCU and plain-CSV layouts behind load_dataset."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posterq.genres import GENRES
from posterq.training.datasets import Dataset, Example, load_dataset
from posterq.training.exceptions import DatasetError

KAGGLE_COLUMNS = [
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama", "Family",
    "Fantasy", "History", "Horror", "Music", "Musical", "Mystery", "N/A", "News", "Reality-TV", "Romance",
    "Sci-Fi", "Short", "Sport", "Thriller", "War", "Western",
]


def poster(path: Path, colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 12), colour).save(path, "JPEG")
    return path


def kaggle_folder(root: Path, rows, extra_columns=()) -> Path:
    """Write a Kaggle-layout train.csv; rows are (id, genres, has_image)."""
    columns = KAGGLE_COLUMNS + list(extra_columns)
    with open(root / "train.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Genre", *columns])
        for ident, genres, has_image in rows:
            writer.writerow([ident, str(list(genres)), *(int(c in genres) for c in columns)])
            if has_image:
                poster(root / "Images" / f"{ident}.jpg")
    (root / "Images").mkdir(exist_ok=True)
    return root


def test_kaggle_layout(tmp_path):
    kaggle_folder(tmp_path, [
        ("tt0000003", ["Drama", "Comedy"], True),
        ("tt0000001", ["Sci-Fi"], True),
        ("tt0000002", ["N/A"], True),
        ("tt0000004", ["Horror"], False),
        ("tt0000005", ["Adult", "Romance"], True),
    ], extra_columns=["Adult"])
    data = load_dataset(tmp_path)
    assert data.layout == "kaggle"
    assert [e.path.name for e in data.examples] == ["tt0000001.jpg", "tt0000003.jpg", "tt0000005.jpg"]
    assert data.examples[1].genres == ("Comedy", "Drama")
    assert (data.skipped, data.no_genre, data.dropped_genres["Adult"]) == (1, 1, 1)
    labels = data.labels()
    assert labels.shape == (3, 24) and labels.dtype == np.uint8
    assert labels.sum() == 4 and labels[0, GENRES.index("Sci-Fi")] == 1
    assert data.positives()["Drama"] == 1 and data.positives()["Western"] == 0
    assert list(data.positives()) == list(GENRES)
    # The CSV file itself is accepted too.
    assert load_dataset(tmp_path / "train.csv").examples == data.examples


def test_kaggle_bad_flag_is_a_bad_record(tmp_path):
    kaggle_folder(tmp_path, [("tt1", ["Drama"], True)])
    text = (tmp_path / "train.csv").read_text().replace(",1,", ",yes,", 1)
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "bad_record"


@pytest.mark.parametrize("change", [
    lambda line: line + ",1",  # more cells than the header
    lambda line: "tt/2" + line[3:],  # an Id that is not a file name
    lambda line: line.replace(",1,", ",yes,", 1),  # a flag that is not 0 or 1
], ids=["extra_cell", "bad_id", "bad_flag"])
def test_kaggle_bad_record_names_its_line(tmp_path, change):
    kaggle_folder(tmp_path, [("tt1", ["Drama"], True), ("tt2", ["Comedy"], True)])
    lines = (tmp_path / "train.csv").read_text().splitlines()
    lines.insert(1, "")  # a blank line counts as a line and is skipped
    lines[3] = change(lines[3])
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "bad_record" and "line 4" in caught.value.message


def ccu_records(records) -> str:
    """Concatenated Mongo-export records, no commas between them, tabs and newlines inside."""
    text = ""
    for index, (imdb_id, genre) in enumerate(records):
        # Records follow each other directly or after a newline, never after a comma.
        text += ("\n" if index % 2 else "") + (
            f'{{\n\t"_id" : ObjectId("5a1b2c3d4e5f60718293a4{index:02d}"),\n\t"Title" : "A\tfilm",\n'
            f'\t"Year" : NumberInt(1990),\n\t"imdbID" : "{imdb_id}",\n\t"Genre" : "{genre}",\n'
            '\t"Plot" : "Line one\nline two"\n}'
        )
    return text


def test_ccu_layout_utf16_and_utf8(tmp_path):
    images, truth = tmp_path / "Movie_Poster_Dataset", tmp_path / "groundtruth"
    truth.mkdir()
    text_1990 = ccu_records([
        ("tt0099001", "Action, Adventure, Sci-Fi"),
        ("tt0099002", "N/A"),
        ("tt0099003", "Talk-Show, Comedy"),
        ("tt0099004", "Drama"),  # its image is missing
    ])
    (truth / "1990.txt").write_text(text_1990, encoding="utf-16")  # Python writes a BOM
    (truth / "2001.txt").write_bytes(
        ccu_records([("tt0200001", "Science Fiction, Thriller")]).encode("utf-8"))
    for year, ident in (("1990", "tt0099001"), ("1990", "tt0099002"), ("1990", "tt0099003"),
                        ("2001", "tt0200001")):
        poster(images / year / f"{ident}.jpg")
    data = load_dataset(tmp_path)
    assert data.layout == "ccu"
    assert [(e.path.parent.name, e.path.stem, e.genres) for e in data.examples] == [
        ("1990", "tt0099001", ("Action", "Adventure", "Sci-Fi")),
        ("1990", "tt0099003", ("Comedy",)),
        ("2001", "tt0200001", ("Sci-Fi", "Thriller")),
    ]
    assert (data.skipped, data.no_genre, data.bad_records) == (1, 1, 0)
    assert data.dropped_genres == {"Talk-Show": 1}


def test_ccu_utf16_without_bom_and_a_broken_record(tmp_path):
    truth = tmp_path / "groundtruth"
    truth.mkdir()
    text = ccu_records([("tt1", "Drama")]) + '{ "imdbID" : "tt2", "Genre" : oops }' + \
        ccu_records([("tt3", "Western")])
    (truth / "1999.txt").write_bytes(text.encode("utf-16-le"))
    for ident in ("tt1", "tt2", "tt3"):
        poster(tmp_path / "Movie_Poster_Dataset" / "1999" / f"{ident}.jpg")
    data = load_dataset(tmp_path)
    assert [e.genres for e in data.examples] == [("Drama",), ("Western",)]
    assert data.bad_records == 1


def test_ccu_missing_groundtruth(tmp_path):
    poster(tmp_path / "Movie_Poster_Dataset" / "1990" / "tt1.jpg")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "missing_file"


def test_plain_csv(tmp_path):
    poster(tmp_path / "img" / "b.jpg")
    outside = poster(tmp_path / "elsewhere" / "a.png")  # named by its absolute path
    (tmp_path / "labels.csv").write_text(
        "path,genres\n"
        "img/b.jpg,Comedy| Science Fiction\n"
        f"{outside},Western\n"
        "img/missing.jpg,Drama\n",
        encoding="utf-8",
    )
    for target in (tmp_path, tmp_path / "labels.csv"):
        data = load_dataset(target)
        assert data.layout == "csv"
        assert sorted(e.genres for e in data.examples) == [("Comedy", "Sci-Fi"), ("Western",)]
        assert data.examples == sorted(data.examples, key=lambda e: e.path)
        assert data.skipped == 1


def test_plain_csv_with_another_name(tmp_path):
    poster(tmp_path / "a.jpg")
    (tmp_path / "mine.csv").write_text("path,genres\na.jpg,Drama\n")
    assert load_dataset(tmp_path).examples == [Example(tmp_path / "a.jpg", ("Drama",))]


def test_unknown_genre_in_plain_csv(tmp_path):
    poster(tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text("path,genres\na.jpg,Drama|Adult\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "unknown_genre"
    assert "Adult" in caught.value.message and "labels.csv" in caught.value.message


def test_empty_dataset(tmp_path):
    (tmp_path / "labels.csv").write_text("path,genres\nnothing.jpg,Drama\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "empty_dataset"


def test_bad_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "bad_layout"
    assert "train.csv" in caught.value.message and "groundtruth" in caught.value.message


def test_missing_path_and_missing_kaggle_csv(tmp_path):
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path / "nowhere")
    assert caught.value.code == "missing_file"
    poster(tmp_path / "Images" / "tt1.jpg")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    assert caught.value.code == "missing_file"


def test_subset_and_label_order(tmp_path):
    data = Dataset(tmp_path, "csv", [Example(tmp_path / "a.jpg", ("Drama",)),
                                     Example(tmp_path / "b.jpg", ("Action", "War"))], skipped=2)
    part = data.subset([1])
    assert len(part) == 1 and part.examples[0].genres == ("Action", "War") and part.skipped == 2
    assert part.labels(("War", "Drama", "Action")).tolist() == [[1, 0, 1]]
