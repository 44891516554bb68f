"""Generated test inputs: model metadata, poster images and bad files (fixtures: conftest.py).

Tests import these directly (`from samples import poster_bytes`) when they need a variation a
fixture does not give.
"""

import io
import json
import os
import shutil
import struct
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from posterq.genres import GENRES
from posterq.imaging import SUPPORTED_FORMATS

TINY_INPUT = (48, 32)  # (height, width): posters are taller than wide, and H != W catches swaps
TINY_SEED = 7


def bundle_meta(genres=GENRES, input_size=TINY_INPUT, thresholds=0.5, top_k=3, **extra) -> dict:
    """Model metadata in the bundle schema (see posterq.bundle), for tests that build bundles."""
    height, width = input_size
    if np.isscalar(thresholds):
        thresholds = [float(thresholds)] * len(genres)
    return {
        "name": "tiny-test",
        "version": "0.0.1",
        "architecture": "tiny-conv",
        "input": {"height": height, "width": width, "channels": 3, "layout": "NHWC",
                  "dtype": "float32", "range": [0, 255]},
        "preprocessing": {"function": "posterq.imaging.preprocess",
                          "resize": "bilinear, squash to input size"},
        "genres": list(genres),
        "label_rule": {"thresholds": list(thresholds), "top_k": top_k, "min_labels": 1},
        **extra,
    }


def tiny_tflite() -> bytes:
    """Build and convert the tiny Keras model: random but fixed weights, 24 sigmoid outputs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        # TensorFlow's own import-time warnings are not what these tests are about.
        warnings.simplefilter("ignore")
        import keras
        import tensorflow as tf
        from keras import layers

        keras.utils.set_random_seed(TINY_SEED)
        inputs = keras.Input((*TINY_INPUT, 3), name="image")
        x = layers.Rescaling(1.0 / 255)(inputs)
        x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        # A wide initializer spreads the scores so that thresholds at 0.5 pick varying genres.
        outputs = layers.Dense(len(GENRES), activation="sigmoid",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=3.0),
                               bias_initializer=keras.initializers.RandomNormal(stddev=1.0))(x)
        model = keras.Model(inputs, outputs)
        try:
            return tf.lite.TFLiteConverter.from_keras_model(model).convert()
        except Exception:  # noqa: BLE001 - Keras 3 versions differ in which converter path works
            export_dir = Path(tempfile.mkdtemp()) / "saved_model"
            try:
                model.export(str(export_dir), format="tf_saved_model")
                return tf.lite.TFLiteConverter.from_saved_model(str(export_dir)).convert()
            finally:
                shutil.rmtree(export_dir.parent, ignore_errors=True)


def rewrite_meta(folder: Path, **changes) -> None:
    """Change top-level keys of a bundle's model.json in place (no sha256 update)."""
    path = folder / "model.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def make_poster(seed: int = 0, size: tuple[int, int] = (60, 90), mode: str = "RGB") -> Image.Image:
    """A poster-like image (width, height): random colour blocks and a drawn title."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = int(rng.integers(x0, width + 1)), int(rng.integers(y0, height + 1))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw.text((2, height // 2), f"FILM {seed}", fill=(255, 255, 255))
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    """Encode an image to bytes in a Pillow format."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def poster_bytes(seed: int = 0, fmt: str = "JPEG", size: tuple[int, int] = (60, 90)) -> bytes:
    """A generated poster encoded as JPEG or PNG (or any Pillow format)."""
    return encode(make_poster(seed, size), fmt)


def write_posters(folder: Path, count: int, start: int = 0) -> list[Path]:
    """Write `count` varied posters (alternating JPEG/PNG, varying sizes) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(start, start + count):
        fmt, suffix = (("JPEG", ".jpg"), ("PNG", ".png"))[seed % 2]
        size = (40 + 7 * (seed % 5), 60 + 11 * (seed % 4))
        path = folder / f"poster_{seed:03d}{suffix}"
        path.write_bytes(poster_bytes(seed, fmt, size))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class BadFile:
    """Bytes that cannot become a model input, the file suffix they would carry, and their code."""

    data: bytes
    suffix: str
    code: str


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of name -> bytes members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG that declares width x height grayscale pixels yet is a few hundred bytes long."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)  # a few zero rows; the rest is missing
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows)
            + png_chunk(b"IEND", b""))


def corrupt_png() -> bytes:
    """A PNG whose compressed pixel data is garbage (chunk checksums are recomputed to match)."""
    pixels = zlib.compress(b"\x00" * 10)[:2] + bytes(range(200, 240))
    header = struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels)
            + png_chunk(b"IEND", b""))


def bad_file_kinds() -> dict[str, BadFile]:
    """Every kind of unusable file the tests feed in, by name."""
    jpeg = poster_bytes(1, "JPEG", (80, 120))
    unsupported = "ICO"
    assert unsupported not in SUPPORTED_FORMATS  # the case would test nothing otherwise
    return {
        "empty": BadFile(b"", ".jpg", "empty"),
        "truncated_jpeg": BadFile(jpeg[: len(jpeg) // 2], ".jpg", "truncated"),
        "text": BadFile(b"Casablanca (1942)\nDrama, Romance\n", ".txt", "not_an_image"),
        "unsupported": BadFile(encode(make_poster(2, (32, 32)), unsupported), ".ico", "unsupported_format"),
        "bomb": BadFile(png_bomb(), ".png", "too_large"),
        "corrupt_png": BadFile(corrupt_png(), ".png", "corrupt"),
    }


def deep_folder(base: Path, length: int) -> Path:
    """A folder under base whose path is at least `length` bytes long, made one level at a time
    relative to the one before (mkdir takes no path over PATH_MAX)."""
    descriptor, path = os.open(base, os.O_RDONLY | os.O_DIRECTORY), Path(base)
    try:
        while len(os.fsencode(str(path))) < length:
            os.mkdir("d" * 200, dir_fd=descriptor)
            inner = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor, path = inner, path / ("d" * 200)
    finally:
        os.close(descriptor)
    return path
