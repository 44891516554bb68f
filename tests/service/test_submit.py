"""`posterq submit` against the live API and a worker: split by limits, same rows as `posterq label`."""

import csv
import io
import os

import numpy as np
import pytest
from commands import posterq
from samples import bad_file_kinds, write_posters

from posterq.cli import main
from posterq.client import ServiceClient
from posterq.frames import to_frame
from posterq.results import csv_header


@pytest.fixture(scope="module", autouse=True)
def worker(start_worker):
    """One worker process for the module."""
    return start_worker("submit-worker@test")


def test_submit_writes_what_label_writes(api, tiny_bundle, tmp_path, service_settings, capsys):
    folder = tmp_path / "posters"
    write_posters(folder, service_settings.max_posters_per_job + 5)  # more than one job holds
    (folder / "notes.txt").write_bytes(bad_file_kinds()["text"].data)
    (folder / "huge.jpg").write_bytes(b"\xff" * (service_settings.max_file_bytes + 1))
    out_service, out_local = tmp_path / "service.csv", tmp_path / "local.csv"
    assert main(["submit", str(folder), "--api", api.url, "--out", str(out_service), "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert "2 job(s)" in summary and f"wrote {out_service}" in summary
    assert main(["label", str(folder), "--model", str(tiny_bundle), "--out", str(out_local),
                 "--workers", "1", "--no-progress"]) == 0
    service_rows = list(csv.DictReader(io.StringIO(out_service.read_text())))
    local_rows = list(csv.DictReader(io.StringIO(out_local.read_text())))
    assert [r["path"] for r in service_rows] == [r["path"] for r in local_rows]
    assert len(service_rows) == service_settings.max_posters_per_job + 7
    for ours, theirs in zip(service_rows, local_rows, strict=True):
        if ours["path"] == "huge.jpg":  # over the service's per-poster limit, not over label's
            assert ours["error"] == "too_large"
            continue
        assert (ours["genres"], ours["error"]) == (theirs["genres"], theirs["error"]), ours["path"]
        for genre in ("Drama", "Comedy", "Horror"):
            if theirs[genre]:
                assert float(ours[genre]) == pytest.approx(float(theirs[genre]), abs=2e-6)


def test_client_gives_a_jobs_results_as_a_frame(api, classifier, tmp_path):
    files = [(path.name, path.read_bytes()) for path in write_posters(tmp_path / "posters", 3)]
    files.append(("notes.txt", bad_file_kinds()["text"].data))
    client = ServiceClient(api.url)
    job = client.submit(files)
    client.wait([job["id"]], timeout=60)
    frame = client.results_frame(job["id"]).sort_values("path", ignore_index=True)
    genres = list(classifier.bundle.genres)
    predictions = classifier.classify([data for _, data in files])
    local = to_frame(zip([name for name, _ in files], predictions, strict=True), genres)
    local = local.sort_values("path", ignore_index=True)
    assert list(frame.columns) == csv_header(genres)
    assert frame["path"].tolist() == local["path"].tolist() == sorted(name for name, _ in files)
    assert frame["genres"].tolist() == local["genres"].tolist()
    assert frame["error"].fillna("").tolist() == local["error"].fillna("").tolist()
    assert frame["error"].fillna("").tolist() == ["not_an_image", "", "", ""]  # notes.txt first
    assert np.allclose(frame[genres], local[genres], atol=2e-6, equal_nan=True)


def test_submit_names_a_file_that_is_not_utf8_as_label_does(api, tiny_bundle, tmp_path):
    folder = tmp_path / "odd-names"
    write_posters(folder, 2)
    (folder / "poster_000.jpg").rename(folder / os.fsdecode(b"bad\xff\xfename.jpg"))
    out_service, out_local = tmp_path / "service.csv", tmp_path / "local.csv"
    assert main(["submit", str(folder), "--api", api.url, "--out", str(out_service), "--no-progress"]) == 0
    assert main(["label", str(folder), "--model", str(tiny_bundle), "--out", str(out_local),
                 "--workers", "1", "--no-progress"]) == 0
    service_rows = list(csv.DictReader(io.StringIO(out_service.read_text("utf-8"))))
    local_rows = list(csv.DictReader(io.StringIO(out_local.read_text("utf-8"))))
    assert [(r["path"], r["genres"]) for r in service_rows] == [(r["path"], r["genres"]) for r in local_rows]
    assert [r["path"] for r in service_rows] == ["bad\\xff\\xfename.jpg", "poster_001.png"]
    assert all(r["genres"] and not r["error"] for r in service_rows)


def test_a_folder_with_no_poster_labelled_fails_and_keeps_the_result(api, tmp_path):
    # Issue 23: a folder holding only a text file named notes.jpg printed "0 ok, 1 errors", exited 0
    # and replaced a complete keep.csv with one error row; the service calls such a job failed.
    posters, notes = tmp_path / "posters", tmp_path / "notes"
    write_posters(posters, 6)
    notes.mkdir()
    (notes / "notes.jpg").write_text("call the distributor on monday\n")
    out = tmp_path / "keep.csv"
    first = posterq("submit", str(posters), "--api", api.url, "--out", str(out), "--no-progress")
    assert first.returncode == 0 and len(out.read_text().splitlines()) == 1 + 6, first.stderr
    before = out.read_bytes()
    done = posterq("submit", str(notes), "--api", api.url, "--out", str(out), "--no-progress")
    assert done.returncode == 1, done.stderr
    assert out.read_bytes() == before
    aside = tmp_path / "keep.csv.partial"
    assert "0 ok, 1 errors" in done.stdout and f"wrote {out}" not in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        f"posterq submit: no poster could be labelled: {out} left as it was; 1 row written to {aside}")
    (row,) = csv.DictReader(io.StringIO(aside.read_text()))
    assert (row["path"], row["error"]) == ("notes.jpg", "not_an_image")


def test_a_result_file_that_cannot_be_written_exits_2_and_leaves_no_temporary_file(api, tmp_path):
    posters = tmp_path / "posters"
    write_posters(posters, 2)
    out = tmp_path / "genres.csv"
    out.mkdir()  # a folder where the file should go: the rename over it fails
    done = posterq("submit", str(posters), "--api", api.url, "--out", str(out), "--no-progress")
    assert done.returncode == 2 and f"cannot write {out}" in done.stderr and "Traceback" not in done.stderr
    assert list(out.iterdir()) == [] and not list(tmp_path.glob(".genres.csv.*"))


def test_submit_reuses_a_folder_sent_again_unless_told_not_to(api, worker, tmp_path, capsys):
    # Reuse needs the worker's model known from its heartbeat, which the test's clean Redis lost.
    worker.wait_ready()
    folder = tmp_path / "posters"
    write_posters(folder, 3)
    out = tmp_path / "genres.csv"

    def reused(*options: str) -> list[str]:
        args = ["submit", str(folder), "--api", api.url, "--out", str(out), "--no-progress", *options]
        assert main(args) == 0
        capsys.readouterr()
        return [row["reused"] for row in csv.DictReader(io.StringIO(out.read_text()))]

    assert reused() == ["false"] * 3
    assert reused() == ["true"] * 3
    assert reused("--no-reuse") == ["false"] * 3
