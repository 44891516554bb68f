"""What tells one job from another in its view: its name, its folder, its times as RFC 3339, its model.

posterq.jobs.records.view() builds a job's public shape; these are the parts of it that are read
by people rather than by programs: the name the client gave, where its posters came from (a
directory job's folder below its data root: the server's absolute paths are not the clients' to
see), the moments it passed (RFC 3339 in UTC beside the epoch seconds the view has always had),
and the model that labelled it, named by name and version only (the genres are the same for
every job of a model: GET /limits has them once).
"""

from datetime import UTC, datetime
from pathlib import Path

#: The longest job name taken (characters): a label to tell jobs apart, not a description.
MAX_NAME = 200
# The view's RFC 3339 fields and the row's epoch columns they come from.
_MOMENTS = {"created": "created_at", "claimed": "claimed_at", "started": "started_at",
            "finished": "finished_at"}


def rfc3339(epoch: float | None) -> str | None:
    """Epoch seconds as RFC 3339 in UTC with milliseconds ("2026-12-07T06:00:00.123Z"); None stays None."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(float(epoch), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_model(model: dict | None) -> dict | None:
    """The model that labelled a job as its view shows it: name and version, without its genres.

    Nor the sha256 of its file, which the ledger keeps to reuse results by (posterq.jobs.reuse).
    """
    if not model:
        return None
    return {key: value for key, value in model.items() if key not in ("genres", "sha256")}


def shown_folder(folder: str | Path, roots: tuple[Path, ...]) -> str | None:
    """A directory job's folder below the data root it lies in ("." for the root itself; None outside)."""
    folder = Path(folder)
    # The innermost root, should one root lie inside another.
    for root in sorted(roots, key=lambda root: len(root.parts), reverse=True):
        if folder == root or root in folder.parents:
            return folder.relative_to(root).as_posix()
    return None


def view_fields(row: dict) -> dict:
    """A job row's name, folder (directory jobs) and RFC 3339 moments, as its view shows them."""
    return {"name": row.get("name") or None, "folder": row.get("folder") or None,
            **{field: rfc3339(row.get(column)) for field, column in _MOMENTS.items()}}
