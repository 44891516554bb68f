"""Labelled poster datasets: one interface, `load_dataset(path) -> Dataset`, over three layouts.

    kaggle  train.csv (Id, Genre, one 0/1 column per genre) and Images/<Id>.jpg
            (the Kaggle "Movie Poster Dataset", Multi_Label_dataset)
    ccu     Movie_Poster_Dataset/<year>/<imdbID>.jpg and groundtruth/<year>.txt, each text file a
            MongoDB export of concatenated records, UTF-16 or UTF-8
    csv     a CSV with the header `path,genres`, genres joined by "|", paths relative to its folder

Genres outside the 24 are handled by who wrote the labels. The plain CSV is written by a user, so
an unknown genre there is a mistake and raises DatasetError("unknown_genre"). The Kaggle and CCU
sets come from IMDb, which has a few real genres the model does not predict (Adult, Talk-Show,
Game-Show, Film-Noir, ...): those are dropped and counted in `Dataset.dropped_genres`, and a record
left with no genre at all is counted in `no_genre`. Every record left out is counted once, under
the first reason found: no_genre, then skipped (image file missing), then duplicates.
"""

import ast
import codecs
import dataclasses
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from posterq.genres import GENRES, canonical
from posterq.training.exceptions import DatasetError

log = logging.getLogger(__name__)

KAGGLE_CSV = "train.csv"
KAGGLE_IMAGES = "Images"
CCU_IMAGES = "Movie_Poster_Dataset"
CCU_LABELS = "groundtruth"
PLAIN_CSV = "labels.csv"
# Labels that say "this title has no genre" rather than naming one.
NO_GENRE = frozenset({"", "N/A", "NA", "None", "none"})
# Mongo shell wrappers such as ObjectId("...") or NumberInt(3): keep the value, drop the call.
_MONGO_WRAPPER = re.compile(
    r'\b(?:ObjectId|NumberInt|NumberLong|NumberDecimal|ISODate|Date|UUID)\(\s*("(?:[^"\\]|\\.)*"|[-+0-9.eE]+)\s*\)'
)
# Where a record that failed to parse ends and the next begins (records are not comma-separated).
_RECORD_BOUNDARY = re.compile(r"\}\s*\{")


@dataclass(frozen=True)
class Example:
    """One poster: its image file and its genres (canonical names, in GENRES order)."""

    path: Path
    genres: tuple[str, ...]


@dataclass
class Dataset:
    """Labelled posters from one source, with counts of the records left out and why.

    `root` is the folder (Kaggle, CCU) or the CSV file (plain layout) the data came from. A subset
    keeps its parent's counts: they describe the load, not the subset.
    """

    root: Path
    layout: str
    examples: list[Example]
    skipped: int = 0  # records whose image file is missing
    no_genre: int = 0  # records with no genre among the 24 (N/A, empty, or only dropped genres)
    dropped_genres: Counter = field(default_factory=Counter)  # genres outside the 24, by name
    bad_records: int = 0  # CCU records that are not valid JSON
    duplicates: int = 0  # records naming an image already taken (the first one wins)

    def __len__(self) -> int:
        return len(self.examples)

    def labels(self, genres=GENRES) -> np.ndarray:
        """Return the (N, len(genres)) uint8 0/1 label matrix, columns in the order of `genres`."""
        column = {genre: i for i, genre in enumerate(genres)}
        matrix = np.zeros((len(self.examples), len(column)), dtype=np.uint8)
        for i, example in enumerate(self.examples):
            for genre in example.genres:
                if genre in column:
                    matrix[i, column[genre]] = 1
        return matrix

    def subset(self, indices) -> "Dataset":
        """Return a Dataset of the examples at `indices`, in the order given."""
        return dataclasses.replace(
            self, examples=[self.examples[int(i)] for i in indices],
            dropped_genres=Counter(self.dropped_genres)
        )

    def positives(self) -> dict[str, int]:
        """Return how many examples carry each genre, for all 24 genres in GENRES order."""
        counts = Counter(genre for example in self.examples for genre in example.genres)
        return {genre: counts[genre] for genre in GENRES}

    def summary(self) -> dict:
        """Return where the data came from and what was left out, JSON-ready."""
        return {
            "path": str(self.root), "layout": self.layout, "n_posters": len(self.examples),
            "skipped": self.skipped, "no_genre": self.no_genre, "bad_records": self.bad_records,
            "duplicates": self.duplicates, "dropped_genres": dict(sorted(self.dropped_genres.items())),
        }


def load_dataset(path) -> Dataset:
    """Load a dataset from a folder (layout detected) or from a CSV file (plain or Kaggle)."""
    path = Path(os.path.normpath(Path(path).expanduser().absolute()))
    if not path.exists():
        raise DatasetError(f"{path} does not exist", "missing_file")
    if path.is_file():
        header = _csv_header(path)
        if _is_plain_header(header):
            return _load_plain(path)
        if "Id" in header:
            return _load_kaggle(path.parent, path)
        raise DatasetError(
            f"{path} is not a dataset CSV: expected the header 'path,genres' or Kaggle's 'Id,Genre,...'",
            "bad_layout",
        )
    return _LOADERS[_detect(path)](path)


def _detect(folder: Path) -> str:
    if (folder / PLAIN_CSV).is_file():
        return "csv"
    if (folder / KAGGLE_CSV).is_file() or (folder / KAGGLE_IMAGES).is_dir():
        return "kaggle"
    if (folder / CCU_IMAGES).is_dir() or (folder / CCU_LABELS).is_dir():
        return "ccu"
    plain = _plain_csvs(folder)
    if len(plain) == 1:
        return "csv"
    if len(plain) > 1:
        names = ", ".join(p.name for p in plain)
        raise DatasetError(f"{folder} holds several CSVs with the header 'path,genres' ({names}): "
                           "pass one of them", "bad_layout")
    message = (f"{folder} matches no dataset layout: looked for {PLAIN_CSV} (or one CSV with the header "
               f"'path,genres'), {KAGGLE_CSV} + {KAGGLE_IMAGES}/ (Kaggle), and {CCU_IMAGES}/ + "
               f"{CCU_LABELS}/ (CCU)")
    # A download often unpacks one folder deeper than the data; say so rather than only failing.
    inner = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and _looks_like_dataset(p)]
    if inner:
        message += f"; did you mean {folder / inner[0]}?"
    raise DatasetError(message, "bad_layout")


def _looks_like_dataset(folder: Path) -> bool:
    markers = (PLAIN_CSV, KAGGLE_CSV, KAGGLE_IMAGES, CCU_IMAGES, CCU_LABELS)
    return any((folder / name).exists() for name in markers)


def _load_plain(target: Path) -> Dataset:
    csv_path = target if target.is_file() else (
        target / PLAIN_CSV if (target / PLAIN_CSV).is_file() else _plain_csvs(target)[0]
    )
    header, table = _read_csv(csv_path)
    header = [name.lower() for name in header]
    if not _is_plain_header(header):
        raise DatasetError(f"{csv_path}: expected the header 'path,genres'", "bad_layout")
    paths, genres = table[header.index("path")], table[header.index("genres")]
    if (paths == "").any():
        raise DatasetError(f"{csv_path}, line {paths.index[paths == ''][0]}: a record needs a path and "
                           "its genres", "bad_record")
    collector = _Collector(strict=True)
    for line, path, names in zip(table.index, paths, genres.str.split("|"), strict=True):
        # An absolute path stays as it is; a relative one is relative to the CSV's folder.
        image = Path(os.path.normpath(csv_path.parent / Path(path).expanduser()))
        collector.add(image, names, f"{csv_path}, line {line}")
    return collector.dataset(csv_path, "csv")


def _load_kaggle(root: Path, csv_path: Path | None = None) -> Dataset:
    csv_path = csv_path or root / KAGGLE_CSV
    images = root / KAGGLE_IMAGES
    for needed, kind in ((csv_path, "file"), (images, "folder")):
        if not (needed.is_file() if kind == "file" else needed.is_dir()):
            raise DatasetError(f"{root} looks like the Kaggle layout but has no {needed.name} {kind}",
                               "missing_file")
    header, table = _read_csv(csv_path)
    if "Id" not in header:
        raise DatasetError(f"{csv_path}: no 'Id' column", "bad_layout")
    flag_cols = [i for i, name in enumerate(header) if name not in ("Id", "Genre")]
    if not flag_cols and "Genre" not in header:
        raise DatasetError(f"{csv_path}: neither a Genre column nor 0/1 genre columns", "bad_layout")
    ids = table[header.index("Id")]
    bad = (ids == "") | ids.str.contains(r"[/\\]")  # an Id names a file inside Images/
    if bad.any():
        line = bad.idxmax()
        raise DatasetError(f"{csv_path}, line {line}: bad Id {ids[line]!r}", "bad_record")
    listed = table[header.index("Genre")].map(_genre_list) if "Genre" in header else None
    if flag_cols:
        # The 0/1 columns are the label; the Genre text is only checked against them.
        names = _flagged(table[flag_cols], header, csv_path)
        if listed is not None:
            disagree = sum(set(one) != set(other) for one, other in zip(listed, names, strict=True))
            if disagree:
                log.warning("%s: %d records whose Genre text disagrees with the 0/1 columns; the "
                            "columns were used", csv_path, disagree)
    else:
        names = listed
    collector = _Collector(strict=False)
    for line, ident, genres in zip(table.index, ids, names, strict=True):
        collector.add(images / f"{ident}.jpg", genres, f"{csv_path}, line {line}")
    return collector.dataset(root, "kaggle")


def _flagged(flags: pd.DataFrame, header: list[str], csv_path: Path) -> list[list[str]]:
    """The genres whose 0/1 column says 1, per record; a flag other than 0, 1 or empty is a bad record."""
    numbers = flags.replace("", "0").apply(pd.to_numeric, errors="coerce")
    bad = ~numbers.isin([0, 1])
    if bad.any(axis=None):
        line = bad.any(axis=1).idxmax()
        column = bad.loc[line].idxmax()
        raise DatasetError(f"{csv_path}, line {line}: genre flag {flags.at[line, column]!r} is not 0 or 1",
                           "bad_record")
    names = [header[i] for i in flags.columns]
    return [[names[j] for j in np.flatnonzero(marks)] for marks in numbers.eq(1).to_numpy()]


def _load_ccu(root: Path) -> Dataset:
    images, labels = root / CCU_IMAGES, root / CCU_LABELS
    for needed in (labels, images):
        if not needed.is_dir():
            raise DatasetError(f"{root} looks like the CCU layout but has no {needed.name}/ folder",
                               "missing_file")
    files = sorted(p for p in labels.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise DatasetError(f"{labels} holds no <year>.txt ground-truth files", "missing_file")
    collector = _Collector(strict=False)
    for file in files:
        for line, record in _records(file, collector):
            ident = str(record.get("imdbID", "")).strip()
            if not ident or "/" in ident or "\\" in ident:
                collector.bad_records += 1
                log.warning("%s, line %d: skipped a record without a usable imdbID", file, line)
                continue
            genre = record.get("Genre") or ""
            names = genre.split(",") if isinstance(genre, str) else [str(name) for name in genre]
            collector.add(images / file.stem / f"{ident}.jpg", names, f"{file}, line {line}")
    return collector.dataset(root, "ccu")


_LOADERS = {"csv": _load_plain, "kaggle": _load_kaggle, "ccu": _load_ccu}


class _Collector:
    """Turns raw records into Examples, counting each one left out under its reason."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.examples: dict[Path, Example] = {}
        self.skipped = self.no_genre = self.bad_records = self.duplicates = 0
        self.dropped = Counter()

    def add(self, image: Path, names, where: str) -> None:
        genres = set()
        for name in names:
            name = name.strip()
            if name in NO_GENRE:
                continue
            genre = canonical(name)
            if genre is not None:
                genres.add(genre)
            elif self.strict:
                raise DatasetError(f"{where}: unknown genre {name!r}; the genres are {', '.join(GENRES)}",
                                   "unknown_genre")
            else:
                self.dropped[name] += 1
        if not genres:
            self.no_genre += 1
        elif not image.is_file():
            self.skipped += 1
            log.debug("%s: image %s is missing", where, image)
        elif image in self.examples:
            self.duplicates += 1
        else:
            self.examples[image] = Example(image, tuple(genre for genre in GENRES if genre in genres))

    def dataset(self, root: Path, layout: str) -> Dataset:
        if not self.examples:
            raise DatasetError(
                f"{root} has no usable examples ({self.skipped} with a missing image, "
                f"{self.no_genre} without a genre, {self.bad_records} unreadable)",
                "empty_dataset",
            )
        data = Dataset(root, layout, sorted(self.examples.values(), key=lambda example: example.path),
                       self.skipped, self.no_genre, self.dropped, self.bad_records, self.duplicates)
        log.info("%s (%s): %d examples; left out %d with a missing image, %d without a genre, "
                 "%d unreadable, %d duplicates", root, layout, len(data), self.skipped, self.no_genre,
                 self.bad_records, self.duplicates)
        if self.skipped:
            log.warning("%s: %d records skipped because their image file is missing", root, self.skipped)
        if self.dropped:
            log.info("%s: dropped genres outside the 24: %s", root, dict(self.dropped))
        return data


def _records(file: Path, collector: _Collector):
    """Yield (line, record) for each JSON object in a Mongo export with no commas between records."""
    text = _MONGO_WRAPPER.sub(r"\1", _decode(file.read_bytes(), file))
    # strict=False: exports keep raw tabs and newlines inside strings (plots, titles).
    decoder = json.JSONDecoder(strict=False)
    position, line, found = 0, 1, 0
    while (start := text.find("{", position)) >= 0:
        if text[position:start].strip(" \t\r\n,[]"):
            log.warning("%s, line %d: ignored text between records", file, line)
        line += text.count("\n", position, start)
        try:
            record, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            collector.bad_records += 1
            log.warning("%s, line %d: skipped a record that is not valid JSON (%s)", file, line, exc.msg)
            boundary = _RECORD_BOUNDARY.search(text, start)
            if boundary is None:
                break
            end = boundary.start() + 1
        else:
            found += 1
            yield line, record
        line += text.count("\n", start, end)
        position = end
    if not found and text.strip():
        raise DatasetError(f"{file}: no readable records", "bad_record")


def _decode(data: bytes, file: Path) -> str:
    """Decode a ground-truth file: the BOM first, then UTF-16 when NUL bytes say so, then UTF-8."""
    candidates = []
    if data.startswith(codecs.BOM_UTF8):
        candidates.append("utf-8-sig")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates.append("utf-16")
    elif b"\x00" in data[:4096]:
        # UTF-16 without a BOM: an ASCII character's zero byte comes second (LE) or first (BE).
        head = data[:4096]
        candidates.append("utf-16-le" if head[1::2].count(0) >= head[0::2].count(0) else "utf-16-be")
    candidates += ["utf-8", "utf-16"]
    fallback = None
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        # A wrong decoding can succeed and yield noise; the right one shows the field names.
        if "imdbID" in text or not text.strip():
            return text
        fallback = fallback or text
    if fallback is None:
        raise DatasetError(f"{file}: neither UTF-16 nor UTF-8 text", "bad_record")
    return fallback


def _read_csv(path: Path, nrows: int | None = None) -> tuple[list[str], pd.DataFrame]:
    """The header (names stripped) and the records of a CSV, every cell stripped text.

    The records' columns are the header's positions, their index their line numbers (the
    header's is 1; exact unless a quoted cell spans lines); blank records are left out. A missing
    trailing cell reads as empty, as spreadsheets write them; a record with more cells than the
    header is a bad record.
    """
    try:
        table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False,
                            encoding="utf-8-sig", nrows=nrows)
    except pd.errors.EmptyDataError:
        return [], pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise DatasetError(f"{path}: {exc}".strip(), "bad_record") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                           "bad_record") from None
    table = table.apply(lambda column: column.str.strip())
    table.index += 1  # line numbers, the header's being 1
    header, records = list(table.iloc[0]), table.iloc[1:]
    return header, records[(records != "").any(axis=1)]


def _csv_header(path: Path) -> list[str]:
    try:
        return _read_csv(path, nrows=1)[0]
    except (OSError, DatasetError):  # not a CSV, or not text
        return []


def _is_plain_header(header: list[str]) -> bool:
    names = {name.strip().lower() for name in header}
    return {"path", "genres"} <= names


def _plain_csvs(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.csv")) if p.is_file() and _is_plain_header(_csv_header(p))]


def _genre_list(text: str) -> list[str]:
    """Read Kaggle's Genre text, "['Comedy', 'Drama']", loosely: it is only cross-checked."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = text.strip().strip("[]").split(",")
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        return []
    return [str(name).strip().strip("'\"").strip() for name in value]
