"""Output files the service writes for a job: checked at submit, created without following links.

A file is written under a private, unpredictable temporary name in its folder, created with
O_CREAT|O_EXCL|O_NOFOLLOW (a link planted there is never followed, an existing name never
reused), then put in place in one step: by os.link, which fails if the name exists meanwhile
(nothing is replaced), or, when the request said `"overwrite": true`, by os.replace (a link at
the name is replaced, never written through). The folder is opened component by component with
O_NOFOLLOW from the file system's root along its resolved path, and every step after that works
relative to that open folder: a folder swapped for a link after the roots were checked is never
entered. The folder's file system must allow hard links (every Linux local file system and NFS do).
"""

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from posterq.exceptions import OutputError

#: The temporary file's name: fixed length whatever the output's name, and unguessable.
TEMPORARY_PREFIX = ".posterq-"
TEMPORARY_SUFFIX = ".partial"
# Errors that no retry can mend: recorded once, never tried again. Others (a full disk, an I/O
# error) may pass: they are tried again a bounded number of times (Settings.max_output_tries).
_PERMANENT = {
    errno.EEXIST: "output_exists", errno.ENAMETOOLONG: "output_name_too_long",
    errno.EISDIR: "output_is_directory", errno.ENOENT: "output_folder_missing",
    errno.ENOTDIR: "output_folder_missing", errno.ELOOP: "output_folder_changed",
    errno.EACCES: "output_not_permitted", errno.EPERM: "output_not_permitted",
    errno.EROFS: "output_not_permitted",
}


def check_new(path: Path, overwrite: bool) -> None:
    """Refuse (OutputError) a name the file system cannot take, or an existing file without overwrite."""
    folder = path.parent
    name = os.fsencode(path.name)
    try:
        # Asked of the folder's own file system: NAME_MAX is 255 bytes on most, not all.
        name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except OSError as exc:
        raise _error(exc) from None
    if len(name) > name_max:
        raise OutputError(f"the output's file name is {len(name)} bytes: its file system takes at most "
                          f"{name_max}", "output_name_too_long")
    if len(os.fsencode(str(path))) >= path_max:  # PATH_MAX counts the terminating NUL
        raise OutputError(f"the output's path is over the {path_max - 1} bytes its file system takes",
                          "output_path_too_long")
    try:
        found = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _error(exc) from None
    if stat.S_ISDIR(found.st_mode):
        raise OutputError("the output names a folder, not a file", "output_is_directory")
    if not overwrite:
        raise OutputError("the output file exists already: send \"overwrite\": true to replace it, or "
                          "name another file", "output_exists")


def write(path: Path, overwrite: bool, fill: Callable[[TextIO], None]) -> None:
    """Write path whole with fill(stream): a temporary file, then put in place; else OutputError."""
    try:
        folder = _open_folder(path.parent)
    except OSError as exc:
        raise _error(exc) from None
    temporary = f"{TEMPORARY_PREFIX}{secrets.token_hex(16)}{TEMPORARY_SUFFIX}"
    created = False
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644, dir_fd=folder)
        created = True
        with open(descriptor, "w", encoding="utf-8", newline="") as stream:
            fill(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
            created = False
        else:
            # link() never replaces: a file (or link) that appeared at the name since submit stays.
            os.link(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        os.fsync(folder)  # the new name survives a crash once the job says it is written
    except OSError as exc:
        raise _error(exc) from None
    finally:
        if created:
            try:
                os.unlink(temporary, dir_fd=folder)
            except OSError:
                pass  # gone already; nothing of ours is left to remove
        os.close(folder)


def _open_folder(folder: Path) -> int:
    # Each component opened with O_NOFOLLOW relative to the one before: the folder resolved under an
    # output root is the folder written into, even if a component became a link since.
    descriptor = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folder.parts[1:]:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=descriptor)
            except NotADirectoryError:
                # Linux answers ENOTDIR for a link with O_DIRECTORY|O_NOFOLLOW: tell the two apart.
                if stat.S_ISLNK(os.lstat(part, dir_fd=descriptor).st_mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                raise
            os.close(descriptor)
            descriptor = inner
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _error(exc: OSError) -> OutputError:
    code = _PERMANENT.get(exc.errno)
    # The server's paths are not the client's to see: the reason only.
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if code == "output_exists":
        return OutputError("a file appeared at the output's name after the job was submitted; it was left "
                           "as it is", code)
    if code == "output_folder_changed":
        return OutputError("a folder on the output's path became a symbolic link after submit; nothing "
                           "was written", code)
    if code is not None:
        return OutputError(f"the output file cannot be written: {reason}", code)
    return OutputError(f"the output file could not be written: {reason}", "output_write_failed",
                       permanent=False)
