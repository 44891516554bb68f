"""posterq.files: any name the file system gives is one row, shown escaped and opened exactly."""

import csv
import json
import os

import pytest
from commands import posterq
from samples import poster_bytes

from posterq.files import display_name, exact_text, from_exact_text, iter_files, read_poster

# Names as the file system gives them: bytes that are not UTF-8 come as lone surrogates.
NAMES = ["good.jpg", os.fsdecode(b"bad\xff\xfename.jpg"), "caf\u00e9.jpg", "bytes:%FF.jpg",
         os.fsdecode(b"bytes:\xff.jpg"), "back\\xff.jpg", "/abs/" + os.fsdecode(b"\xe9t\xe9/x.png")]


@pytest.mark.parametrize("name", NAMES)
def test_exact_text_is_utf8_and_gives_the_same_bytes_back(name):
    text = exact_text(name)
    text.encode("utf-8")  # a database takes it
    assert from_exact_text(text) == name and os.fsencode(from_exact_text(text)) == os.fsencode(name)
    utf8 = os.fsencode(name).decode("utf-8", "replace") == name
    assert (text == name) == (utf8 and not name.startswith("bytes:"))  # others are escaped


def test_display_name_shows_bytes_that_are_not_utf8_as_escapes():
    assert display_name(os.fsdecode(b"bad\xff\xfename.jpg")) == "bad\\xff\\xfename.jpg"
    assert display_name("caf\u00e9.jpg") == "caf\u00e9.jpg"  # UTF-8 names are as they are
    assert display_name("\ud800.jpg") == "\\ud800.jpg"  # a surrogate that stands for no byte


def test_a_file_named_in_bytes_is_listed_and_read_again_from_its_exact_text(tmp_path):
    path = os.fsencode(tmp_path) + b"/bad\xff\xfename.jpg"
    with open(path, "wb") as handle:
        handle.write(poster_bytes(1))
    [listed] = iter_files(tmp_path)
    assert read_poster(from_exact_text(exact_text(str(listed)))) == poster_bytes(1)


def test_label_writes_a_name_that_is_not_utf8_as_its_escaped_row(tiny_bundle, tmp_path):
    folder = tmp_path / "posters"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/bad\xff\xfename.jpg", "wb") as handle:
        handle.write(poster_bytes(2))
    (folder / "good.jpg").write_bytes(poster_bytes(3))
    out = tmp_path / "genres.csv"
    done = posterq("label", str(folder), "--out", str(out), "--model", str(tiny_bundle))
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["path"], row["error"]) for row in rows] == [("bad\\xff\\xfename.jpg", ""), ("good.jpg", "")]
    assert rows[0]["genres"]
    lines = tmp_path / "genres.jsonl"
    done = posterq("label", str(folder), "--out", str(lines), "--model", str(tiny_bundle))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["path"] for line in lines.read_text("utf-8").splitlines()] == [
        "bad\\xff\\xfename.jpg", "good.jpg"]
