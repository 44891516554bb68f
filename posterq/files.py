"""Poster files on disk: list a folder the one way every command does, read a file within the limit."""

import os
import stat
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from posterq.config import MAX_FILE_BYTES
from posterq.exceptions import ImageError

#: Starts a path (or a listing cursor) kept in exact_text's escaped form. An absolute path never
#: starts with it, and a relative one that does is escaped too, so the form is unambiguous.
EXACT_PREFIX = "bytes:"


def display_name(name: str) -> str:
    """A file name as text anyone can read: bytes that are not UTF-8 shown as \\xNN escapes (as `ls -b`).

    The file system gives a name that is not UTF-8 with those bytes as lone surrogates
    (surrogateescape), which no UTF-8 file, database or terminal can take. UTF-8 names are as they are.
    """
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (JSON's "\ud800")
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def exact_text(path: str) -> str:
    """A path as UTF-8 text that gives the very same bytes back (from_exact_text): for a database.

    A UTF-8 path is itself; any other is EXACT_PREFIX and its bytes percent-escaped (RFC 3986),
    e.g. "bytes:/data/bad%FF%FEname.jpg".
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if not path.startswith(EXACT_PREFIX):
            return path
    return EXACT_PREFIX + urllib.parse.quote_from_bytes(os.fsencode(path), safe="/")


def from_exact_text(text: str) -> str:
    """The path exact_text() was given, as os functions take it (other bytes surrogate-escaped)."""
    if text.startswith(EXACT_PREFIX):
        return os.fsdecode(urllib.parse.unquote_to_bytes(text[len(EXACT_PREFIX):]))
    return text


@dataclass(frozen=True)
class UnlistedFolder:
    """A folder under the root that could not be listed (walk_files goes on past it)."""

    parts: tuple[str, ...]
    reason: str


def walk_files(root: str | os.PathLike, recursive: bool = True, after: tuple[str, ...] = ()
               ) -> Iterator[Path | UnlistedFolder]:
    """Every file under root in iter_files' order, one folder listing at a time, after `after`.

    `after` is a file's path relative to root, as parts: a listing that stopped there resumes
    with the next file. Sorting each folder's names and descending in that order gives the order
    of sorting whole relative paths by parts. A folder that cannot be listed (no permission, or
    gone since its parent was listed) comes as an UnlistedFolder, in its place.
    """
    yield from _walk(Path(root), (), tuple(after), recursive)


def _walk(folder: Path, parts: tuple[str, ...], after: tuple[str, ...], recursive: bool):
    try:
        with os.scandir(folder) as listing:
            entries = sorted((entry for entry in listing if not entry.name.startswith(".")),
                             key=lambda entry: entry.name)
    except OSError as exc:
        if parts > after or not after:  # the root itself only on a first pass
            yield UnlistedFolder(parts, exc.strerror or str(exc))
        return
    for entry in entries:
        child = (*parts, entry.name)
        try:
            is_dir = entry.is_dir()  # follows a symlink, as os.walk does
        except OSError:
            is_dir = False
        if is_dir:
            # As os.walk without followlinks: a symlinked folder is not descended into.
            if recursive and not entry.is_symlink() and child >= after[:len(child)]:
                yield from _walk(Path(entry.path), child, after, recursive)
        elif child > after:
            yield Path(entry.path)


def iter_files(root: str | os.PathLike, exclude: Iterable[str | os.PathLike] = (),
               recursive: bool = True) -> list[Path]:
    """Every file under root (recursively by default), sorted by relative path, without dot-names."""
    excluded = {os.path.realpath(path) for path in exclude}
    return [path for path in walk_files(root, recursive)
            if isinstance(path, Path) and (not excluded or os.path.realpath(path) not in excluded)]


def read_poster(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a poster file's bytes; raise ImageError (unreadable, too_large) if it cannot be."""
    try:
        # Non-blocking: opening a FIFO (or a device) would otherwise wait for a writer forever.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ImageError("the file is not a regular file (a pipe, socket or device)", "unreadable")
            data = handle.read(max_bytes + 1)
    except OSError as exc:  # permission denied, vanished, a directory, an I/O error...
        raise ImageError(f"the file could not be read: {exc.strerror or exc}", "unreadable") from None
    if len(data) > max_bytes:
        raise ImageError(f"the file is over the limit of {max_bytes} bytes", "too_large")
    return data


def read_or_error(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes | ImageError:
    """A file's bytes, or the ImageError that stopped them being read (for Classifier.classify)."""
    try:
        return read_poster(path, max_bytes)
    except ImageError as exc:
        return exc
