"""`posterq label PATH... [--out genres.csv]`: label poster files and folders, locally, on every core.

    posterq label heat.jpg                                # its genres and top scores, printed
    posterq label posters/ --out genres.csv --workers 4
    posterq label heat.jpg alien.png posters/ --out genres.jsonl
"""

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from posterq.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from posterq.config import BATCH_SIZE

DEFAULT_OUT = "genres.csv"
#: Scores printed for one poster: its genres' and the next best, up to this many.
SHOWN_SCORES = 5

EPILOG = f"""\
One poster file and no --out: its genres and top scores are printed, no file is written, and
the exit status is 1 when it cannot be read or decoded. Anything else goes into the result
file ({DEFAULT_OUT} unless --out names another), one row per file, the run going on past bad
files. Rows are named: with one folder, by the path inside it; with several arguments, a file
as given and a folder's files as FOLDER/path inside it, in argument order (a folder's files
sorted), each name once. Folders are searched recursively; names starting with "." are skipped.
The result file is replaced only by a complete run that labelled a poster (exit 0). A run that
labels none (exit 1) or is interrupted (Ctrl-C, exit 130) leaves it as it was and puts its rows
in OUT.partial beside it (or the next free OUT.N.partial), which the message names.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `posterq label`'s arguments to its parser."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("paths", nargs="+", metavar="PATH", help="poster files and folders of posters")
    parser.add_argument("--out", metavar="FILE",
                        help=f"result file (default: {DEFAULT_OUT}, or none for one poster file: printed)")
    parser.add_argument("--format", choices=("csv", "jsonl"),
                        help="result format (default: from the --out extension); with one poster "
                             "file and no --out, print its row in this format")
    parser.add_argument("--model", metavar="BUNDLE",
                        help="a shipped bundle's name or a bundle folder (default: $POSTERQ_MODEL, "
                             "else the shipped default)")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="processes, one interpreter each (default: one per available core)")
    parser.add_argument("--batch-size", type=_positive, default=BATCH_SIZE, metavar="B",
                        help=f"posters per interpreter call (default: {BATCH_SIZE})")
    parser.add_argument("--top-k", type=_positive, metavar="K",
                        help="most genres per poster (default: the model's)")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the rows of the existing result file for files whose size, mtime and "
                             "sha256 have not changed since (same model and top_k), marked reused; what "
                             "they were is kept in OUT.posterq-cache.json beside it")


def run(args: argparse.Namespace) -> int:
    """Label the posters the paths name: print one poster's genres, or write the result file."""
    # Imported here so that other subcommands (and --help) do not load LiteRT.
    from posterq.bundle import load_bundle
    from posterq.exceptions import PosterqError
    from posterq.results import format_for

    paths = [Path(path) for path in args.paths]
    for path in paths:
        if not path.exists():
            return _usage_error(f"{path} does not exist")
    one_file = len(paths) == 1 and not paths[0].is_dir()
    out = None if one_file and args.out is None else Path(args.out or DEFAULT_OUT)
    try:
        result_format = args.format or (format_for(out) if out else None)
        bundle = load_bundle(args.model)
    except (ValueError, PosterqError) as exc:
        return _usage_error(str(exc))
    if out is None:
        return _print_one(args.paths[0], bundle, args.top_k, result_format)
    return _write_all(args, bundle, out, result_format)


def _print_one(path: str, bundle, top_k: int | None, result_format: str | None) -> int:
    from posterq.exceptions import PosterqError
    from posterq.labeller import Labeller
    from posterq.results import make_writer, row

    try:
        labeller = Labeller(bundle, top_k=top_k)
    except PosterqError as exc:  # a bundle whose model does not match its metadata
        return _usage_error(str(exc))
    prediction = labeller.label_path(path)
    name = Path(path).as_posix()
    if result_format:
        make_writer(sys.stdout, result_format, bundle.genres).write(
            row(name, prediction, bundle.genres, bundle.version))
    elif prediction.error is None:
        print(_describe_prediction(name, prediction))
    if prediction.error is not None:
        error = prediction.error
        print(f"posterq label: {name}: {error.code}: {error.message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _describe_prediction(name: str, prediction) -> str:
    """One poster's outcome in two lines: its genres, then its best scores."""
    ranked = sorted(prediction.scores.items(), key=lambda item: -item[1])
    shown = ranked[:max(SHOWN_SCORES, len(prediction.genres))]
    scores = "  ".join(f"{genre} {score:.2f}" for genre, score in shown)
    return f"{name}: {', '.join(prediction.genres)}\n  {scores}"


def _write_all(args: argparse.Namespace, bundle, out: Path, result_format: str) -> int:
    from posterq import label_cache
    from posterq.exceptions import PosterqError
    from posterq.pool import Summary, label_files, named_files
    from posterq.results import aside_paths, kept, open_writer, row

    summary = Summary()
    # The result file, its cache and the side files of earlier incomplete runs are never posters.
    files = named_files(args.paths, exclude=[out, label_cache.cache_path(out), *aside_paths(out)])
    if not files:
        return _usage_error(f"no poster files in {', '.join(args.paths)}: nothing written, {out} left as "
                            "it was")
    kept_rows, prints = {}, {}
    if args.reuse:
        kept_rows, prints = label_cache.reusable(out, files, bundle, args.top_k, result_format)
    writer = None  # a Ctrl-C may come before the result file is open
    try:
        # The file replaces `out` only when the run is complete and labelled a poster
        # (results.open_writer); otherwise `out` stays as it was and the rows go to a side file.
        todo = [file for file in files if file[0] not in kept_rows]
        # No process is started (nor the model loaded) when every row is kept.
        labelled = label_files(todo, bundle, args.workers, args.batch_size, args.top_k,
                               not args.no_progress) if todo else (pair for pair in ())
        with _Interrupts() as interrupts, contextlib.closing(labelled), \
                open_writer(out, result_format, bundle.genres) as writer:
            for name, _ in files:
                if name in kept_rows:
                    with interrupts.deferred():
                        writer.write(kept_rows[name])
                        summary.reused += 1
                    continue
                # label_files yields in input order; the row takes the name it yields all the same.
                labelled_name, prediction = next(labelled)
                with interrupts.deferred():
                    writer.write(row(labelled_name, prediction, bundle.genres, bundle.version))
                    summary.add(prediction)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept(out, writer)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        return _usage_error(f"cannot write {out}: {exc.strerror or exc}")
    except PosterqError as exc:
        return _usage_error(str(exc))
    if not writer.replaced:
        print(_describe(summary, None))
        print(f"posterq label: no poster could be labelled: {kept(out, writer)}", file=sys.stderr)
        return EXIT_FAILED
    if args.reuse:
        label_cache.save(out, prints, bundle, args.top_k)
    print(_describe(summary, out))
    return EXIT_OK


def _describe(summary, out: Path | None) -> str:
    errors = sum(summary.errors.values())
    detail = ", ".join(f"{code} {count}" for code, count in sorted(summary.errors.items()))
    return (f"labelled {summary.total} posters in {summary.seconds:.1f} s "
            f"({summary.posters_per_second:.1f} posters/s): {summary.ok} ok, {errors} errors"
            + (f" ({detail})" if detail else "")
            + (f"; {summary.reused} rows reused (unchanged files)" if summary.reused else "")
            + (f"\nwrote {out}" if out else ""))


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
