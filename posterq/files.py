"""Poster files on disk: list a folder the one way every command does, read a file within the limit."""

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from posterq.config import MAX_FILE_BYTES
from posterq.exceptions import ImageError


def iter_files(root: str | os.PathLike, exclude: Iterable[str | os.PathLike] = (),
               recursive: bool = True) -> list[Path]:
    """Every file under root (recursively by default), sorted by relative path, without dot-names."""
    root = Path(root)
    excluded = {os.path.realpath(path) for path in exclude}
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if not name.startswith(".")] if recursive else []
        for name in files:
            path = Path(folder) / name
            if not name.startswith(".") and os.path.realpath(path) not in excluded:
                found.append(path)
    return sorted(found, key=lambda path: path.relative_to(root).parts)


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
