"""The Python API: one model loaded once labels a poster file, a poster's bytes, or a folder.

    from posterq import Labeller

    labeller = Labeller()                                  # the shipped model, or Labeller("BUNDLE")
    prediction = labeller.label_path("heat.jpg")           # .genres, .scores, .error
    prediction = labeller.label_bytes(uploaded_bytes)
    for name, prediction in labeller.label_folder("posters/"):
        print(name, prediction.genres)

Every result is a `posterq.classifier.Prediction`: `genres` (best first), `scores` (every
genre's), and `error` (a PosterqError with `.code` and `.message`, or None). A poster that cannot
be read or decoded gets its error there instead of raising, as in `posterq label`'s rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from posterq.config import BATCH_SIZE
from posterq.pool import classify_paths, label_folder, load_classifier

if TYPE_CHECKING:  # LiteRT loads when a Labeller is made, not when this module is imported
    from posterq.bundle import Bundle
    from posterq.classifier import Prediction

_BYTES = (bytes, bytearray, memoryview)


class Labeller:
    """One model (a LiteRT interpreter) and the label rule; not thread-safe: one per thread.

    `model` is a bundle folder or a Bundle (None: $POSTERQ_MODEL, else the shipped model); `top_k`
    caps the genres per poster (None: the model's); `num_threads` is the interpreter's (None:
    LiteRT's default). A bad bundle raises BundleError here.
    """

    def __init__(self, model: Bundle | str | os.PathLike | None = None, top_k: int | None = None,
                 num_threads: int | None = None):
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be at least 1")
        self.classifier = load_classifier(model, num_threads=num_threads)
        self.top_k = top_k

    @property
    def bundle(self) -> Bundle:
        """The model bundle in use (name, version, genres, thresholds)."""
        return self.classifier.bundle

    def label_path(self, path: str | os.PathLike) -> Prediction:
        """Label one poster file (read up to the 20 MiB limit)."""
        if isinstance(path, _BYTES):
            raise TypeError("label_path takes a file's path; for a poster's bytes use label_bytes(data)")
        if Path(path).is_dir():
            raise IsADirectoryError(f"{path} is a folder: use label_folder({os.fspath(path)!r})")
        return classify_paths(self.classifier, [path], self.top_k)[0]

    def label_bytes(self, data: bytes) -> Prediction:
        """Label one poster from its file's bytes (JPEG, PNG, WebP...), as read from a file or upload."""
        if isinstance(data, (str, os.PathLike)):
            shown = os.fspath(data)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise TypeError(f"label_bytes takes a file's bytes, not a path or text: "
                            f"for a file use label_path({shown!r})")
        if not isinstance(data, _BYTES):
            raise TypeError(f"label_bytes takes bytes, not {type(data).__name__}")
        return self.classifier.classify([bytes(data)], self.top_k)[0]

    def label_folder(self, folder: str | os.PathLike, workers: int | None = 1, batch_size: int = BATCH_SIZE,
                     progress: bool = False, exclude: Iterable[str | os.PathLike] = ()
                     ) -> Iterator[tuple[str, Prediction]]:
        """Yield (path relative to folder, Prediction) for every file under it, recursively, sorted.

        `workers` 1 (the default) labels in this process with this Labeller's interpreter; more
        (None: one per available core) starts that many processes, each loading the model:
        faster for a large folder, and then the calling script needs an
        `if __name__ == "__main__":` guard. Names starting with "." are skipped.
        """
        if not Path(folder).is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        return label_folder(folder, self.classifier, workers, batch_size, self.top_k, progress, exclude)
