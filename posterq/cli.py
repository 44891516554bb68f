"""The posterq command line: a thin dispatcher; each subcommand lives in its own module.

    posterq label posters/ --out genres.csv --workers 4
    posterq --version
    posterq COMMAND --help

A subcommand's module is imported only when that subcommand runs, so `posterq label` never
loads TensorFlow and a missing optional dependency only disables the commands that need it.
"""

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

from posterq import __version__

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


@dataclass(frozen=True)
class Command:
    """A subcommand: its module defines `add_arguments(parser)` and `run(args) -> exit code`."""

    name: str
    help: str
    module: str
    extra: str | None = None  # the pip extra that installs what the module needs


COMMANDS = (
    Command("label", "label every poster under a folder into a CSV or JSON Lines file", "posterq.label_cli"),
    Command("submit", "send posters to a posterq service and wait for their labels", "posterq.submit_cli"),
    Command("worker", "run a queue worker that classifies posters", "worker.cli"),
    Command("api", "run the HTTP API that takes labelling jobs", "api.cli"),
    Command("train", "train a model and export its bundle", "training.train_cli", extra="train"),
    Command("evaluate", "evaluate a model bundle on a labelled dataset", "training.evaluate_cli",
            extra="train"),
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
        add_arguments, run = module.add_arguments, module.run
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


if __name__ == "__main__":
    sys.exit(main())
