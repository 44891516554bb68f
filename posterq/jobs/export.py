"""Result export: a job's finished results as CSV or JSON Lines, for downloads and output files alike.

The rows are those `posterq label` writes (posterq.results), so that a download, an output file
and a local run of the same posters give the same bytes; each row carries the version of the
model that labelled it (the ledger keeps it per result).
"""

import io
from collections.abc import Iterable, Iterator, Sequence

from posterq.genres import GENRES
from posterq.results import ROW_FIELDS, make_writer

#: Export leaves in pieces of about this many bytes, so that a million-row job never sits in memory.
CHUNK_BYTES = 64 * 1024


def job_genres(job: dict) -> Sequence[str]:
    """The genres a job's results are scored over: its model's (the ledger's row), or the default model's."""
    return tuple((job.get("model") or {}).get("genres") or GENRES)


def export(job: dict, results: Iterable[dict], format: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The job's finished results (Ledger.stream) written as `format` ("csv" or "jsonl"), in text pieces."""
    buffer = io.StringIO()
    writer = make_writer(buffer, format, job_genres(job))
    for result in results:
        writer.write({key: result.get(key) for key in ROW_FIELDS})
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
