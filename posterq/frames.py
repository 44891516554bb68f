"""Results as a pandas DataFrame, on request, with the columns of `posterq label`'s CSV.

    from posterq import Labeller
    from posterq.frames import to_frame

    labeller = Labeller()
    frame = to_frame(labeller.label_folder("posters/"), labeller.bundle.genres, labeller.bundle.version)

pandas is imported only when a frame is made (`pip install 'posterq[frames]'`): `posterq label`,
the workers and the rest of the runtime never load it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from posterq.results import CSV_FIELDS, row

if TYPE_CHECKING:
    import pandas

    from posterq.classifier import Prediction


def to_frame(results: Iterable[tuple[str, Prediction] | dict], genres: Sequence[str] | None = None,
             model_version: str | None = None) -> pandas.DataFrame:
    """A DataFrame of results, one line a poster: (name, Prediction) pairs or result rows (dicts).

    Columns: path, genres (a list, best first), error (the code) and message (both missing where
    the poster was labelled), model_version (a row's own; `model_version` for pairs), reused (a
    bool: the row is a stored result, posterq.jobs.reuse), then one
    float column of scores per genre in `genres` order (NaN where it failed), the figures the CSV
    has (6 decimals). `genres` None: the order of the first scores met (the model's output
    order). Labeller.label_folder's pairs and ServiceClient.results' rows both fit.
    """
    import pandas as pd

    rows = [_as_row(result, genres, model_version) for result in results]
    if genres is None:
        genres = next((list(result["scores"]) for result in rows if result["scores"]), [])
    records = [{"path": result["path"], "genres": list(result["genres"]),
                "error": result["error"]["code"] if result["error"] else None,
                "message": result["error"]["message"] if result["error"] else None,
                "model_version": result.get("model_version"), "reused": bool(result.get("reused")),
                **result["scores"]} for result in rows]
    frame = pd.DataFrame.from_records(records, columns=[*CSV_FIELDS, *genres])
    return frame.astype({genre: "float64" for genre in genres})


def _as_row(result: tuple[str, Prediction] | dict, genres: Sequence[str] | None,
            model_version: str | None) -> dict:
    if isinstance(result, dict):
        return result
    name, prediction = result
    return row(name, prediction, list(prediction.scores) if genres is None else genres, model_version)
