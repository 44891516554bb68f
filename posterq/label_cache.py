"""`posterq label --reuse`: the rows of an existing result file kept for files that have not changed.

The way of make and rsync: a file whose size, modification time and sha256 are those it had when
its row was written, labelled by the same model (name, version, sha256 of its file) at the same
top_k, keeps its row (marked reused) instead of being decoded and classified again. What a row
was written from lives in a side file beside the result file, OUT.posterq-cache.json, so that the
result file keeps the columns every other run writes:

    {"version": 1, "model": {"name", "version", "sha256"}, "top_k": K or null,
     "files": {row name: [size, mtime_ns, sha256]}}

Only rows without an error are reused (a file that failed is tried again), read back from the
result file itself (CSV or JSON Lines); a result file or side file that cannot be read reuses
nothing.
"""

import contextlib
import csv
import json
import os
from pathlib import Path

from posterq.bundle import sha256_of
from posterq.results import CSV_FIELDS, FORMULA_STARTS, GENRE_SEPARATOR, format_for, partial_path

CACHE_SUFFIX = ".posterq-cache.json"
_VERSION = 1


def cache_path(out: str | os.PathLike) -> Path:
    """The side file beside a result file that says what its rows were written from."""
    out = Path(out)
    return out.with_name(out.name + CACHE_SUFFIX)


def fingerprint(path: Path) -> list:
    """[size, mtime_ns, sha256] of a file (its sha256 read in chunks)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, sha256_of(path)]


def _model(bundle) -> dict:
    return {"name": bundle.name, "version": bundle.version, "sha256": bundle.meta["sha256"]}


def reusable(out: Path, files: list[tuple[str, Path]], bundle, top_k: int | None, result_format: str
             ) -> tuple[dict[str, dict], dict[str, list]]:
    """The rows of `out` that files (name, path) may keep, by name, and every file's fingerprint.

    A file that cannot be read gets no fingerprint (and is labelled, to say why).
    """
    prints = {}
    for name, path in files:
        with contextlib.suppress(OSError):
            prints[name] = fingerprint(path)
    try:
        cache = json.loads(cache_path(out).read_text(encoding="utf-8"))
        rows = _read_rows(out, result_format, bundle.genres)
    except (OSError, ValueError):
        return {}, prints
    if (not isinstance(cache, dict) or cache.get("version") != _VERSION
            or cache.get("model") != _model(bundle) or cache.get("top_k") != top_k
            or not isinstance(cache.get("files"), dict)):
        return {}, prints
    kept = {}
    for name, _ in files:
        row = rows.get(name)
        if row is not None and prints.get(name) is not None and cache["files"].get(name) == prints[name]:
            kept[name] = {**row, "path": name, "reused": True}
    return kept, prints


def save(out: Path, prints: dict[str, list], bundle, top_k: int | None) -> None:
    """Write the side file of a result file just written (replacing any earlier one at once)."""
    text = json.dumps({"version": _VERSION, "model": _model(bundle), "top_k": top_k, "files": prints})
    temporary = partial_path(cache_path(out))
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, cache_path(out))


def _read_rows(out: Path, result_format: str | None, genres) -> dict[str, dict]:
    """The rows of a result file without an error, by the name written (ValueError if unreadable)."""
    result_format = result_format or format_for(out)
    with open(out, encoding="utf-8", newline="") as handle:
        if result_format == "jsonl":
            rows = [json.loads(line) for line in handle if line.strip()]
            return {row["path"]: row for row in rows if isinstance(row, dict) and row.get("error") is None}
        records = csv.reader(handle)
        header = next(records, None)
        if header is None or header[:len(CSV_FIELDS)] != list(CSV_FIELDS):
            raise ValueError("not a result file of this version")
        columns = header[len(CSV_FIELDS):]
        found = {}
        for record in records:
            cells = dict(zip(header, record, strict=False))
            if cells.get("error"):
                continue
            scores = {genre: float(cells[genre]) for genre in columns if cells.get(genre)}
            genres_cell = cells["genres"]
            found[cells["path"]] = {"genres": genres_cell.split(GENRE_SEPARATOR) if genres_cell else [],
                                    "error": None, "model_version": cells["model_version"] or None,
                                    "scores": {genre: scores[genre] for genre in genres if genre in scores}}
        # Names as written (csv_cell) map back to the names rows are given.
        return {_unquoted(name): row for name, row in found.items()}


def _unquoted(cell: str) -> str:
    # csv_cell put a ' before a name that starts like a formula; the file's own name has none.
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell
