"""Write a model bundle: model.tflite plus model.json that records its sha256 and size.

Imports nothing heavy, so tests and export scripts can call it without TensorFlow loaded.

    from training.bundle_io import write_bundle
    write_bundle("models/my-model", tflite_bytes, meta)
"""

import hashlib
import json
import os
from pathlib import Path

from posterq.bundle import META_FILE, MODEL_FILE

# Keys the runtime needs (see posterq.bundle); everything else in meta is kept as given.
REQUIRED_KEYS = ("name", "version", "architecture", "input", "preprocessing", "genres", "label_rule")


def write_bundle(folder: str | os.PathLike, tflite_bytes: bytes, meta: dict) -> Path:
    """Write model.tflite and model.json (meta plus sha256 and size_bytes) into folder; return it."""
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise ValueError(f"bundle metadata lacks {missing}")
    if len(meta["label_rule"].get("thresholds", [])) != len(meta["genres"]):
        raise ValueError("bundle metadata needs one threshold per genre")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    full = {**meta, "sha256": hashlib.sha256(tflite_bytes).hexdigest(), "size_bytes": len(tflite_bytes)}
    # The model goes first and the metadata last, each via a rename, so a reader never sees a
    # model.json whose sha256 names a model.tflite that is not fully written yet.
    _write_atomic(folder / MODEL_FILE, tflite_bytes)
    _write_atomic(folder / META_FILE, (json.dumps(full, indent=2) + "\n").encode("utf-8"))
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
