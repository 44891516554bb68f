"""Model bundles: a folder with model.tflite and model.json, verified before use.

The checks of model.json (check_meta) and the model's sha256 (sha256_of) live here once: the
runtime applies them when it loads a bundle, posterq.training.bundle_io when it writes one.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posterq.config import model_folder, model_from_env, shipped_models
from posterq.exceptions import BundleError
from posterq.genres import GENRES

MODEL_FILE = "model.tflite"
META_FILE = "model.json"
#: Keys of model.json the runtime reads (sha256 comes with them once the bundle is written).
REQUIRED_KEYS = ("name", "version", "input", "genres", "label_rule")


def sha256_of(source: bytes | str | os.PathLike) -> str:
    """Return the hex sha256 of bytes, or of a file read in chunks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_meta(meta, where: str, required=REQUIRED_KEYS) -> None:
    """Raise BundleError unless meta is a model.json the runtime can use (`where` names it)."""
    if not isinstance(meta, dict):
        raise BundleError(f"{where} is not a JSON object")
    for key in required:
        if key not in meta:
            raise BundleError(f"{where} lacks '{key}'")
    if not isinstance(meta["input"], dict) or not all(
            isinstance(meta["input"].get(key), int) for key in ("height", "width")):
        raise BundleError(f"{where}: input needs integer height and width")
    if len(set(meta["genres"])) != len(meta["genres"]):
        raise BundleError(f"{where} names a genre twice")
    unknown = [genre for genre in meta["genres"] if genre not in GENRES]
    if unknown:
        raise BundleError(f"{where} names unknown genres: {unknown}")
    rule = meta["label_rule"]
    if not isinstance(rule, dict) or len(rule.get("thresholds", [])) != len(meta["genres"]):
        raise BundleError(f"{where}: one threshold per genre is required")


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle: where it is, what it says about itself, how to label with it."""

    path: Path
    meta: dict

    @property
    def name(self) -> str:
        """The model's name."""
        return self.meta["name"]

    @property
    def version(self) -> str:
        """The model's version."""
        return self.meta["version"]

    @property
    def model_file(self) -> Path:
        """The path of the TFLite file."""
        return self.path / MODEL_FILE

    @property
    def input_size(self) -> tuple[int, int]:
        """The model input's (height, width)."""
        height, width = self.meta["input"]["height"], self.meta["input"]["width"]
        return int(height), int(width)

    @property
    def genres(self) -> tuple[str, ...]:
        """The genres in output order."""
        return tuple(self.meta["genres"])

    @property
    def thresholds(self) -> np.ndarray:
        """Per-genre score thresholds, in output order."""
        return np.asarray(self.meta["label_rule"]["thresholds"], dtype=np.float32)

    @property
    def top_k(self) -> int:
        """The default most genres a poster gets."""
        return int(self.meta["label_rule"].get("top_k", 3))

    @property
    def identity(self) -> dict:
        """{"name", "version"}: what names the model beside every result."""
        return {"name": self.name, "version": self.version}


def load_bundle(path: str | Path | None = None) -> Bundle:
    """Load and verify a bundle; None means $POSTERQ_MODEL, else the shipped default model."""
    folder = model_from_env() if path is None else model_folder(path)
    meta_path, model_path = folder / META_FILE, folder / MODEL_FILE
    if not meta_path.is_file() or not model_path.is_file():
        raise BundleError(f"{folder} is not a model bundle (needs {META_FILE} and {MODEL_FILE}); "
                          f"shipped bundles: {', '.join(shipped_models())}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON: {exc}") from None
    check_meta(meta, str(meta_path), (*REQUIRED_KEYS, "sha256"))
    actual = sha256_of(model_path)
    if actual != meta["sha256"]:
        raise BundleError(
            f"{model_path} does not match its metadata (sha256 {actual[:12]}..., "
            f"expected {meta['sha256'][:12]}...)",
            "bundle_mismatch",
        )
    return Bundle(folder, meta)
