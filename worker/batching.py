"""One batch, start to end, as plain functions: claim posters, read them, classify, write results.

Why batches are claimed from a Redis list rather than carried in the Celery message: the API
cannot know which jobs will arrive together, and the interpreter should see posters of several
small jobs in one invoke. So each Celery task is a *token* ("classify up to batch_size posters")
and takes whatever refs are ready, waiting at most max_batch_wait for stragglers. The claim moves
refs atomically into a list named after the Celery task id; late acknowledgement means a killed
worker's task is delivered again with the same id, finds that list, and classifies the same
posters. The API sends ceil(n / batch_size) tokens per job, and a token either fills its batch or
empties the ready list, so tokens never run out while refs wait; a batch whose claim took a
one-poster call stops at invoke_size and sends a token for the bulk posters it left. A batch runs
in invokes of invoke_size, and a one-poster call that waits between two joins it (a top-up claim
into the same list) and is written at once. What a claim holds, how often a poster may be
claimed, and what the sweep gives back is the claims registry's (posterq.jobs.claims).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from posterq import gate
from posterq.bundle import sha256_of
from posterq.config import Settings
from posterq.exceptions import PosterqError
from posterq.files import from_exact_text, read_poster
from posterq.jobs.broker import tokens_for
from posterq.jobs.claims import redelivered_too_often
from posterq.jobs.keys import ItemKind, Lane, ResultStatus
from posterq.jobs.pools import DEFAULT_POOL
from posterq.jobs.redis_errors import refused
from posterq.jobs.stats import BATCH_SECONDS, BATCH_SIZE, JOB_SECONDS, Counter
from posterq.jobs.store import JobStore
from posterq.results import row as result_row

log = logging.getLogger(__name__)

#: One poster's result as the store writes it (Claims.write_results): job id, index, result, outcome.
Outcome = tuple[str, int, dict, str]


@dataclass(frozen=True)
class BatchReport:
    """What one delivery of a batch task did."""

    batch_id: str
    delivery: int  # the most claims any of its posters has had: 1 on a first delivery
    claimed: int
    written: int
    finished_jobs: tuple[str, ...] = ()
    outputs_due: tuple[str, ...] = ()  # finished jobs that write an output file (posterq.worker.outputs)


def read_item(item: dict, settings: Settings) -> bytes:
    """Return a poster's bytes: its upload, or its file under a data root (raises PosterqError)."""
    if item.get("error"):  # refused at submission (an oversized upload, say)
        raise PosterqError(item["error"]["message"], item["error"]["code"])
    if item["kind"] == ItemKind.UPLOAD.value:
        if item["data"] is None:
            raise PosterqError("the uploaded bytes expired before a worker got to them", "upload_expired")
        return item["data"]
    # Checked again here: the file may have become a symlink out of the roots since submission.
    # The path as listed (posterq.files.exact_text), its bytes exact even where they are not UTF-8.
    return read_poster(settings.resolve_data_path(from_exact_text(item["path"])), settings.max_file_bytes)


def classify_items(classifier, items: list[dict], settings: Settings) -> list[tuple[dict, str]]:
    """Classify items in one invoke; return (result, outcome) per item, outcome 'ok' or an error code."""
    inputs = []
    for item in items:
        try:
            inputs.append(read_item(item, settings))
        except PosterqError as exc:
            inputs.append(exc)
    predictions = classifier.classify(inputs, [item["top_k"] for item in items])
    genres = classifier.bundle.genres
    results = [(_result(item, prediction, genres), _outcome(prediction))
               for item, prediction in zip(items, predictions, strict=True)]
    for (result, _), data in zip(results, inputs, strict=True):
        # The hash of the very bytes classified: what a later job finds this result by (posterq.jobs.reuse).
        result["sha256"] = sha256_of(data) if isinstance(data, bytes) else None
    return results


def _outcome(prediction) -> str:
    # What the job counts: "ok", or the error code (counted per code in /metrics).
    return prediction.error.code if prediction.error else ResultStatus.OK.value


def _result(item: dict, outcome, genres) -> dict:
    # The row `posterq label` writes (posterq.results), plus where it sits in its job.
    return {"index": item["index"], "name": item["name"], **result_row(item["name"], outcome, genres)}


def _outcomes(items: list[dict], results: list[tuple[dict, str]]) -> list[Outcome]:
    # Each item's (result, outcome) as the store writes it.
    return [(item["job_id"], item["index"], result, outcome)
            for item, (result, outcome) in zip(items, results, strict=True)]


def fail_items(items: list[dict], error: PosterqError) -> list[Outcome]:
    """Outcomes that give one error to each of items (for Claims.write_results)."""
    return _outcomes(items, [(_result(item, error, ()), error.code) for item in items])


def run_batch(store: JobStore, classifier_factory, batch_id: str, hostname: str,
              send_tokens: Callable[[int], None] | None = None) -> BatchReport:
    """Run one delivery of a batch task: claim, classify, write each result once, forget the batch.

    Posters claimed too often (posterq.jobs.claims: their batch kept dying, or kept being given
    back) fail with `redelivered_too_often` instead of being classified. Then tops up the windows
    of the directory jobs it served (send_tokens sends their tokens).
    """
    settings, claims = store.settings, store.claims
    started = time.monotonic()
    refs, items, short = claims.claim(batch_id, settings.batch_size, settings.max_batch_wait,
                                      settings.invoke_size)
    if short and send_tokens is not None:
        send_tokens(1)  # its token counted on a full batch: the bulk posters it left need one
    claimed_at = time.time()
    exhausted, live = claims.exhausted(items)
    delivery = max((item["attempts"] for item in items), default=1)
    if live:
        gate.wait(settings.test_gate, gate.BATCH)  # tests only: off unless POSTERQ_TEST_GATE
    outcomes, model, early = _classify_in_steps(store, classifier_factory, batch_id, len(refs), live,
                                                hostname, claimed_at, delivery > 1)
    if exhausted:
        # A poster that keeps killing its worker (or keeps failing) must not circle forever.
        log.warning("batch %s: delivery %d, failing %d posters claimed too often", batch_id, delivery,
                    len(exhausted))
        outcomes += fail_items(exhausted, redelivered_too_often(delivery))
        model = model or _model_of(classifier_factory)
    for _, _, result, _ in outcomes:
        result["worker"] = hostname
    finished = early.finished + claims.write_results(outcomes, model, claimed_at)
    items += early.items
    # Done with the batch before its figures: a Redis too full to take them (they grow its
    # memory) must not make the batch run again.
    claims.finish(batch_id)
    seconds = time.monotonic() - started
    observations = [(JOB_SECONDS, job.seconds) for job in finished]
    outcomes += early.outcomes
    if outcomes:
        # One round trip for the batch's figures; lost, not retried, when Redis refuses them.
        try:
            store.stats.observe_many([*observations, (BATCH_SIZE, len(outcomes)), (BATCH_SECONDS, seconds)],
                                     [(Counter.BATCHES, 1)])
            # Throughput is the whole service's, whichever pool the batch served (the dashboard's plot).
            store.for_pool(DEFAULT_POOL).stats.count_posters(hostname, len(outcomes))
        except Exception as exc:
            if not refused(exc):
                raise
            log.warning("batch %s: its figures were not counted: %s", batch_id, exc)
        log.info("batch %s (delivery %d): %d posters in %.3f s", batch_id, delivery, len(outcomes), seconds)
    if send_tokens is not None:
        # Only a directory job's posters come through its window (an upload job's were all made
        # ready at submission; the sweep tops up one whose Redis state it restored).
        listed = {item["job_id"] for item in items if item["kind"] == ItemKind.PATH.value}
        made = sum(store.window.top_up(job_id) for job_id in sorted(listed))
        if made:
            send_tokens(tokens_for(made, settings.batch_size))
    return BatchReport(batch_id, delivery, len(refs) + len(early.items), len(outcomes),
                       tuple(job.job_id for job in finished),
                       tuple(job.job_id for job in finished if job.has_output))


@dataclass
class _Written:
    """What a batch wrote before its end: one-poster calls it took in between its invokes (items,
    outcomes), and a redelivered batch's posters, each written as soon as it was classified."""

    items: list[dict] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    finished: list = field(default_factory=list)


def _classify_in_steps(store: JobStore, classifier_factory, batch_id: str, held: int, live: list[dict],
                       hostname: str, claimed_at: float, redelivered: bool
                       ) -> tuple[list[Outcome], dict, _Written]:
    # A batch's items in invokes of invoke_size (an invoke costs about the same per poster
    # at any size on a CPU). Between two, a one-poster call waiting for a worker joins the batch and
    # is classified and written next: it waits for one small invoke, not for the rest of a bulk batch.
    # A redelivered batch may hold a poster that kills its worker: each poster is then classified
    # alone and written at once, so that only that poster reaches max_redeliveries, not its batch.
    settings, claims = store.settings, store.claims
    step, outcomes, model, joined = settings.invoke_size, [], {}, _Written()
    if redelivered:
        step = 1
    pending = list(live)
    while pending:
        done, made = _classify_items(classifier_factory, pending[:step], settings)
        model, pending = model or made, pending[step:]
        if redelivered:
            for _, _, result, _ in done:
                result["worker"] = hostname
            joined.finished += claims.write_results(done, model, claimed_at)
            joined.outcomes += done
        else:
            outcomes += done
        if not pending or not store.fair_queue.waiting_in(Lane.INTERACTIVE):
            continue
        held, fresh = claims.join(batch_id, held, step)
        exhausted, calls = claims.exhausted(fresh)
        early, made = _classify_items(classifier_factory, calls, settings)
        if exhausted:
            early += fail_items(exhausted, redelivered_too_often(max(item["attempts"] for item in exhausted)))
        for _, _, result, _ in early:
            result["worker"] = hostname
        joined.finished += claims.write_results(early, made or model, claimed_at)
        joined.items += fresh
        joined.outcomes += early
        model = model or made
    return outcomes, model, joined


def _classify_items(classifier_factory, live: list[dict], settings) -> tuple[list[Outcome], dict]:
    # The outcomes of a fresh claim's items, and the model that made them ({} when none did).
    if not live:
        return [], {}
    try:
        classifier = classifier_factory()
    except PosterqError as exc:
        # A worker that cannot load its model fails posters with the reason, not silently.
        # The log has the reason; a result does not, since it names paths on this host.
        log.error("cannot load the model: %s", exc.message)
        error = PosterqError("the worker cannot load its model; its log says why", exc.code)
        return fail_items(live, error), {}
    return _outcomes(live, classify_items(classifier, live, settings)), model_of(classifier)


def model_of(classifier) -> dict:
    """The model a job reports: name, version, its file's sha256, its genres in output order (the CSV's)."""
    bundle = classifier.bundle
    return {**bundle.identity, "sha256": bundle.meta["sha256"], "genres": list(bundle.genres)}


def _model_of(classifier_factory) -> dict:
    try:
        return model_of(classifier_factory())
    except PosterqError:
        return {}
