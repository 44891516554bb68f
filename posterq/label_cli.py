"""`posterq label DIR [--out genres.csv]`: label every poster under a folder, locally, on every core.

    posterq label posters/ --out genres.csv --workers 4
"""

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from posterq.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from posterq.config import BATCH_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `posterq label`'s arguments to its parser."""
    parser.add_argument("directory", metavar="DIR", help="folder of posters (searched recursively)")
    parser.add_argument("--out", default="genres.csv", metavar="FILE",
                        help="result file (default: genres.csv)")
    parser.add_argument("--format", choices=("csv", "jsonl"),
                        help="result format (default: from the --out extension)")
    parser.add_argument("--model", metavar="BUNDLE",
                        help="model bundle folder (default: $POSTERQ_MODEL, else the shipped model)")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="processes, one interpreter each (default: one per available core)")
    parser.add_argument("--batch-size", type=_positive, default=BATCH_SIZE, metavar="B",
                        help=f"posters per interpreter call (default: {BATCH_SIZE})")
    parser.add_argument("--top-k", type=_positive, metavar="K",
                        help="most genres per poster (default: the model's)")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")


def run(args: argparse.Namespace) -> int:
    """Label every poster under DIR into the result file; print a summary."""
    # Imported here so that other subcommands (and --help) do not load LiteRT.
    from posterq.bundle import load_bundle
    from posterq.exceptions import PosterqError
    from posterq.labelling import Summary, label_folder
    from posterq.results import format_for, open_writer, row

    root, out = Path(args.directory), Path(args.out)
    if not root.exists():
        return _usage_error(f"{root} does not exist")
    if not root.is_dir():
        return _usage_error(f"{root} is not a directory")
    try:
        result_format = args.format or format_for(out)
        bundle = load_bundle(args.model)
    except (ValueError, PosterqError) as exc:
        return _usage_error(str(exc))
    summary = Summary()
    try:
        with open_writer(out, result_format, bundle.genres) as writer, _Interrupts() as interrupts:
            try:
                for path, prediction in label_folder(root, bundle, args.workers, args.batch_size,
                                                     args.top_k, not args.no_progress, exclude=[out]):
                    with interrupts.deferred():
                        writer.write(row(path, prediction, bundle.genres))
                        summary.add(prediction)
            except KeyboardInterrupt:
                print(f"\ninterrupted: {writer.count} rows written to {out}", file=sys.stderr)
                return EXIT_INTERRUPTED
    except OSError as exc:
        return _usage_error(f"cannot write {out}: {exc.strerror or exc}")
    except PosterqError as exc:
        return _usage_error(str(exc))
    print(_describe(summary, out))
    return EXIT_OK


def _describe(summary, out: Path) -> str:
    errors = sum(summary.errors.values())
    detail = ", ".join(f"{code} {count}" for code, count in sorted(summary.errors.items()))
    return (f"labelled {summary.total} posters in {summary.seconds:.1f} s "
            f"({summary.posters_per_second:.1f} posters/s): {summary.ok} ok, {errors} errors"
            + (f" ({detail})" if detail else "") + f"\nwrote {out}")


class _Interrupts:
    """Ctrl-C as KeyboardInterrupt, held back while a row is written so the count told is exact."""

    def __init__(self):
        self._writing = self._pending = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self._writing:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """Run the block whole; a Ctrl-C during it is raised when it ends."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self._pending:
            raise KeyboardInterrupt


def _usage_error(message: str) -> int:
    print(f"posterq label: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value
