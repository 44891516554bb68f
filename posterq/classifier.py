"""The LiteRT classifier: loads a bundle once and scores a batch of posters in one invoke."""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from posterq.bundle import Bundle, load_bundle
from posterq.exceptions import BundleError, ImageError, PosterqError
from posterq.imaging import DEFAULT_MAX_PIXELS, load_input
from posterq.label_rule import assign_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One poster's outcome: its genres and every genre's score, or an error."""

    genres: list[str]
    scores: dict[str, float]
    error: PosterqError | None = None


class Classifier:
    """One bundle behind a LiteRT interpreter. Not thread-safe: one per process or thread.

    `solo_threads`, when given, adds a second interpreter with that many threads for batches of
    one poster: a lone poster then runs on every core while batches keep `num_threads` (a queue
    worker runs processes x num_threads = cores, and a lone poster would leave cores idle).
    """

    def __init__(self, bundle: Bundle | str | os.PathLike | None = None, num_threads: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, solo_threads: int | None = None):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.max_pixels = max_pixels
        self._runner = _Runner(self.bundle.model_file, num_threads)
        self._solo = (_Runner(self.bundle.model_file, solo_threads)
                      if solo_threads and solo_threads != num_threads else None)
        self._input, self._output = self._runner.input, self._runner.output
        # A model with more or fewer outputs than named genres would mislabel every poster
        # silently (zip stops at the shorter), so refuse it here.
        outputs = int(self._output["shape"][-1])
        if outputs != len(self.bundle.genres):
            raise BundleError(
                f"{self.bundle.model_file} has {outputs} outputs but its metadata names "
                f"{len(self.bundle.genres)} genres", "bundle_mismatch")
        if tuple(self._input["shape"][1:]) != (*self.input_size, 3):
            raise BundleError(
                f"{self.bundle.model_file} takes input {tuple(self._input['shape'][1:])} but its "
                f"metadata says {(*self.input_size, 3)}", "bundle_mismatch")

    @property
    def input_size(self) -> tuple[int, int]:
        """The (height, width) every poster is resized to."""
        return self.bundle.input_size

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Score a preprocessed batch (N, H, W, 3) in one invoke; return (N, genres) probabilities."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (*self.input_size, 3):
            raise ValueError(f"expected a batch of shape (N, {self.input_size[0]}, {self.input_size[1]}, 3)")
        if len(batch) == 0:
            return np.zeros((0, len(self.bundle.genres)), dtype=np.float32)
        runner = self._solo if self._solo is not None and len(batch) == 1 else self._runner
        return runner.run(batch)

    def preprocess(self, data: bytes) -> np.ndarray:
        """Decode and preprocess one file's bytes for this model (raises ImageError)."""
        return load_input(data, self.input_size, self.max_pixels)

    def label(self, scores: np.ndarray, top_k: int | None = None) -> list[str]:
        """Apply the bundle's label rule to one poster's scores."""
        return assign_names(scores, self.bundle.thresholds, top_k or self.bundle.top_k, self.bundle.genres)

    def classify(self, items: Sequence[bytes | PosterqError],
                 top_k: int | None | Sequence[int | None] = None) -> list[Prediction]:
        """Classify posters in one invoke: one outcome per item, in order.

        Each item is a file's bytes or an error already known (a file that could not be read);
        `top_k` is one limit for all or one per item (None: the bundle's). An item whose bytes do
        not decode gets its ImageError; the others go on.
        """
        if isinstance(items, (str, bytes, os.PathLike)):
            raise TypeError("classify takes a list of files' bytes, not one path or one file")
        limits = list(top_k) if isinstance(top_k, Sequence) else [top_k] * len(items)
        if len(limits) != len(items):
            raise ValueError(f"{len(limits)} top_k values for {len(items)} items")
        outcomes: list[np.ndarray | PosterqError] = []
        for item in items:
            try:
                outcomes.append(item if isinstance(item, PosterqError) else self.preprocess(item))
            except ImageError as exc:
                outcomes.append(exc)
        inputs = [outcome for outcome in outcomes if isinstance(outcome, np.ndarray)]
        scores = iter(self.predict(np.stack(inputs)) if inputs else [])
        return [Prediction([], {}, outcome) if isinstance(outcome, PosterqError)
                else self._prediction(next(scores), limit)
                for outcome, limit in zip(outcomes, limits, strict=True)]

    def _prediction(self, scores: np.ndarray, top_k: int | None) -> Prediction:
        named = {genre: float(score) for genre, score in zip(self.bundle.genres, scores, strict=True)}
        return Prediction(self.label(scores, top_k), named)


class _Runner:
    """One interpreter and the batch size its tensors are allocated for."""

    def __init__(self, model_file, num_threads: int | None):
        self.interpreter = Interpreter(model_path=str(model_file), num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One invoke over a preprocessed batch; reallocates only when the batch size changes."""
        if self.batch != len(batch):
            self.interpreter.resize_tensor_input(self.input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], _quantize(batch, self.input))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)


def _quantize(batch: np.ndarray, detail: dict) -> np.ndarray:
    # Full-integer models take int8/uint8 input; float models take the pixels as they are.
    if detail["dtype"] == np.float32:
        return batch
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return values.copy()
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
