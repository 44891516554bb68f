"""Run posterq's command line as a user does: the installed console script, in a subprocess."""

import shutil
import subprocess
import sys
from pathlib import Path


def posterq(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `posterq` console script (or `python -m posterq.cli` without one)."""
    script = shutil.which("posterq", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "posterq.cli"]
    return subprocess.run([*command, *args], check=False, capture_output=True, text=True, timeout=120,
                          **kwargs)
