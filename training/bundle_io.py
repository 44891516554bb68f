"""Write a model bundle: model.tflite plus model.json that records its sha256 and size.

Imports nothing heavy, so tests and export scripts can call it without TensorFlow loaded. The
metadata is checked by the runtime's own rules (posterq.bundle.check_meta) before anything is
written, so a bundle the runtime would refuse is never written.

    from posterq.training.bundle_io import write_bundle
    write_bundle("models/my-model", tflite_bytes, meta)
"""

import json
import os
from pathlib import Path

from posterq.bundle import META_FILE, MODEL_FILE, REQUIRED_KEYS, check_meta, sha256_of

# The runtime's keys plus what a bundle records about how it was made; the rest is kept as given.
WRITTEN_KEYS = (*REQUIRED_KEYS, "architecture", "preprocessing")


def write_bundle(folder: str | os.PathLike, tflite_bytes: bytes, meta: dict) -> Path:
    """Write model.tflite and model.json (meta plus sha256 and size_bytes) into folder; return it.

    Raises posterq's BundleError, before writing anything, for metadata the runtime would refuse.
    """
    folder = Path(folder)
    check_meta(meta, f"metadata for {folder / META_FILE}", WRITTEN_KEYS)
    folder.mkdir(parents=True, exist_ok=True)
    full = {**meta, "sha256": sha256_of(tflite_bytes), "size_bytes": len(tflite_bytes)}
    # The model goes first and the metadata last, each via a rename, so a reader never sees a
    # model.json whose sha256 names a model.tflite that is not fully written yet.
    _write_atomic(folder / MODEL_FILE, tflite_bytes)
    _write_atomic(folder / META_FILE, (json.dumps(full, indent=2) + "\n").encode("utf-8"))
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
