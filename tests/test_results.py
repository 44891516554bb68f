"""posterq.results: the row shape and its CSV and JSON Lines files."""

import csv
import io
import json

import pytest

from posterq.classifier import Prediction
from posterq.exceptions import ImageError
from posterq.results import CsvWriter, JsonlWriter, format_for, open_writer, row

GENRES = ("Action", "Drama", "War")
OK = Prediction(["Drama", "War"], {"Action": 0.1, "Drama": 0.912345678, "War": 0.6})
FAILED = Prediction([], {}, ImageError("the file is empty", "empty"))


def test_row_of_a_prediction():
    assert row("a/b.jpg", OK, GENRES) == {
        "path": "a/b.jpg", "genres": ["Drama", "War"], "error": None,
        "scores": {"Action": 0.1, "Drama": 0.912346, "War": 0.6}}


def test_row_of_an_error_or_a_failed_prediction():
    expected = {"path": "x.png", "genres": [], "error": {"code": "empty", "message": "the file is empty"},
                "scores": {}}
    assert row("x.png", FAILED, GENRES) == expected
    assert row("x.png", ImageError("the file is empty", "empty"), GENRES) == expected


def test_csv_columns_and_cells(tmp_path):
    out = tmp_path / "out.csv"
    with open_writer(out, None, GENRES) as writer:
        writer.write(row("a.jpg", OK, GENRES))
        writer.write(row("b, \"odd\".jpg", FAILED, GENRES))
    assert writer.count == 2
    with open(out, newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert records[0] == ["path", "genres", "error", "message", "Action", "Drama", "War"]
    assert records[1] == ["a.jpg", "Drama|War", "", "", "0.100000", "0.912346", "0.600000"]
    assert records[2] == ["b, \"odd\".jpg", "", "empty", "the file is empty", "", "", ""]


def test_jsonl_lines(tmp_path):
    out = tmp_path / "out.jsonl"
    with open_writer(out, None, GENRES) as writer:
        writer.write(row("a.jpg", OK, GENRES))
        writer.write(row("ü.jpg", FAILED, GENRES))
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["genres"] == ["Drama", "War"] and lines[0]["error"] is None
    assert lines[0]["scores"] == {"Action": 0.1, "Drama": 0.912346, "War": 0.6}
    assert lines[1] == {"path": "ü.jpg", "genres": [],
                        "error": {"code": "empty", "message": "the file is empty"}, "scores": {}}


def test_every_row_is_flushed():
    class Recorder(io.StringIO):
        flushes = 0

        def flush(self):
            self.flushes += 1

    for writer_class in (CsvWriter, JsonlWriter):
        stream = Recorder()
        writer = writer_class(stream, GENRES)
        before = stream.flushes
        writer.write(row("a.jpg", OK, GENRES))
        writer.write(row("b.jpg", OK, GENRES))
        assert stream.flushes - before == 2


def test_format_from_extension(tmp_path):
    assert (format_for("x.CSV") == "csv" and format_for("x.jsonl") == "jsonl"
            and format_for("x.ndjson") == "jsonl")
    with pytest.raises(ValueError):
        format_for("x.txt")
    with pytest.raises(ValueError), open_writer(tmp_path / "x.csv", "xml", GENRES):
        pass
