"""posterq.results: the row shape and its CSV and JSON Lines files."""

import csv
import io
import json
import os
import stat

import pytest

from posterq.classifier import Prediction
from posterq.exceptions import ImageError
from posterq.results import (
    CsvWriter,
    JsonlWriter,
    aside_paths,
    create_new,
    format_for,
    open_writer,
    partial_path,
    row,
    scored_genres,
)

GENRES = ("Action", "Drama", "War")
OK = Prediction(["Drama", "War"], {"Action": 0.1, "Drama": 0.912345678, "War": 0.6})
FAILED = Prediction([], {}, ImageError("the file is empty", "empty"))


def test_row_of_a_prediction():
    assert row("a/b.jpg", OK, GENRES, "1.4.0") == {
        "path": "a/b.jpg", "genres": ["Drama", "War"], "error": None, "model_version": "1.4.0",
        "reused": False,
        "scores": {"Action": 0.1, "Drama": 0.912346, "War": 0.6}}
    assert row("a/b.jpg", OK, GENRES)["model_version"] is None  # no model named: none said


def test_row_of_an_error_or_a_failed_prediction():
    expected = {"path": "x.png", "genres": [], "error": {"code": "empty", "message": "the file is empty"},
                "model_version": "1.4.0", "reused": False, "scores": {}}
    assert row("x.png", FAILED, GENRES, "1.4.0") == expected
    assert row("x.png", ImageError("the file is empty", "empty"), GENRES, "1.4.0") == expected


def test_csv_columns_and_cells(tmp_path):
    out = tmp_path / "out.csv"
    with open_writer(out, None, GENRES) as writer:
        writer.write(row("a.jpg", OK, GENRES, "1.4.0"))
        writer.write(row("b, \"odd\".jpg", FAILED, GENRES))
    assert writer.count == 2
    with open(out, newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert records[0] == ["path", "genres", "error", "message", "model_version", "reused", "Action", "Drama",
                          "War"]
    assert records[1] == ["a.jpg", "Drama|War", "", "", "1.4.0", "false", "0.100000", "0.912346", "0.600000"]
    assert records[2] == ["b, \"odd\".jpg", "", "empty", "the file is empty", "", "false", "", "", ""]


def test_jsonl_lines(tmp_path):
    out = tmp_path / "out.jsonl"
    with open_writer(out, None, GENRES) as writer:
        writer.write(row("a.jpg", OK, GENRES, "1.5.0"))
        writer.write(row("ü.jpg", FAILED, GENRES, "1.5.0"))
        # A row built without the key (an older side file's) is written with it, null.
        writer.write({"path": "c.jpg", "genres": [], "error": None, "scores": {}})
    texts = out.read_text(encoding="utf-8").splitlines()
    lines = [json.loads(line) for line in texts]
    assert lines[0]["genres"] == ["Drama", "War"] and lines[0]["error"] is None
    assert lines[0]["scores"] == {"Action": 0.1, "Drama": 0.912346, "War": 0.6}
    assert lines[1] == {"path": "ü.jpg", "genres": [], "model_version": "1.5.0", "reused": False,
                        "error": {"code": "empty", "message": "the file is empty"}, "scores": {}}
    # One order of keys whoever built the row: path, genres, error, model_version, reused, scores.
    keys = ["path", "genres", "error", "model_version", "reused", "scores"]
    assert all(list(line) == keys for line in lines)
    assert lines[2]["model_version"] is None and texts[2].startswith('{"path": "c.jpg"')
    assert [line["reused"] for line in lines] == [False, False, False]  # said false where the row had none


def test_scored_genres_are_those_the_rows_score_in_the_known_order():
    rows = [{"scores": {}}, {"scores": {"War": 0.1, "Action": 0.2}}, {"scores": {"War": 0.3}}]
    assert scored_genres(rows, GENRES) == ["Action", "War"]
    assert scored_genres([{"scores": {}}], GENRES) == scored_genres([], GENRES) == list(GENRES)


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


def _complete(out, rows=(OK,)):
    with open_writer(out, None, GENRES) as writer:
        for n, prediction in enumerate(rows):
            writer.write(row(f"{n}.jpg", prediction, GENRES))
    return writer


def test_a_run_that_labels_a_poster_replaces_the_file(tmp_path):
    out = tmp_path / "keep.csv"
    out.write_bytes(b"an earlier run\n")
    writer = _complete(out, [FAILED, OK])
    assert writer.replaced and writer.aside is None and (writer.count, writer.labelled) == (2, 1)
    assert len(out.read_text().splitlines()) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.csv"]  # no temporary file left


def test_a_run_that_labels_nothing_keeps_the_file_and_sets_its_rows_aside(tmp_path):
    out = tmp_path / "keep.csv"
    out.write_bytes(b"an earlier run\n")
    writer = _complete(out, [FAILED, FAILED])
    assert not writer.replaced and writer.aside == tmp_path / "keep.csv.partial"
    assert out.read_bytes() == b"an earlier run\n"
    assert [line.split(",")[2] for line in writer.aside.read_text().splitlines()[1:]] == ["empty", "empty"]
    # A second such run takes the next free side name: the first side file stays whole.
    first = writer.aside.read_bytes()
    again = _complete(out, [FAILED])
    assert again.aside == tmp_path / "keep.csv.2.partial" and writer.aside.read_bytes() == first
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.csv", "keep.csv.2.partial",
                                                                 "keep.csv.partial"]


def test_ctrl_c_keeps_the_file_and_the_finished_rows_beside_it(tmp_path):
    out = tmp_path / "keep.jsonl"
    out.write_bytes(b"complete\n")
    with pytest.raises(KeyboardInterrupt), open_writer(out, None, GENRES) as writer:
        writer.write(row("a.jpg", OK, GENRES))
        raise KeyboardInterrupt
    assert out.read_bytes() == b"complete\n" and not writer.replaced
    assert [json.loads(line)["path"] for line in writer.aside.read_text().splitlines()] == ["a.jpg"]


def test_rows_known_to_be_partial_never_replace_the_file(tmp_path):
    out = tmp_path / "keep.csv"
    with open_writer(out, None, GENRES, partial=True) as writer:
        writer.write(row("a.jpg", OK, GENRES))
    assert not out.exists() and writer.aside == tmp_path / "keep.csv.partial"


def test_an_incomplete_run_with_no_row_leaves_nothing(tmp_path):
    out = tmp_path / "keep.csv"
    with pytest.raises(KeyboardInterrupt), open_writer(out, None, GENRES) as writer:
        raise KeyboardInterrupt
    assert writer.aside is None and list(tmp_path.iterdir()) == []


def test_a_side_file_is_never_written_through_a_link(tmp_path):
    out = tmp_path / "keep.csv"
    target = tmp_path / "someone-elses.csv"
    target.write_bytes(b"theirs\n")
    (tmp_path / "keep.csv.partial").symlink_to(target)
    (tmp_path / "keep.csv.2.partial").symlink_to(tmp_path / "nowhere")  # dangling
    writer = _complete(out, [FAILED])
    assert writer.aside == tmp_path / "keep.csv.3.partial" and not writer.aside.is_symlink()
    assert target.read_bytes() == b"theirs\n" and not (tmp_path / "nowhere").exists()


def test_any_other_error_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "keep.csv"
    out.write_bytes(b"complete\n")
    with pytest.raises(OSError), open_writer(out, None, GENRES) as writer:
        writer.write(row("a.jpg", OK, GENRES))
        raise OSError("disk full")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.csv"]
    assert out.read_bytes() == b"complete\n"


def test_the_result_file_gets_the_modes_the_umask_gives(tmp_path):
    previous = os.umask(0o022)
    try:
        _complete(tmp_path / "keep.csv")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "keep.csv").stat().st_mode) == 0o644


def test_a_new_file_is_never_created_through_a_link(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError):
        create_new(tmp_path / "link")
    assert not (tmp_path / "target").exists()
    assert partial_path(tmp_path / "x.csv") != partial_path(tmp_path / "x.csv")  # no name to plant a link at


def test_side_files_are_found_for_exclusion(tmp_path):
    out = tmp_path / "keep.csv"
    assert aside_paths(out) == []
    for name in ("keep.csv.partial", "keep.csv.2.partial", "other.csv.partial"):
        (tmp_path / name).write_text("x")
    assert sorted(path.name for path in aside_paths(out)) == ["keep.csv.2.partial", "keep.csv.partial"]
