"""Run posterq's command line as a user does: the installed console script, in a subprocess."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def posterq(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `posterq` console script (or `python -m posterq.cli` without one)."""
    return subprocess.run([*command(), *args], check=False, capture_output=True, text=True, timeout=120,
                          **kwargs)


def command() -> list[str]:
    """The command line that runs `posterq`: the installed console script, or `python -m posterq.cli`."""
    script = shutil.which("posterq", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "posterq.cli"]


@contextlib.contextmanager
def running(*args: str) -> Iterator[subprocess.Popen]:
    """Run `posterq ARGS` in a session of its own (a terminal stand-in); SIGKILL what is left after.

    Its pipes are closed and the process waited for on the way out, whatever happened: a test that
    fails before interrupt() (or whose interrupt() times out) must not leave two open pipes and a
    zombie to the garbage collector, whose ResourceWarning then fails whichever later test it runs
    in (CI once saw it in a TensorFlow test).
    """
    with subprocess.Popen([*command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def interrupt(process: subprocess.Popen, timeout: float = 60) -> str:
    """Ctrl-C: SIGINT to the whole process group, as a terminal sends it; return what it wrote to stderr."""
    os.killpg(process.pid, signal.SIGINT)
    return process.communicate(timeout=timeout)[1]
