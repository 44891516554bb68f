"""Run posterq's command line as a user does: the installed console script, in a subprocess."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def posterq(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `posterq` console script (or `python -m posterq.cli` without one)."""
    return subprocess.run([*command(), *args], check=False, capture_output=True, text=True, timeout=120,
                          **kwargs)


def command() -> list[str]:
    """The command line that runs `posterq`: the installed console script, or `python -m posterq.cli`."""
    script = shutil.which("posterq", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "posterq.cli"]


#: Runs the command line that follows with SIGINT ignored, as a shell without job control starts a
#: background command (`cmd &` in a script); exec keeps the ignoring, as it does for any program.
SIGINT_IGNORED = ["-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "os.execv(sys.argv[1], sys.argv[1:])"]


@contextlib.contextmanager
def running(*args: str, sigint_ignored: bool = False) -> Iterator[subprocess.Popen]:
    """Run `posterq ARGS` in a session of its own (a terminal stand-in); SIGKILL what is left after.

    sigint_ignored: start it ignoring SIGINT, as a CI script's background job inherits it. Its
    pipes are closed and the process waited for on the way out, whatever happened: a test that
    fails before interrupt() (or whose interrupt() times out) must not leave two open pipes and a
    zombie to the garbage collector, whose ResourceWarning then fails whichever later test it runs
    in (CI once saw it in a TensorFlow test).
    """
    line = command()
    if sigint_ignored:
        line = [sys.executable, *SIGINT_IGNORED, *([sys.executable, "-m", "posterq.cli"] if len(line) > 1
                                                 else line)]
    with subprocess.Popen([*line, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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


def interrupt_when(process: subprocess.Popen, ready: Callable[[], bool], frozen: int | None = None,
                   hold: bool = False, timeout: float = 120) -> str:
    """Ctrl-C `process` at the first moment ready() holds; return what it wrote to stderr.

    ready() is only asked while the process group `frozen` (the one doing the work: by default the
    process's own) is stopped with SIGSTOP, and the Ctrl-C is sent before it goes on: the run
    cannot get past that moment (finish, say) before the Ctrl-C, however fast or slow the machine.
    hold (with another group than the process's): that group goes on only once the process ended.
    """
    group = process.pid if frozen is None else frozen
    deadline = time.monotonic() + timeout
    while True:
        os.killpg(group, signal.SIGSTOP)
        try:
            if _stopped(group) and ready():
                os.killpg(process.pid, signal.SIGINT)
                if hold and group != process.pid:
                    return process.communicate(timeout=timeout)[1]  # the group goes on after
                break
        finally:
            os.killpg(group, signal.SIGCONT)
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the moment to interrupt never came (exit status {process.poll()}):\n"
                                 f"{process.communicate()[1] if process.poll() is not None else ''}")
        time.sleep(0.02)
    return process.communicate(timeout=timeout)[1]


def _stopped(group: int, within: float = 1.0) -> bool:
    """Whether every process of the group stopped within `within` seconds of SIGSTOP."""
    # SIGSTOP takes effect as each process is next scheduled. A parent that vforked a child which
    # stopped before its exec stays in D (waiting for the exec) until that child goes on: then
    # this round is given up, the group continued, and the next round tries again.
    deadline = time.monotonic() + within
    while any(state not in "TtZX" for state in _states(group)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _states(group: int) -> list[str]:
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == group:
            states.append(fields[0])
    return states
