"""Turn a submission (uploaded files, a zip, a folder under a data root) into job items.

Plain functions, checked cheaply: sizes, counts, names and paths. Decoding is the workers' job.
An item is {"name", "kind", "path"?, "error"?}; uploads come with their bytes beside them.
"""

import io
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from posterq import output_files
from posterq.api.exceptions import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from posterq.config import Settings, lies_under
from posterq.exceptions import OutputError, PosterqError
from posterq.genres import GENRES
from posterq.jobs.keys import ItemKind
from posterq.jobs.view_fields import MAX_NAME
from posterq.results import format_for

# Members that archivers add and that are never posters.
_JUNK_PREFIXES = ("__MACOSX/",)
_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")


def parse_top_k(value) -> int | None:
    """Validate an optional top_k (1..number of genres)."""
    if value is None or value == "":
        return None
    try:
        top_k = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e400 is infinity
        top_k = 0
    if isinstance(value, bool) or not 1 <= top_k <= len(GENRES):
        raise BadRequest(f"top_k must be a whole number from 1 to {len(GENRES)}", "bad_top_k")
    return top_k


def parse_reuse(value, settings: Settings) -> bool:
    """Whether a job reuses results by content: its optional "reuse" (JSON true/false, a form's 1/0,
    true/false), true unless it or the service (POSTERQ_REUSE_RESULTS=0) says not to."""
    if value is None or value == "":
        wanted = True
    elif isinstance(value, bool):
        wanted = value
    elif isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        wanted = value.lower() in ("1", "true", "yes")
    else:
        raise BadRequest("reuse must be true or false", "bad_reuse")
    return wanted and settings.reuse_results


def parse_name(value) -> str | None:
    """Validate an optional job name: text of 1 to MAX_NAME characters, no control characters.

    Spaces around it are dropped; an empty name is no name.
    """
    if value is None:
        return None
    name = value.strip() if isinstance(value, str) else None
    # Control characters (a newline, an escape) would break the one line a job takes in a list.
    if name is None or len(name) > MAX_NAME or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise BadRequest(f"name must be text of at most {MAX_NAME} characters, without control characters",
                         "bad_name")
    return name or None


def _too_large_item(name: str, size: int, settings: Settings) -> dict:
    # One oversized poster fails alone (like a bad file) instead of refusing the whole job.
    return {"name": name, "kind": ItemKind.UPLOAD.value,
            "error": {"code": "too_large", "message": f"{size} bytes is over the limit of "
                                                     f"{settings.max_file_bytes} per poster"}}


def _check_count(count: int, settings: Settings) -> None:
    if count > settings.max_posters_per_job:
        raise TooLarge(f"{count} posters is over the limit of {settings.max_posters_per_job} per job",
                       "too_many_posters")
    if count == 0:
        raise BadRequest("the job holds no posters", "no_posters")


def from_uploads(files, settings: Settings) -> tuple[list[dict], list[bytes | None]]:
    """Items from uploaded files (werkzeug FileStorage objects)."""
    _check_count(len(files), settings)
    items, blobs = [], []
    for position, upload in enumerate(files):
        name = upload.filename or f"file-{position}"
        data = upload.stream.read(settings.max_file_bytes + 1)
        # Werkzeug spools each part in memory: freeing it as its bytes are taken keeps one copy
        # of the upload in the API at a time instead of two.
        upload.close()
        if len(data) > settings.max_file_bytes:
            items.append(_too_large_item(name, len(data), settings))
            blobs.append(None)
            continue
        items.append({"name": name, "kind": ItemKind.UPLOAD.value})
        blobs.append(data)
    return items, blobs


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    path = PurePosixPath(name)
    # A name with no parts ("." or "") names the archive itself, not a file in it.
    if (not path.parts or "\\" in name or "\x00" in name or path.is_absolute() or ".." in path.parts
            or ":" in path.parts[0]):
        return f"the zip member {name!r} has an unsafe path"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"the zip member {name!r} is a symbolic link"
    return None


def zip_expansion_limit(settings: Settings) -> int:
    """Most bytes a zip's members may hold in all: what a request of plain files may carry, or less."""
    # A zip is no way around the request limit: its posters take as much memory and Redis as the
    # same posters sent as files would.
    return min(settings.max_zip_bytes, settings.max_request_bytes)


def from_zip(data: bytes, settings: Settings) -> tuple[list[dict], list[bytes | None]]:
    """Items from a zip of posters, refusing bombs, too many members and path tricks."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise BadRequest(f"the upload is not a readable zip: {exc}", "bad_zip") from None
    with archive:
        members = [info for info in archive.infolist()
                   if not info.is_dir() and not info.filename.startswith(_JUNK_PREFIXES)
                   and PurePosixPath(info.filename).name not in _JUNK_NAMES]
        _check_count(len(members), settings)
        for info in members:
            reason = _unsafe(info)
            if reason:
                raise BadRequest(reason, "zip_unsafe_path")
            if info.flag_bits & 0x1:
                raise BadRequest(f"the zip member {info.filename!r} is encrypted", "zip_encrypted")
            if (info.file_size > 1 << 20
                    and info.file_size > settings.max_zip_ratio * max(info.compress_size, 1)):
                raise BadRequest(f"the zip member {info.filename!r} expands {info.file_size} bytes from "
                                 f"{info.compress_size}: a zip bomb?", "zip_bomb")
        # Counted before anything is read or written, from the sizes the members declare (a member
        # that holds more than it declares is refused below, so this bounds what is read).
        declared = sum(info.file_size for info in members)
        limit = zip_expansion_limit(settings)
        if declared > limit:
            raise TooLarge(f"the zip expands to {declared} bytes, over the limit of {limit}", "zip_too_large")
        items, blobs = [], []
        for info in members:
            if info.file_size > settings.max_file_bytes:
                items.append(_too_large_item(info.filename, info.file_size, settings))
                blobs.append(None)
                continue
            try:
                with archive.open(info) as member:
                    # Read no more than declared (+1): a member that lies about its size is a bomb.
                    content = member.read(info.file_size + 1)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
                raise BadRequest(f"the zip member {info.filename!r} cannot be read: {exc}",
                                 "bad_zip") from None
            if len(content) > info.file_size:
                raise BadRequest(f"the zip member {info.filename!r} is longer than it declares", "zip_bomb")
            items.append({"name": info.filename, "kind": ItemKind.UPLOAD.value})
            blobs.append(content)
    return items, blobs


def output_of(body: dict, settings: Settings, own_roots: tuple[Path, ...] | None = None,
              may_overwrite: bool = True) -> tuple[str | None, bool]:
    """The file of {"directory": ..., "output": path, "overwrite"?: bool} and whether it may replace one.

    The file's folder must lie under an output root (and under own_roots, the key's own, when it
    has them), its name must be one the file system takes, and an existing file is refused unless
    the request says "overwrite": true and may_overwrite. Returns (None, False) when not asked.
    """
    output, overwrite = body.get("output"), body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise BadRequest("'overwrite' must be true or false", "bad_output")
    if output is None:
        if overwrite:
            raise BadRequest("'overwrite' goes with an 'output' file", "bad_output")
        return None, False
    if not isinstance(output, str) or not output:
        raise BadRequest("'output' must be a path string", "bad_output")
    try:
        path = settings.resolve_output_path(output)
        format_for(path)
    except ValueError as exc:
        raise BadRequest(str(exc), "bad_output") from None
    except PosterqError as exc:
        raise (BadRequest if exc.code == "bad_path" else Forbidden)(exc.message, exc.code) from None
    if own_roots is not None and not lies_under(path.parent, own_roots):
        raise Forbidden("this API key may not write there: the output's folder is not under the output "
                        "roots the keys file gives it", "path_outside_key_roots")
    try:
        folder_exists = path.parent.is_dir()
    except OSError as exc:  # a folder name longer than the file system takes
        raise BadRequest(f"the output's folder cannot be used: {exc.strerror}", "bad_output") from None
    if not folder_exists:
        raise BadRequest(f"the output's folder {PurePosixPath(output).parent} does not exist", "bad_output")
    if overwrite and not may_overwrite:
        # Keys that share the global roots must not replace each other's files: only a key given
        # its own output roots may overwrite (docs/production.md, "One folder per team").
        raise Forbidden("this API key has no output roots of its own, so it may not overwrite files: "
                        "name a new file", "overwrite_not_allowed")
    try:
        output_files.check_new(path, overwrite)
    except OutputError as exc:
        raise (Conflict if exc.code == "output_exists" else BadRequest)(exc.message, exc.code) from None
    return str(path), overwrite


def from_directory(body: dict, settings: Settings,
                   own_roots: tuple[Path, ...] | None = None) -> tuple[str, bool]:
    """The folder of {"directory": path, "recursive": true} under a data root: (its resolved path, recursive).

    With own_roots (the key's own data roots, from the keys file) the folder must lie under one of them too.

    Checked cheaply, whatever the folder holds: it exists, is a folder and is not empty. Its files
    are listed later, in the background (posterq.worker.enumeration).
    """
    directory = body.get("directory")
    if not isinstance(directory, str) or not directory:
        raise BadRequest("'directory' must be a path string", "bad_directory")
    recursive = body.get("recursive", True)
    if not isinstance(recursive, bool):
        raise BadRequest("'recursive' must be true or false", "bad_directory")
    try:
        folder = settings.resolve_data_path(directory)
    except PosterqError as exc:
        # Outside the roots (or no roots at all) is forbidden; a path that cannot be a path is bad.
        raise (BadRequest if exc.code == "bad_path" else Forbidden)(exc.message, exc.code) from None
    if own_roots is not None and not lies_under(folder, own_roots):
        raise Forbidden("this API key may not read there: the directory is not under the data roots the "
                        "keys file gives it", "path_outside_key_roots")
    try:
        if not folder.exists():
            raise NotFound(f"{directory} does not exist", "directory_not_found")
        if not folder.is_dir():
            raise BadRequest(f"{directory} is not a directory", "not_a_directory")
        # The first visible entry is enough (no listing of a folder that may hold millions).
        with os.scandir(folder) as listing:
            empty = not any(not entry.name.startswith(".") and (recursive or not entry.is_dir())
                            for entry in listing)
    except OSError as exc:  # a name longer than the filesystem allows (ENAMETOOLONG), no permission...
        raise BadRequest(f"the directory cannot be read: {exc.strerror}", "bad_directory") from None
    if empty:
        raise BadRequest("the job holds no posters: the directory is empty", "no_posters")
    return str(folder), recursive
