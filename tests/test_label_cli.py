"""`posterq label` end to end: a real subprocess on a generated folder of good and bad posters."""

import csv
import json
import os
from pathlib import Path

import pytest
from commands import interrupt_when, posterq, running
from samples import write_posters

from posterq.bundle import load_bundle
from posterq.genres import GENRES


@pytest.fixture
def folder(tmp_path, bad_files):
    root = tmp_path / "posters"
    write_posters(root / "2019", 5)
    write_posters(root / "1942" / "scans", 4, start=20)
    for name, bad in bad_files.items():
        (root / "incoming" / f"{name}{bad.suffix}").parent.mkdir(exist_ok=True)
        (root / "incoming" / f"{name}{bad.suffix}").write_bytes(bad.data)
    return root


def test_label_csv(tiny_bundle, folder, tmp_path, bad_files):
    out = tmp_path / "genres.csv"
    done = posterq("label", str(folder), "--out", str(out), "--model", str(tiny_bundle),
                   "--workers", "2", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "genres", "error", "message", "model_version", "reused", *GENRES]
    # Every row says the model that labelled it: the bundle's version (one model in a local run).
    assert {r["model_version"] for r in rows} == {load_bundle(tiny_bundle).version}
    assert len(rows) == 5 + 4 + len(bad_files)
    assert [r["path"] for r in rows] == sorted((r["path"] for r in rows), key=lambda p: p.split("/"))
    errors = {r["path"]: r["error"] for r in rows if r["error"]}
    assert errors == {f"incoming/{name}{bad.suffix}": bad.code for name, bad in bad_files.items()}
    for r in rows:
        if r["error"]:
            assert r["genres"] == "" and r["message"] and all(r[g] == "" for g in GENRES)
        else:
            assert 1 <= len(r["genres"].split("|")) <= 3
            assert all(len(r[g].split(".")[1]) == 6 for g in GENRES)
    assert "15 posters" in done.stdout and "posters/s" in done.stdout and str(out) in done.stdout


def test_label_jsonl_with_top_k(tiny_bundle, folder, tmp_path):
    out = tmp_path / "genres.jsonl"
    done = posterq("label", str(folder), "--out", str(out), "--model", str(tiny_bundle),
                   "--workers", "1", "--top-k", "1", "--no-progress")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 15
    good = [line for line in lines if line["error"] is None]
    assert len(good) == 9 and all(len(line["genres"]) == 1 and len(line["scores"]) == 24 for line in good)
    assert ({line["error"]["code"] for line in lines if line["error"]}
            >= {"empty", "truncated", "not_an_image"})


def test_default_out_is_genres_csv_and_not_read_as_a_poster(tiny_bundle, folder):
    # Run inside the folder: the result file appears in it and must not become a row.
    for _ in range(2):
        done = posterq("label", ".", "--model", str(tiny_bundle), "--workers", "1", cwd=folder)
        assert done.returncode == 0, done.stderr
    assert len((folder / "genres.csv").read_text().splitlines()) == 1 + 15


@pytest.mark.parametrize("out", [[], ["--out", "o.csv"]])
def test_missing_path_exits_2(tiny_bundle, folder, tmp_path, out):
    done = posterq("label", str(folder), "missing.jpg", "--model", str(tiny_bundle), *out, cwd=tmp_path)
    assert done.returncode == 2
    assert "missing.jpg does not exist" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "genres.csv").exists()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_files_and_folders_in_argument_order(tiny_bundle, folder, tmp_path):
    # Run from tmp_path with relative arguments: a file is named as given, a folder's files as
    # FOLDER/path; a file met again (given twice, or inside a folder given too) counts once.
    (tmp_path / "loose").mkdir()
    write_posters(tmp_path / "loose", 2, start=40)
    args = ["loose/poster_041.png", "posters/", "./loose/poster_041.png", "posters/2019/poster_000.jpg",
            "loose/poster_040.jpg"]
    done = posterq("label", *args, "--out", "all.csv", "--model", str(tiny_bundle), "--workers", "2",
                   "--batch-size", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_csv(tmp_path / "all.csv")
    alone = posterq("label", str(folder), "--out", str(tmp_path / "alone.csv"), "--model", str(tiny_bundle),
                    "--workers", "1")
    assert alone.returncode == 0, alone.stderr
    folder_rows = read_csv(tmp_path / "alone.csv")
    assert [r["path"] for r in rows] == ["loose/poster_041.png",
                                         *(f"posters/{r['path']}" for r in folder_rows),
                                         "loose/poster_040.jpg"]
    # The same file gives the same row, whatever it is named.
    for mine, theirs in zip(rows[1:-1], folder_rows, strict=True):
        assert {**mine, "path": ""} == {**theirs, "path": ""}
    assert "17 posters" in done.stdout


def test_one_file_with_out_writes_one_row(tiny_bundle, poster_images, tmp_path):
    out = tmp_path / "one.jsonl"
    done = posterq("label", str(poster_images[0]), "--out", str(out), "--model", str(tiny_bundle))
    assert done.returncode == 0, done.stderr
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["path"] == poster_images[0].as_posix()


def test_one_file_prints_its_genres(tiny_bundle, poster_images, tmp_path):
    from posterq.labeller import Labeller

    name = poster_images[3].relative_to(tmp_path).as_posix()
    done = posterq("label", name, "--model", str(tiny_bundle), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = Labeller(tiny_bundle).label_path(poster_images[3])
    first, second = done.stdout.splitlines()
    assert first == f"{name}: {', '.join(expected.genres)}"
    shown = second.split()
    assert len(shown) == 2 * 5 and shown[0::2] == sorted(expected.scores, key=expected.scores.get,
                                                          reverse=True)[:5]
    assert [float(score) for score in shown[1::2]] == pytest.approx(
        sorted(expected.scores.values(), reverse=True)[:5], abs=0.006)
    assert done.stderr == ""  # not even LiteRT's "Created TensorFlow Lite XNNPACK delegate"
    assert not (tmp_path / "genres.csv").exists()


def test_one_file_in_a_format_prints_its_row(tiny_bundle, poster_images, tmp_path):
    done = posterq("label", str(poster_images[0]), "--format", "jsonl", "--top-k", "1",
                   "--model", str(tiny_bundle), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["path"] == poster_images[0].as_posix() and len(row["genres"]) == 1
    assert set(row["scores"]) == set(GENRES) and row["error"] is None
    assert not (tmp_path / "genres.csv").exists()


@pytest.mark.parametrize("kind", ["text", "truncated_jpeg", "empty"])
def test_one_unusable_file_says_why_and_fails(tiny_bundle, bad_files, tmp_path, kind):
    bad = bad_files[kind]
    path = tmp_path / f"poster{bad.suffix}"
    path.write_bytes(bad.data)
    done = posterq("label", path.name, "--model", str(tiny_bundle), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"posterq label: {path.name}: {bad.code}: ") and len(line) > 40
    assert not (tmp_path / "genres.csv").exists()


def test_help_says_how_rows_are_named():
    done = posterq("label", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for phrase in ("PATH [PATH ...]", "One poster file and no --out", "FOLDER/path inside it",
                   "genres.csv unless --out"):
        assert phrase in text


def test_bad_bundle_exits_2(copy_bundle, folder, tmp_path):
    bundle = copy_bundle()
    (bundle / "model.tflite").write_bytes(b"not the model")
    done = posterq("label", str(folder), "--model", str(bundle), "--out", str(tmp_path / "o.csv"))
    assert done.returncode == 2
    assert "does not match" in done.stderr and "Traceback" not in done.stderr


def test_service_settings_do_not_stop_label(tiny_bundle, folder, tmp_path):
    # label reads POSTERQ_MODEL alone: a service setting it does not use cannot break it.
    out = tmp_path / "genres.csv"
    env = {**os.environ, "POSTERQ_MODEL": str(tiny_bundle), "POSTERQ_BATCH_SIZE": "nonsense"}
    done = posterq("label", str(folder), "--out", str(out), "--workers", "1", "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 15


def test_unknown_output_format_exits_2(tiny_bundle, folder, tmp_path):
    done = posterq("label", str(folder), "--model", str(tiny_bundle), "--out", str(tmp_path / "o.txt"))
    assert done.returncode == 2 and "format" in done.stderr


def test_version_and_help():
    done = posterq("--version")
    assert done.returncode == 0 and done.stdout.startswith("posterq ")
    done = posterq("--help")
    assert done.returncode == 0
    for command in ("label", "submit", "worker", "api", "train", "evaluate"):
        assert command in done.stdout


@pytest.fixture
def complete_result(tiny_bundle, tmp_path):
    """A folder of 60 posters and keep.csv, the complete result of labelling it (issue 23 had 500)."""
    root = tmp_path / "posters"
    write_posters(root, 60)
    out = tmp_path / "keep.csv"
    done = posterq("label", str(root), "--out", str(out), "--model", str(tiny_bundle), "--workers", "1",
                   "--no-progress")
    assert done.returncode == 0 and len(out.read_text().splitlines()) == 1 + 60, done.stderr
    return root, out, out.read_bytes()


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["terminal", "started-ignoring-sigint"])
def test_ctrl_c_while_re_running_keeps_the_result_and_sets_the_finished_rows_aside(
        tiny_bundle, complete_result, tmp_path, sigint_ignored):
    # Issue 23: Ctrl-C part-way through re-running `posterq label` replaced a complete keep.csv with
    # the rows finished so far. Also started as a CI script's background job is (SIGINT ignored).
    root, out, before = complete_result
    write_posters(root, 400, start=100)  # the folder grew: the re-run has 460 posters to label
    with running("label", str(root), "--out", str(out), "--model", str(tiny_bundle), "--workers", "2",
                 "--batch-size", "1", "--no-progress", sigint_ignored=sigint_ignored) as process:
        # Ctrl-C once the run's temporary file holds 5 rows, the run frozen while that is checked.
        stderr = interrupt_when(process, lambda: _partial_lines(tmp_path) >= 1 + 5)
    assert process.returncode == 130, stderr
    assert out.read_bytes() == before
    aside = tmp_path / "keep.csv.partial"
    finished = aside.read_text().splitlines()
    assert 5 <= len(finished) - 1 < 460 and finished[0] == before.decode().splitlines()[0]
    assert f"{out} left as it was; {len(finished) - 1} rows written to {aside}" in stderr
    assert "Traceback" not in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.csv", "keep.csv.partial", "posters"]


def test_a_run_with_no_poster_labelled_fails_and_keeps_the_result(tiny_bundle, complete_result, tmp_path):
    # Issue 23: a folder holding only a text file named notes.jpg printed "0 ok, 1 errors", exited 0
    # and replaced a complete keep.csv with one error row.
    _, out, before = complete_result
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.jpg").write_text("call the distributor on monday\n")
    aside = tmp_path / "keep.csv.partial"
    for run in (1, 2):
        done = posterq("label", str(notes), "--out", str(out), "--model", str(tiny_bundle))
        assert done.returncode == 1, done.stderr
        assert out.read_bytes() == before
        assert "0 ok, 1 errors (not_an_image 1)" in done.stdout and f"wrote {out}" not in done.stdout
        # The first run's side file is never replaced: the second takes the next free name.
        expected = aside if run == 1 else tmp_path / "keep.csv.2.partial"
        assert done.stderr.strip().splitlines()[-1] == (
            f"posterq label: no poster could be labelled: {out} left as it was; 1 row written to {expected}")
        (error_row,) = read_csv(expected)
        assert (error_row["path"], error_row["error"]) == ("notes.jpg", "not_an_image")


def test_one_file_that_cannot_be_labelled_fails_and_keeps_the_result(tiny_bundle, complete_result, tmp_path):
    _, out, before = complete_result
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a poster")
    done = posterq("label", str(notes), "--out", str(out), "--model", str(tiny_bundle))
    assert done.returncode == 1 and out.read_bytes() == before, done.stderr
    assert f"1 row written to {tmp_path / 'keep.csv.partial'}" in done.stderr


def test_side_files_are_not_read_as_posters(tiny_bundle, tmp_path):
    # Run inside the folder with the default result file: an earlier run's side file is no poster.
    root = tmp_path / "posters"
    write_posters(root, 2)
    (root / "genres.csv.partial").write_text("path,genres\n")
    done = posterq("label", ".", "--model", str(tiny_bundle), "--workers", "1", cwd=root)
    assert done.returncode == 0, done.stderr
    assert [row["path"] for row in read_csv(root / "genres.csv")] == ["poster_000.jpg", "poster_001.png"]


def _partial_lines(folder: Path) -> int:
    # The run's own temporary file beside the result (results.open_writer): .keep.csv.RANDOM.partial
    partial = next(folder.glob(".keep.csv.*.partial"), None)
    return len(partial.read_text().splitlines()) if partial else 0


def test_an_empty_folder_is_an_error_and_keeps_the_last_result(tiny_bundle, tmp_path):
    out = tmp_path / "genres.csv"
    out.write_text("path,genres\nlast-run.jpg,Drama\n")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / ".hidden.jpg").write_bytes(b"x")
    done = posterq("label", str(empty), "--out", str(out), "--model", str(tiny_bundle))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"posterq label: error: no poster files in {empty}: nothing written, {out} left as it was"]
    assert out.read_text() == "path,genres\nlast-run.jpg,Drama\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "genres.csv"]


def test_a_run_that_fails_keeps_the_last_result(tiny_bundle, tmp_path):
    # The output folder vanishes mid-run... simplest real failure: the result goes to a folder the
    # run cannot rename into. Here: an output path that is a directory; the partial file is removed.
    out = tmp_path / "genres.csv"
    out.mkdir()
    (out / "keep").write_text("kept")
    folder = tmp_path / "posters"
    write_posters(folder, 3)
    done = posterq("label", str(folder), "--out", str(out), "--model", str(tiny_bundle))
    assert done.returncode == 2 and "cannot write" in done.stderr
    assert (out / "keep").read_text() == "kept"
    assert not list(tmp_path.glob(".genres.csv.*"))


def _rows(out: Path) -> dict[str, dict]:
    with open(out, newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def test_label_reuse_keeps_the_rows_of_unchanged_files(tiny_bundle, tmp_path):
    from samples import poster_bytes

    root = tmp_path / "posters"
    write_posters(root, 4)
    out = tmp_path / "genres.csv"
    args = ("label", str(root), "--out", str(out), "--model", str(tiny_bundle), "--workers", "1", "--reuse")
    first = posterq(*args)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "genres.csv.posterq-cache.json").is_file()
    rows = _rows(out)
    assert {row["reused"] for row in rows.values()} == {"false"}
    # A row a classification would never give: kept as it is only if the file is not labelled again.
    lines = out.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(line.replace(f"poster_000.jpg,{rows['poster_000.jpg']['genres']},",
                                          "poster_000.jpg,Kept,") for line in lines) + "\n", encoding="utf-8")
    (root / "poster_001.png").write_bytes(poster_bytes(40, "PNG"))  # same name, new bytes
    touched = root / "poster_002.jpg"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same bytes
    second = posterq(*args)
    assert second.returncode == 0, second.stderr
    assert "2 rows reused" in second.stdout
    again = _rows(out)
    assert {name: row["reused"] for name, row in again.items()} == {
        "poster_000.jpg": "true", "poster_001.png": "false", "poster_002.jpg": "false",
        "poster_003.png": "true"}
    assert again["poster_000.jpg"]["genres"] == "Kept"
    assert again["poster_003.png"]["genres"] == rows["poster_003.png"]["genres"]
    assert again["poster_003.png"]["Drama"] == rows["poster_003.png"]["Drama"]
    # Without --reuse every file is labelled again.
    third = posterq(*args[:-1])
    assert third.returncode == 0, third.stderr
    assert _rows(out)["poster_000.jpg"]["genres"] == rows["poster_000.jpg"]["genres"]
    assert {row["reused"] for row in _rows(out).values()} == {"false"}


def test_label_reuse_reads_json_lines_too(tiny_bundle, tmp_path):
    root = tmp_path / "posters"
    write_posters(root, 2)
    out = tmp_path / "genres.jsonl"
    args = ("label", str(root), "--out", str(out), "--model", str(tiny_bundle), "--workers", "1", "--reuse")
    assert posterq(*args).returncode == 0
    first = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    done = posterq(*args)
    assert done.returncode == 0, done.stderr
    second = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["reused"] for row in second] == [True, True]
    assert [(row["genres"], row["scores"]) for row in second] == [(row["genres"], row["scores"])
                                                                  for row in first]
