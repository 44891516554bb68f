"""Result rows: the one shape `posterq label`, the queue service and `posterq submit` write.

A row is a dict {path, genres: [...], error: {code, message} | None, scores: {genre: float}},
and only that. JSON Lines writes it as it is; CSV flattens it to a CSV record (csv_record: a list
of cells) with the columns path, genres (joined by "|"), error (the code), message, then one score
column per genre, in the model's output order, its text cells made safe to open in a spreadsheet
(csv_cell). posterq.frames puts rows in a pandas DataFrame with the same columns.
"""

import contextlib
import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from posterq.exceptions import PosterqError
from posterq.files import display_name

if TYPE_CHECKING:  # the API writes rows too and must not load LiteRT just for a type name
    from posterq.classifier import Prediction

FORMATS = ("csv", "jsonl")
CSV_FIELDS = ("path", "genres", "error", "message")
GENRE_SEPARATOR = "|"
SCORE_DECIMALS = 6
#: What a CSV text cell may not start with, lest a spreadsheet run it as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# File extensions that name a format, for choosing one from the output file's name.
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def row(path: str | os.PathLike, outcome: "Prediction | PosterqError", genres: Sequence[str]) -> dict:
    """Build one result row from a poster's Prediction (or the error it failed with)."""
    error = outcome if isinstance(outcome, PosterqError) else outcome.error
    if error is not None:
        return {"path": _name(path), "genres": [], "error": error.as_dict(), "scores": {}}
    return {
        "path": _name(path),
        "genres": list(outcome.genres),
        "error": None,
        # Scores are float32 underneath; more decimals would only print noise.
        "scores": {genre: round(float(outcome.scores[genre]), SCORE_DECIMALS) for genre in genres},
    }


def csv_header(genres: Sequence[str]) -> list[str]:
    """The CSV columns for a model's genres."""
    return [*CSV_FIELDS, *genres]


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: NUL bytes dropped, a formula-like start quoted with '."""
    text = text.replace("\x00", "")
    # OWASP's rule for CSV injection: a cell that starts like a formula gets a leading single quote,
    # which spreadsheets show as text and do not run (a file may well be named "=HYPERLINK(...).jpg").
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_record(result: dict, genres: Sequence[str]) -> list[str]:
    """Flatten a row to its CSV record (scores with 6 decimals, empty for errored rows; text via csv_cell)."""
    error = result["error"] or {"code": "", "message": ""}
    scores = result["scores"]
    return [
        csv_cell(result["path"]),
        csv_cell(GENRE_SEPARATOR.join(result["genres"])),
        csv_cell(error["code"]),
        csv_cell(error["message"]),
        *(f"{scores[genre]:.{SCORE_DECIMALS}f}" if genre in scores else "" for genre in genres),
    ]


class CsvWriter:
    """Write rows as CSV to an open text stream, header first, flushing after every row."""

    format = "csv"

    def __init__(self, stream: IO[str], genres: Sequence[str]):
        self.stream, self.genres, self.count = stream, tuple(genres), 0
        self._csv = csv.writer(stream)
        self._csv.writerow(csv_header(self.genres))
        stream.flush()

    def write(self, result: dict) -> None:
        """Write one row and flush it, so an interrupted run keeps every row already done."""
        self._csv.writerow(csv_record(result, self.genres))
        # Counted once buffered: closing the file writes the row out even if the flush is interrupted.
        self.count += 1
        self.stream.flush()


class JsonlWriter:
    """Write rows as JSON Lines to an open text stream, flushing after every row."""

    format = "jsonl"

    def __init__(self, stream: IO[str], genres: Sequence[str]):
        self.stream, self.genres, self.count = stream, tuple(genres), 0

    def write(self, result: dict) -> None:
        """Write one row as one line and flush it."""
        self.stream.write(json.dumps(result, ensure_ascii=False) + "\n")
        self.count += 1  # before the flush, as in CsvWriter.write
        self.stream.flush()


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter}


def format_for(path: str | os.PathLike) -> str:
    """The format an output file's extension names (.csv, .jsonl, .ndjson), or ValueError."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValueError(f"cannot tell the format of {path} from its extension; use csv or jsonl")
    return EXTENSIONS[suffix]


def make_writer(stream: IO[str], format: str, genres: Sequence[str]) -> CsvWriter | JsonlWriter:
    """A writer of `format` ("csv" or "jsonl") over an open text stream."""
    if format not in WRITERS:
        raise ValueError(f"unknown result format {format!r}; choose one of {', '.join(FORMATS)}")
    return WRITERS[format](stream, genres)


def partial_path(path: str | os.PathLike) -> Path:
    """Where open_writer writes a result file until it is complete: a dot-file beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def open_writer(path: str | os.PathLike, format: str | None, genres: Sequence[str]
                ) -> Iterator[CsvWriter | JsonlWriter]:
    """Yield a writer of a result file that replaces `path` only when the block ends without an error.

    The rows go to partial_path(path) and are renamed over `path` at the end, so an existing
    file survives any failure (an error, an empty run) whole; a block that raises leaves no
    partial file behind. format None means from the extension.
    """
    format = format or format_for(path)
    if format not in WRITERS:
        raise ValueError(f"unknown result format {format!r}; choose one of {', '.join(FORMATS)}")
    partial = partial_path(path)
    try:
        # newline="" lets the csv module write its own line ends (it would double them otherwise).
        with open(partial, "w", encoding="utf-8", newline="") as stream:
            yield make_writer(stream, format, genres)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _name(path: str | os.PathLike) -> str:
    # A name that is not UTF-8 is written with \xNN escapes (posterq.files.display_name): every
    # file of a folder is one row, and no CSV or JSON Lines writer can take its raw bytes.
    return display_name(Path(path).as_posix() if isinstance(path, os.PathLike) else str(path))
