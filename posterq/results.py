"""Result rows: the one shape `posterq label`, the queue service and `posterq submit` write.

A row is a dict {path, genres: [...], error: {code, message} | None, model_version, reused, scores:
{genre: float}}, and only that: model_version is the version of the model that labelled the
poster (a job that ran across a rollout has rows of two versions), None where none did; reused
says whether the row is a result stored earlier for the same bytes and model (the service's
posterq.jobs.reuse, `posterq label --reuse`) rather than one classified now. JSON Lines
writes it with its keys in that order; CSV flattens it to a CSV record (csv_record: a list of
cells) with the columns path, genres (joined by "|"), error (the code), message, model_version,
reused (true or false), then one score column per genre, in the model's output order, its text
cells made safe to open in a spreadsheet (csv_cell). posterq.frames puts rows in a pandas DataFrame
with the same columns.
"""

import contextlib
import csv
import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from posterq.exceptions import PosterqError
from posterq.files import display_name

if TYPE_CHECKING:  # the API writes rows too and must not load LiteRT just for a type name
    from posterq.classifier import Prediction

FORMATS = ("csv", "jsonl")
#: A row's keys, in the order JSON Lines writes them.
ROW_FIELDS = ("path", "genres", "error", "model_version", "reused", "scores")
CSV_FIELDS = ("path", "genres", "error", "message", "model_version", "reused")
GENRE_SEPARATOR = "|"
SCORE_DECIMALS = 6
#: What a CSV text cell may not start with, lest a spreadsheet run it as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# File extensions that name a format, for choosing one from the output file's name.
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def row(path: str | os.PathLike, outcome: "Prediction | PosterqError", genres: Sequence[str],
        model_version: str | None = None) -> dict:
    """Build one result row from a poster's Prediction (or the error it failed with) by model_version."""
    error = outcome if isinstance(outcome, PosterqError) else outcome.error
    if error is not None:
        return {"path": _name(path), "genres": [], "error": error.as_dict(), "model_version": model_version,
                "reused": False, "scores": {}}
    return {
        "path": _name(path),
        "genres": list(outcome.genres),
        "error": None,
        "model_version": model_version,
        "reused": False,
        # Scores are float32 underneath; more decimals would only print noise.
        "scores": {genre: round(float(outcome.scores[genre]), SCORE_DECIMALS) for genre in genres},
    }


def scored_genres(rows: Sequence[dict], known: Sequence[str]) -> list[str]:
    """The genres of `known` that the rows score, in `known`'s order (all of `known` when none scores any).

    What a client of the service writes its score columns by: a row's scores come back from the
    database in no set order, and the job does not repeat its model's genres; `known` is GET
    /limits' list, in the order the models' outputs have.
    """
    scored = {genre for result in rows for genre in result.get("scores") or {}}
    return [genre for genre in known if genre in scored] or list(known)


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
        csv_cell(result.get("model_version") or ""),
        "true" if result.get("reused") else "false",
        *(f"{scores[genre]:.{SCORE_DECIMALS}f}" if genre in scores else "" for genre in genres),
    ]


class _Writer:
    """What every writer counts: rows written, rows labelled, and where open_writer left them."""

    def __init__(self, stream: IO[str], genres: Sequence[str]):
        self.stream, self.genres = stream, tuple(genres)
        self.count = self.labelled = 0  # rows written; of them, posters labelled (no error)
        self.replaced = False  # open_writer: the rows replaced the result file
        self.aside: Path | None = None  # open_writer: the side file that keeps an incomplete run's rows

    def _counted(self, result: dict) -> None:
        # Counted once buffered: closing the file writes the row out even if the flush is interrupted.
        self.count += 1
        self.labelled += result["error"] is None


class CsvWriter(_Writer):
    """Write rows as CSV to an open text stream, header first, flushing after every row."""

    format = "csv"

    def __init__(self, stream: IO[str], genres: Sequence[str]):
        super().__init__(stream, genres)
        self._csv = csv.writer(stream)
        self._csv.writerow(csv_header(self.genres))
        stream.flush()

    def write(self, result: dict) -> None:
        """Write one row and flush it, so an interrupted run keeps every row already done."""
        self._csv.writerow(csv_record(result, self.genres))
        self._counted(result)
        self.stream.flush()


class JsonlWriter(_Writer):
    """Write rows as JSON Lines to an open text stream, flushing after every row."""

    format = "jsonl"

    def write(self, result: dict) -> None:
        """Write one row as one line (its keys in ROW_FIELDS order) and flush it."""
        # In one order whoever built the row, so that a download, an output file and a local
        # run give the same bytes; a row from before model_version (a side file) has it null.
        ordered = {key: result.get(key) for key in ROW_FIELDS}
        ordered["reused"] = bool(ordered["reused"])
        self.stream.write(json.dumps(ordered, ensure_ascii=False) + "\n")
        self._counted(result)  # before the flush, as in CsvWriter.write
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


#: The side file of an incomplete run: `keep.csv.partial`, then `keep.csv.2.partial`, ... (never reused).
ASIDE_SUFFIX = ".partial"
#: Numbered side names tried (OUT.partial, OUT.2.partial...) before one with a random part.
ASIDE_TRIES = 100


def partial_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside `path` (a dot-file with a random part, so no one can know it ahead)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}{ASIDE_SUFFIX}")


def create_new(path: str | os.PathLike, mode: str = "w") -> IO:
    """Open a new file, never through a link (O_EXCL|O_NOFOLLOW); FileExistsError if the name is taken."""
    # O_EXCL alone already refuses a symbolic link at the name (even a dangling one); O_NOFOLLOW
    # says so. 0o666 lets the umask decide the mode, as open() does.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    if "b" in mode:
        return os.fdopen(descriptor, mode)
    # newline="" lets the csv module write its own line ends (it would double them otherwise).
    return os.fdopen(descriptor, mode, encoding="utf-8", newline="")


def aside_paths(path: str | os.PathLike) -> list[Path]:
    """The side files of `path` that earlier incomplete runs left beside it (never read as posters)."""
    path = Path(path)
    return sorted(path.parent.glob(f"{glob.escape(path.name)}.*{ASIDE_SUFFIX}")) + \
        [aside for aside in [path.with_name(path.name + ASIDE_SUFFIX)] if os.path.lexists(aside)]


def _set_aside(writer, temporary: Path, path: Path) -> None:
    """Keep an incomplete run's rows under a free side name beside `path`; none when it has no row."""
    if not writer.count:
        return
    names = [f"{path.name}{ASIDE_SUFFIX}", *(f"{path.name}.{n}{ASIDE_SUFFIX}" for n in range(2, ASIDE_TRIES)),
             f"{path.name}.{secrets.token_hex(8)}{ASIDE_SUFFIX}"]
    for name in names:
        aside = path.with_name(name)
        try:
            # A hard link is a rename that refuses an existing name (a file, a link, anything): an
            # earlier side file or someone else's file is never replaced, nor written through.
            os.link(temporary, aside)
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: copy into a file created exclusively
            try:
                with open(temporary, "rb") as source, create_new(aside, "wb") as target:
                    shutil.copyfileobj(source, target)
            except FileExistsError:
                continue
        writer.aside = aside
        return
    raise FileExistsError(f"no free name for the finished rows beside {path}")


@contextlib.contextmanager
def open_writer(path: str | os.PathLike, format: str | None, genres: Sequence[str], partial: bool = False
                ) -> Iterator["CsvWriter | JsonlWriter"]:
    """Yield a writer whose file replaces `path` only if the run is complete and labelled a poster.

    The rows go to a temporary file beside `path`, created exclusively and never through a link.
    A block that ends normally with at least one poster labelled (a row without an error) renames
    it over `path`, atomically. A block that ends with no poster labelled, that raises
    KeyboardInterrupt (Ctrl-C), or whose rows the caller knows to be incomplete (`partial`)
    leaves `path` exactly as it was: its rows, if any, are kept in a side file beside it
    (writer.aside: keep.csv.partial, else the next free keep.csv.N.partial); writer.replaced says
    whether `path` was replaced. Any other error removes the temporary file. format None means
    from the extension.
    """
    format = format or format_for(path)
    if format not in WRITERS:
        raise ValueError(f"unknown result format {format!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    temporary = partial_path(path)
    try:
        with create_new(temporary) as stream:
            writer = make_writer(stream, format, genres)
            try:
                yield writer
            except KeyboardInterrupt:
                stream.close()  # every buffered row on disk before the file is set aside
                _set_aside(writer, temporary, path)
                raise
        if partial or not writer.labelled:
            _set_aside(writer, temporary, path)
        else:
            os.replace(temporary, path)
            writer.replaced = True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def kept(out: str | os.PathLike, writer: "_Writer | None") -> str:
    """What an incomplete run left, for its message: `out` as it was, and the side file of its rows."""
    if writer is None or writer.aside is None:
        return f"no row finished: nothing written, {out} left as it was"
    rows = "1 row" if writer.count == 1 else f"{writer.count} rows"
    return f"{out} left as it was; {rows} written to {writer.aside}"


def _name(path: str | os.PathLike) -> str:
    # A name that is not UTF-8 is written with \xNN escapes (posterq.files.display_name): every
    # file of a folder is one row, and no CSV or JSON Lines writer can take its raw bytes.
    return display_name(Path(path).as_posix() if isinstance(path, os.PathLike) else str(path))
