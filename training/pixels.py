"""Decode a dataset's posters once, through serving's own preprocessing, into a uint8 array cache."""

import hashlib
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posterq.exceptions import ImageError
from posterq.imaging import load_input

log = logging.getLogger(__name__)
CACHE_VERSION = "1"  # bump when posterq.imaging.preprocess changes


def _decode(job):
    path, size = job
    try:
        # posterq.imaging.load_input is exactly what serving runs: no training/serving skew.
        # Its bilinear resize yields whole numbers, so uint8 storage is lossless.
        return load_input(Path(path).read_bytes(), size).astype(np.uint8), None
    except (ImageError, OSError) as exc:
        return None, str(exc)


def poster_pixels(paths: list[Path], size: tuple[int, int], cache_dir: Path | None = None,
                  workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Return (N, H, W, 3) uint8 model inputs and a mask of posters that decoded; cached on disk."""
    key = hashlib.sha256("\n".join([CACHE_VERSION, str(size), *map(str, paths)]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"pixels-{size[0]}x{size[1]}-{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return stored["pixels"], stored["ok"]
    pixels = np.zeros((len(paths), *size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    jobs = [(str(path), size) for path in paths]
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_decode, jobs, chunksize=32)
        for index, (array, error) in enumerate(tqdm(results, total=len(jobs), desc=f"decode {size}",
                                                    unit="poster")):
            if array is None:
                log.warning("skipping %s: %s", paths[index], error)
            else:
                pixels[index], ok[index] = array, True
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, pixels=pixels, ok=ok)
    return pixels, ok
