"""Output files: a finished directory job's results written where its submission asked, as
SageMaker Batch Transform writes its output beside the input.

posterq.output_files writes the file whole under a private temporary name (created exclusively,
never through a link) and puts it in place without replacing an existing file unless the job
asked `"overwrite": true`. The job's row records when it was written, or why it was not: an error
no retry can mend (the name exists, is too long, the folder is gone) is final at once; another (a
full disk) is tried again up to max_output_tries times, counted in the row, so the task's retries
and the sweep's nudges share one bound. Either way the job's view shows the error.
"""

import logging
from pathlib import Path

from posterq import output_files
from posterq.exceptions import OutputError, PosterqError
from posterq.jobs.export import export
from posterq.jobs.keys import JobStatus
from posterq.jobs.store import JobStore
from posterq.results import format_for

log = logging.getLogger(__name__)


def write_output(store: JobStore, job_id: str) -> Path | None:
    """Write a finished job's results to its output file; return the file (None when nothing is due).

    Raises OutputError for a failure that will be tried again; a final one is recorded and returns None.
    """
    job = store.ledger.get(job_id)
    if (job is None or not job["output"] or job["output_written_at"] is not None or job["output_failed"]
            or job["status"] not in (JobStatus.DONE.value, JobStatus.FAILED.value)):
        return None

    def fill(stream) -> None:
        for piece in export(job, store.ledger.stream(job_id), format_for(path)):
            stream.write(piece)

    # The path resolved (no link in it) and checked against the roots, the key's own included, at submit.
    path = Path(job["output"])
    try:
        # Checked again here: the roots may have changed, or a folder become a link out of them.
        if store.settings.resolve_output_path(path) != path:
            # A link, even one within the roots, may lead into another key's folder.
            raise OutputError("a folder on the output's path became a symbolic link after submit; nothing "
                              "was written", "output_folder_changed")
        output_files.write(path, job["output_overwrite"], fill)
    except PosterqError as exc:
        error = exc if isinstance(exc, OutputError) else OutputError(exc.message, exc.code)
        final = store.ledger.output_failed(job_id, error.as_dict(), error.permanent,
                                           store.settings.max_output_tries)
        if final:
            log.error("job %s: its output %s was not written: %s (%s)", job_id, job["output"],
                      error.message, error.code)
            return None
        raise error from None
    store.ledger.output_written(job_id)
    log.info("job %s: results written to %s", job_id, path)
    return path
