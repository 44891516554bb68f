"""The posterq command line: a thin dispatcher; each subcommand lives in its own module.

    posterq label heat.jpg
    posterq label posters/ --out genres.csv --workers 4
    posterq --version
    posterq COMMAND --help

A subcommand's module is imported only when that subcommand runs, so `posterq label` never
loads TensorFlow and a missing optional dependency only disables the commands that need it:
they say, in one line, which extra installs it.
"""

import argparse
import importlib
import importlib.util
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from posterq import __version__

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# posterq's own top-level packages: a missing one of these is a broken install, not an extra.
OWN_PACKAGES = ("posterq", "api", "worker", "training")
# Import names whose pip name differs, for messages.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "Pillow", "ai_edge_litert": "ai-edge-litert",
                 "prometheus_client": "prometheus-client"}


@dataclass(frozen=True)
class Command:
    """A subcommand: its module defines `add_arguments(parser)` and `run(args) -> exit code`."""

    name: str
    help: str
    module: str
    extra: str | None = None  # the pip extra that installs what the module needs
    # Top-level modules of that extra the command needs, checked (not imported) before its
    # module is; an import that still fails while it runs gets the same one-line message.
    needs: tuple[str, ...] = ()


COMMANDS = (
    Command("label", "label posters: one file's genres, or files and folders into a CSV or JSON Lines file",
            "posterq.label_cli"),
    Command("submit", "send posters to a posterq service and wait for their labels", "posterq.submit_cli",
            extra="service", needs=("requests",)),
    Command("jobs", "find your jobs on a posterq service again: list, show, wait, cancel, download",
            "posterq.lookup_cli", extra="service", needs=("requests",)),
    Command("worker", "run a queue worker that classifies posters", "posterq.worker.cli",
            extra="service", needs=("celery", "redis")),
    Command("api", "run the HTTP API that takes labelling jobs", "posterq.api.cli",
            extra="service", needs=("flask", "redis", "celery", "prometheus_client")),
    Command("train", "train a model and export its bundle", "posterq.training.train_cli",
            extra="train", needs=("tensorflow", "sklearn", "matplotlib", "pandas")),
    Command("ship", "choose the shipped bundle(s) from the accuracy-speed front of training runs",
            "posterq.training.ship_cli", extra="train",
            needs=("tensorflow", "sklearn", "matplotlib", "pandas")),
    Command("evaluate", "evaluate a model bundle on a labelled dataset", "posterq.training.evaluate_cli",
            extra="eval", needs=("sklearn", "pandas")),
)


def main(argv: list[str] | None = None) -> int:
    """Run the posterq command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    hear_ctrl_c()
    parser = build_parser(_selected(argv))
    args, unknown = parser.parse_known_args(argv)
    # An unavailable command takes any arguments, so the user reads why it is missing.
    if unknown and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # A request that fails is reported in one line by posterq.client: urllib3's notes of each
        # retry before it would only repeat it.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"posterq {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        # An optional dependency imported while the command runs (after the checks in _attach).
        if not exc.name or exc.name.split(".")[0] in OWN_PACKAGES:
            raise
        command = next(command for command in COMMANDS if command.name == args.command)
        print(f"posterq {command.name}: not available: {_why_unavailable(command, exc)}", file=sys.stderr)
        return EXIT_USAGE


def hear_ctrl_c() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt even where the process was started ignoring it."""
    # A shell without job control starts background commands with SIGINT ignored, and the ignoring
    # is inherited across fork and exec; Python then installs no handler of its own. `posterq
    # submit` started under such a parent (a CI script run with &, a test runner started by one)
    # polled on through every Ctrl-C sent to it. Every command here says what Ctrl-C does
    # (exit 130, rows kept, the job left running), so each one listens for it. Only the main
    # thread may set a handler; a handler someone else set is left alone.
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
    missing = [name for name in command.needs if not _installed(name)]
    if missing:
        _attach_unavailable(parser, command, _needs(command, missing))
        return
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


def _installed(module: str) -> bool:
    # find_spec looks for the module without importing it (the check costs no start-up time).
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False
    except ValueError:  # in sys.modules without a spec: loaded, so there
        return True


def _why_unavailable(command: Command, exc: ImportError) -> str:
    missing = getattr(exc, "name", None)
    if missing and (command.module == missing or command.module.startswith(missing + ".")):
        return f"{command.module} is not part of this installation"
    if not missing:
        return f"it cannot be imported: {exc}"
    return _needs(command, [missing.split(".")[0]])


def _needs(command: Command, modules: list[str]) -> str:
    names = ", ".join(DISTRIBUTIONS.get(module, module) for module in modules)
    verb = "is" if len(modules) == 1 else "are"
    if command.extra:
        return f"it needs {names}, which {verb} not installed; install the '{command.extra}' extra: " \
               f"{_install_command(command.extra)}"
    return f"it needs {names}, which {verb} not installed; reinstall posterq: {_install_command(None)}"


def _install_command(extra: str | None) -> str:
    # From a checkout (or an editable install of one) the project installs from its folder;
    # an installed wheel names the package.
    root = Path(__file__).resolve().parent.parent
    extras = f"[{extra}]" if extra else ""
    if (root / "pyproject.toml").is_file():
        try:
            where = "." if root == Path.cwd().resolve() else str(root)
        except OSError:  # the working directory is gone
            where = str(root)
        return f"pip install -e '{where}{extras}'"
    return f"pip install 'posterq{extras}'"


def _attach_unavailable(parser: argparse.ArgumentParser, command: Command, reason: str) -> None:
    parser.description = f"{command.help} (not available: {reason})"
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)

    def unavailable(args: argparse.Namespace) -> int:
        print(f"posterq {command.name}: not available: {reason}", file=sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(run=unavailable, unavailable=True)


if __name__ == "__main__":
    sys.exit(main())
