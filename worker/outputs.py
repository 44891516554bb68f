"""Output files: a finished directory job's results written where its submission asked, as
SageMaker Batch Transform writes its output beside the input.

The file is written under a temporary name in the same folder and renamed when complete, so a
reader never sees half a file and an existing file is replaced only by a whole one. The job's row
records when it was written; the sweep sends the task again for a finished job whose file is
still missing (its worker died, or the task was lost), and a second writing is harmless.
"""

import logging
import os
from pathlib import Path

from posterq.exceptions import PosterqError
from posterq.genres import GENRES
from posterq.jobs.schema import JobStatus
from posterq.jobs.store import JobStore
from posterq.results import format_for, make_writer

log = logging.getLogger(__name__)


def write_output(store: JobStore, job_id: str) -> Path | None:
    """Write a finished job's results to its output file; return the file (None when nothing is due)."""
    job = store.ledger.get(job_id)
    if (job is None or not job["output"] or job["output_written_at"] is not None
            or job["status"] not in (JobStatus.DONE.value, JobStatus.FAILED.value)):
        return None
    try:
        # Checked again here: the roots may have changed, or the folder become a symlink out of them.
        path = store.settings.resolve_output_path(job["output"])
    except PosterqError as exc:
        log.error("job %s: its output %s cannot be written: %s", job_id, job["output"], exc.message)
        return None
    genres = (job["model"] or {}).get("genres") or GENRES
    partial = path.with_name(f".{path.name}.{job_id}.partial")
    with open(partial, "w", encoding="utf-8", newline="") as stream:
        writer = make_writer(stream, format_for(path), genres)
        for result in store.ledger.stream(job_id):
            writer.write({key: result[key] for key in ("path", "genres", "error", "scores")})
    os.replace(partial, path)
    store.ledger.output_written(job_id)
    log.info("job %s: results written to %s", job_id, path)
    return path
