"""Label folders and files of posters on every core: one process per core, one interpreter each.

Batches of file paths go to a pool of processes; each holds one Classifier (num_threads=1) made
in the pool initializer, reads its batch, and scores it in one invoke. Results come back in
file order, so the same folder always gives the same output. `named_files` says how results
are named when several files and folders are labelled together (`posterq label a.jpg posters/`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterq.bundle import Bundle, load_bundle
from posterq.config import BATCH_SIZE, available_cores
from posterq.exceptions import PosterqError
from posterq.files import iter_files, read_or_error

if TYPE_CHECKING:
    # Loaded only when something is classified, so that `posterq label --help` and a bad
    # folder are answered without loading LiteRT.
    from posterq.classifier import Classifier, Prediction

    #: What labelling takes as its model: a bundle folder (None: the default), a Bundle, or a
    #: Classifier made by the caller.
    Model = Bundle | Classifier | str | os.PathLike | None

log = logging.getLogger(__name__)


def classify_paths(classifier: Classifier, paths: Sequence[str | os.PathLike],
                   top_k: int | None = None) -> list[Prediction]:
    """Read and classify files in one invoke; a file that cannot be read gets an `unreadable` error."""
    return classifier.classify([read_or_error(path) for path in paths], top_k)


@dataclass
class Summary:
    """What a labelling run did: counts by outcome, elapsed time, throughput."""

    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    reused: int = 0  # rows kept from the result file's earlier run (posterq label --reuse), not labelled now

    def add(self, prediction: Prediction) -> None:
        """Count one poster's outcome and update the elapsed time."""
        if prediction.error is None:
            self.ok += 1
        else:
            self.errors[prediction.error.code] += 1
        self.seconds = time.monotonic() - self.started

    @property
    def total(self) -> int:
        """Posters counted so far."""
        return self.ok + sum(self.errors.values())

    @property
    def posters_per_second(self) -> float:
        """Throughput over the whole run, file reading and decoding included."""
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        """The summary as plain data (for logs and JSON)."""
        return {"total": self.total, "ok": self.ok, "errors": dict(sorted(self.errors.items())),
                "seconds": round(self.seconds, 3), "posters_per_second": round(self.posters_per_second, 2)}


def label_folder(root: str | os.PathLike, model: Model = None, workers: int | None = None,
                 batch_size: int = BATCH_SIZE, top_k: int | None = None, progress: bool = True,
                 exclude: Iterable[str | os.PathLike] = ()) -> Iterator[tuple[str, Prediction]]:
    """Yield (path relative to root, Prediction) for every file under root, in sorted order.

    `model` is a Bundle or a bundle folder (None: the default model), or a Classifier, which is
    used as it is when `workers` is 1; `workers` processes (None: one per available core; 1: in
    this process) each hold one interpreter; `progress` draws a tqdm bar on stderr. The bundle is
    loaded before the first yield's work, so a bad one raises BundleError. Closing the generator
    (or Ctrl-C while it runs) stops the processes.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    yield from label_files(_relative(root, exclude), model, workers, batch_size, top_k, progress)


def named_files(paths: Sequence[str | os.PathLike], exclude: Iterable[str | os.PathLike] = ()
                ) -> list[tuple[str, Path]]:
    """The files that paths name, each with the name its result row gets, in argument order.

    One folder alone: its files (sorted, as iter_files lists them) named relative to it. Anything
    else: a file named as given, a folder's files as FOLDER/relative path (POSIX separators). A
    name met twice (the same file given twice, or inside a folder given too) is kept once, at its
    first place, so names are unique. Excluded files (the result file) are left out everywhere.
    Raises FileNotFoundError for a path that does not exist.
    """
    paths = [Path(path) for path in paths]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
    if len(paths) == 1 and paths[0].is_dir():
        return _relative(paths[0], exclude)
    exclude = list(exclude)
    excluded = {os.path.realpath(path) for path in exclude}
    named: dict[str, Path] = {}
    for given in paths:
        if given.is_dir():
            for path in iter_files(given, exclude):
                named.setdefault((given / path.relative_to(given)).as_posix(), path)
        elif os.path.realpath(given) not in excluded:
            named.setdefault(given.as_posix(), given)
    return list(named.items())


def _relative(root: Path, exclude: Iterable[str | os.PathLike]) -> list[tuple[str, Path]]:
    return [(path.relative_to(root).as_posix(), path) for path in iter_files(root, exclude)]


def label_files(files: Sequence[tuple[str, Path]], model: Model = None, workers: int | None = None,
                batch_size: int = BATCH_SIZE, top_k: int | None = None, progress: bool = True
                ) -> Iterator[tuple[str, Prediction]]:
    """Yield (name, Prediction) for (name, path) pairs, in their order; arguments as label_folder's."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    classifier = None
    if model is not None and not isinstance(model, (Bundle, str, os.PathLike)):
        classifier = model  # a Classifier, made by the caller
    bundle = classifier.bundle if classifier is not None else (
        model if isinstance(model, Bundle) else load_bundle(model))
    workers = max(1, workers or available_cores())
    # Spread a few files over every process rather than filling a few batches to the brim.
    chunk = max(1, min(batch_size, math.ceil(len(files) / workers))) if files else batch_size
    batches = [files[start:start + chunk] for start in range(0, len(files), chunk)]
    workers = min(workers, len(batches)) or 1
    log.info("labelling %d files with %s in %d process(es), batches of %d",
             len(files), bundle.name, workers, chunk)
    bar = _progress_bar(len(files), progress)
    results = _run([[path for _, path in batch] for batch in batches], bundle, workers, top_k, classifier)
    try:
        for batch, predictions in zip(batches, results, strict=True):
            for (name, _), prediction in zip(batch, predictions, strict=True):
                yield name, prediction
            bar.update(len(batch))
    finally:
        results.close()  # stops the processes now, not whenever the generator is collected
        bar.close()


def _run(batches: list[list[Path]], bundle: Bundle, workers: int, top_k: int | None,
         classifier: Classifier | None = None) -> Iterator[list[Prediction]]:
    if workers == 1:
        classifier = classifier or load_classifier(bundle)
        for batch in batches:
            yield classify_paths(classifier, batch, top_k)
        return
    # spawn: the children start clean (no inherited threads or locks, same on every OS).
    context = multiprocessing.get_context("spawn")
    with _sigint_ignored():
        # Children inherit the ignored Ctrl-C through exec, so one still starting up does not
        # die with a traceback; the parent alone handles it.
        pool = context.Pool(workers, initializer=_init_process, initargs=(bundle,))
    try:
        for result in pool.imap(_classify_batch, [(batch, top_k) for batch in batches]):
            if isinstance(result, _InitFailed):
                raise PosterqError(result.message, result.code)
            yield result
        pool.close()
    finally:
        # Normal end, an error, Ctrl-C or an abandoned generator: no process outlives the run.
        pool.terminate()
        pool.join()


# The per-process Classifier; made once by the pool initializer, used by every batch.
_classifier: Classifier | None = None
_init_error: _InitFailed | None = None


@dataclass(frozen=True)
class _InitFailed:
    code: str
    message: str


def _init_process(bundle: Bundle) -> None:
    global _classifier, _init_error
    # Ctrl-C goes to the whole process group; only the parent should act on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _classifier = load_classifier(bundle)
    except Exception as exc:  # noqa: BLE001
        # An initializer that raises makes the pool respawn processes forever; report it
        # with the first batch instead, so the parent fails cleanly.
        _init_error = _InitFailed(getattr(exc, "code", "bad_bundle"), f"cannot load the model: {exc}")


def _classify_batch(task: tuple[list[Path], int | None]) -> list[Prediction] | _InitFailed:
    if _init_error is not None:
        return _init_error
    paths, top_k = task
    return classify_paths(_classifier, paths, top_k)


def load_classifier(bundle: Bundle | str | os.PathLike | None = None, num_threads: int | None = 1
                    ) -> Classifier:
    """A Classifier over a bundle, warmed up, without LiteRT's native log line on stderr."""
    from posterq.classifier import Classifier

    with _native_stderr_silenced():
        classifier = Classifier(bundle, num_threads=num_threads)
        # The first invoke applies the XNNPACK delegate (and logs it); do it here, once.
        classifier.predict(np.zeros((1, *classifier.input_size, 3), np.float32))
    return classifier


@contextlib.contextmanager
def _sigint_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _native_stderr_silenced():
    # LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate" straight to fd 2, once
    # per process, through the progress bar; Python errors still arrive as exceptions.
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="poster", dynamic_ncols=True, smoothing=0.1)
