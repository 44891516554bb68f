"""The posterq command line: a thin dispatcher; each subcommand lives in its own module.

    posterq label posters/ --out genres.csv --workers 4
    posterq --version
    posterq COMMAND --help

A subcommand's module is imported only when that subcommand runs, so `posterq label` never
loads TensorFlow and a missing optional dependency only disables the commands that need it.
"""

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from posterq import __version__

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


@dataclass(frozen=True)
class Command:
    """A subcommand: where its `add_arguments(parser)` and `run(args) -> exit code` live."""

    name: str
    help: str
    module: str
    add_arguments: str = "add_arguments"
    run: str = "run"
    extra: str | None = None  # the pip extra that installs what the module needs


COMMANDS = (
    Command("label", "label every poster under a folder into a CSV or JSON Lines file",
            "posterq.cli", "add_label_arguments", "run_label"),
    Command("submit", "send posters to a posterq service and wait for their labels", "posterq.submit_cli"),
    Command("worker", "run a queue worker that classifies posters", "worker.cli"),
    Command("api", "run the HTTP API that takes labelling jobs", "api.cli"),
    Command("train", "train a model and export its bundle", "training.cli",
            "add_train_arguments", "run_train", extra="train"),
    Command("evaluate", "evaluate a model bundle on a labelled dataset", "training.cli",
            "add_evaluate_arguments", "run_evaluate", extra="train"),
)


def main(argv: list[str] | None = None) -> int:
    """Run the posterq command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_selected(argv))
    args, unknown = parser.parse_known_args(argv)
    # An unavailable command takes any arguments, so the user reads why it is missing.
    if unknown and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"posterq {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the `selected` subcommand's module is imported to complete it."""
    parser = argparse.ArgumentParser(prog="posterq", description="Label movie posters with genres.")
    parser.add_argument("--version", action="version", version=f"posterq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (INFO level)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        if command.name == selected:
            _attach(command, sub)
    return parser


def _selected(argv: list[str]) -> str | None:
    # The top-level options take no values, so the first bare word is the subcommand.
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _attach(command: Command, parser: argparse.ArgumentParser) -> None:
    try:
        module = importlib.import_module(command.module)
        add_arguments, run = getattr(module, command.add_arguments), getattr(module, command.run)
    except ImportError as exc:
        _attach_unavailable(parser, command, _why_unavailable(command, exc))
        return
    except AttributeError:
        _attach_unavailable(parser, command, f"{command.module} does not provide it yet")
        return
    add_arguments(parser)
    parser.set_defaults(run=run)


def _why_unavailable(command: Command, exc: ImportError) -> str:
    missing = getattr(exc, "name", None)
    if missing and (command.module == missing or command.module.startswith(missing + ".")):
        return f"{command.module} is not part of this installation"
    hint = f"; install it with: pip install -e '.[{command.extra}]'" if command.extra else ""
    return f"it needs {missing or exc}, which is not installed{hint}"


def _attach_unavailable(parser: argparse.ArgumentParser, command: Command, reason: str) -> None:
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)

    def unavailable(args: argparse.Namespace) -> int:
        print(f"posterq {command.name}: not available: {reason}", file=sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(run=unavailable, unavailable=True)


# --- posterq label ---------------------------------------------------------------------------


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--batch-size", type=_positive, default=32, metavar="B",
                        help="posters per interpreter call (default: 32)")
    parser.add_argument("--top-k", type=_positive, metavar="K",
                        help="most genres per poster (default: the model's)")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")


def run_label(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
