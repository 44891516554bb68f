"""The code blocks of the Markdown pages, and a runner that executes their Python as a reader would.

Tests import these directly (`from docblocks import python_blocks, run_blocks`): tests/test_docs.py
runs the blocks that need nothing but the checkout, tests/service/test_docs_service.py the ones
that name the service's URL, against a real service.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from samples import poster_bytes, write_posters

ROOT = Path(__file__).resolve().parents[1]
#: The pages whose Python blocks must run: the README and every page under docs/.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The URL `make serve` answers on: a block naming it needs the service.
SERVICE_URL = "http://127.0.0.1:8000"
#: Written just before a block (blank lines between allowed) that must not run, with the reason.
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")
# A Python block starts (after its comments) as a script or a doctest does; a shell block
# (`posterq --help`, `make serve`, `curl ...`) never does.
PYTHON_START = re.compile(r"^(from \S+ import |import \S+|>>> )")
# Runs every block of a page in one namespace, in order, each under its page and line so that a
# traceback points at the Markdown a reader sees; a `>>>` block is a doctest, its shown output checked.
DRIVER = """\
import doctest, json, sys
namespace = {"__name__": "__main__"}
for block in json.load(open(sys.argv[1])):
    if block["source"].lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block["source"], namespace, block["page"], block["page"],
                                                   block["line"] - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        failed = runner.run(test, clear_globs=False).failed
        namespace.update(test.globs)  # a DocTest works on a copy: later blocks see its names too
        if failed:
            sys.exit(1)
    else:
        exec(compile("\\n" * (block["line"] - 1) + block["source"], block["page"], "exec"), namespace)
"""


@dataclass(frozen=True)
class Block:
    """One code block of a page: its text (dedented), first line number, and why it is not run."""

    page: Path
    line: int
    source: str
    not_run: str | None = None

    @property
    def is_python(self) -> bool:
        """True for a block that reads as Python: its first line, after comments, imports or is `>>>`."""
        code = [line.strip() for line in self.source.splitlines()]
        code = [line for line in code if line and not line.startswith("#")]
        return bool(code) and bool(PYTHON_START.match(code[0]))

    @property
    def needs_service(self) -> bool:
        """True when the block talks to the service `make serve` starts."""
        return SERVICE_URL in self.source

    def __str__(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """Every indented (four spaces) or fenced code block of a Markdown page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        previous_blank = index == 0 or not lines[index - 1].strip()
        if line.lstrip().startswith("```"):
            end = next((j for j in range(index + 1, len(lines)) if lines[j].lstrip().startswith("```")),
                       len(lines))
            body = lines[index + 1:end]
            blocks.append(_block(page, lines, index, index + 2, "\n".join(body)))
            index = end + 1
        elif line.startswith("    ") and line.strip() and previous_blank:
            end = index
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            body = [text[4:] for text in lines[index:end]]
            while body and not body[-1].strip():
                body.pop()
            blocks.append(_block(page, lines, index, index + 1, "\n".join(body)))
            index = end
        else:
            index += 1
    return blocks


def _block(page: Path, lines: list[str], start: int, first_line: int, source: str) -> Block:
    """A Block, with the reason of a `<!-- not run: ... -->` comment just above it, if any."""
    above = start - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    found = NOT_RUN.match(lines[above].strip()) if above >= 0 else None
    return Block(page, first_line, source, found["reason"] if found else None)


def python_blocks(page: Path) -> list[Block]:
    """The Python blocks of a page, in order, those marked not to run included."""
    return [block for block in code_blocks(page) if block.is_python]


def write_named_files(folder: Path) -> Path:
    """Generate, in folder, the files the blocks name (heat.jpg, posters/); return folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "heat.jpg").write_bytes(poster_bytes(1, "JPEG", (200, 300)))
    write_posters(folder / "posters", 3)
    return folder


def run_blocks(blocks: list[Block], cwd: Path, replace: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the blocks in order in one fresh Python process in cwd; `replace` rewrites their text first.

    POSTERQ_* variables of the caller's environment are dropped, so that the blocks get what a
    reader's plain shell gives them: the shipped model, the default settings.
    """
    replace = replace or {}

    def rewritten(source: str) -> str:
        for old, new in replace.items():
            source = source.replace(old, new)
        return source

    spec = cwd / ".doc-blocks.json"
    spec.write_text(json.dumps([{"page": str(block.page), "line": block.line,
                                 "source": rewritten(block.source)} for block in blocks]))
    env = {name: value for name, value in os.environ.items() if not name.startswith("POSTERQ_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", DRIVER, str(spec)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
