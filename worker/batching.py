"""One batch, start to end, as plain functions: claim posters, read them, classify, write results.

Why batches are claimed from a Redis list rather than carried in the Celery message: the API
cannot know which jobs will arrive together, and the interpreter should see posters of several
small jobs in one invoke. So each Celery task is a *token* ("classify up to batch_size posters")
and takes whatever refs are ready, waiting at most max_batch_wait for stragglers. The claim moves
refs atomically into a list named after the Celery task id; late acknowledgement means a killed
worker's task is delivered again with the same id, finds that list, and classifies the same
posters. The API sends ceil(n / batch_size) tokens per job, and a token either fills its batch or
empties the ready list, so tokens never run out while refs wait.
"""

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from posterq.classifier import Prediction
from posterq.config import Settings
from posterq.exceptions import PosterqError
from posterq.labelling import read_poster
from posterq.results import row as result_row
from posterq.store import BATCH_SECONDS_BUCKETS, BATCH_SIZE_BUCKETS, ItemKind, JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchReport:
    """What one delivery of a batch task did."""

    batch_id: str
    delivery: int
    claimed: int
    written: int
    finished_jobs: tuple[str, ...] = ()


def read_item(item: dict, settings: Settings) -> bytes:
    """Return a poster's bytes: its upload, or its file under a data root (raises PosterqError)."""
    if item["kind"] == ItemKind.UPLOAD.value:
        if item["data"] is None:
            raise PosterqError("the uploaded bytes expired before a worker got to them", "upload_expired")
        return item["data"]
    # Checked again here: the file may have become a symlink out of the roots since submission.
    return read_poster(settings.resolve_data_path(item["path"]), settings.max_file_bytes)


def classify_items(classifier, items: list[dict], settings: Settings) -> list[tuple[dict, str]]:
    """Classify items in one invoke; return (result, outcome) per item, outcome 'ok' or an error code."""
    inputs, errors = [], {}
    for position, item in enumerate(items):
        try:
            if item.get("error"):  # refused at submission (an oversized upload, say)
                raise PosterqError(item["error"]["message"], item["error"]["code"])
            inputs.append(classifier.preprocess(read_item(item, settings)))
        except PosterqError as exc:
            errors[position] = exc
    scores = iter(classifier.predict(np.stack(inputs)) if inputs else [])
    genres = classifier.bundle.genres
    out = []
    for position, item in enumerate(items):
        if position in errors:
            out.append((_result(item, errors[position], genres), errors[position].code))
            continue
        row = next(scores)
        named = {genre: float(score) for genre, score in zip(genres, row)}
        prediction = Prediction(classifier.label(row, item["top_k"]), named)
        out.append((_result(item, prediction, genres), "ok"))
    return out


def _result(item: dict, outcome, genres) -> dict:
    # The row `posterq label` writes (posterq.results), plus where it sits in its job.
    return {"index": item["index"], "name": item["name"], **result_row(item["name"], outcome, genres)}


def fail_items(items: list[dict], error: PosterqError) -> list[tuple[dict, str]]:
    """Results that give every item the same error."""
    return [(_result(item, error, ()), error.code) for item in items]


def run_batch(store: JobStore, classifier_factory, batch_id: str, hostname: str) -> BatchReport:
    """Run one delivery of a batch task: claim, classify, write each result once, forget the batch."""
    settings = store.settings
    delivery = store.start_batch(batch_id)
    started = time.monotonic()
    if delivery > 1 + settings.max_redeliveries and store.claimed(batch_id):
        # A batch that keeps killing its worker (or keeps failing) must not circle forever.
        refs = store.claimed(batch_id)
        log.warning("batch %s: delivery %d, failing its %d posters", batch_id, delivery, len(refs))
        error = PosterqError(f"the batch was delivered {delivery} times without finishing",
                             "redelivered_too_often")
        live = [item for item in store.load(refs) if item is not None]
        rows, model = fail_items(live, error), _model_of(classifier_factory)
    else:
        refs = store.claim(batch_id, settings.batch_size, settings.max_batch_wait)
        live = [item for item in store.load(refs) if item is not None]
        rows, model = [], {}
        if live:
            try:
                classifier = classifier_factory()
            except PosterqError as exc:
                # A worker that cannot load its model fails posters with the reason, not silently.
                log.error("cannot load the model: %s", exc.message)
                rows = fail_items(live, exc)
            else:
                rows, model = classify_items(classifier, live, settings), model_of(classifier)
    for result, _ in rows:
        result["worker"] = hostname
    finished = store.write_results(
        [(item["job_id"], item["index"], result, outcome) for item, (result, outcome) in zip(live, rows)],
        model)
    store.finish_batch(batch_id)
    seconds = time.monotonic() - started
    if rows:
        store.observe("batch_size", len(rows), BATCH_SIZE_BUCKETS)
        store.observe("batch_seconds", seconds, BATCH_SECONDS_BUCKETS)
        store.count("batches")
        log.info("batch %s (delivery %d): %d posters in %.3f s", batch_id, delivery, len(rows), seconds)
    return BatchReport(batch_id, delivery, len(refs), len(rows), tuple(job for job, _ in finished))


def model_of(classifier) -> dict:
    """The model a job reports: name, version, and its genres in output order (the CSV columns)."""
    return {**classifier.bundle.model_id, "genres": list(classifier.bundle.genres)}


def _model_of(classifier_factory) -> dict:
    try:
        return model_of(classifier_factory())
    except PosterqError:
        return {}


def default_threads(processes: int, settings: Settings) -> int:
    """Interpreter threads per process so that processes x threads ~ cores."""
    if settings.threads:
        return settings.threads
    return max(1, (os.cpu_count() or 1) // max(1, processes))
