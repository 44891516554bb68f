"""The docs run as written: every Python block of README.md and docs/*.md, and the answers they show.

The Python blocks of a page run in order in one fresh Python process, in a working folder that
holds the files they name (heat.jpg, posters/, generated), with the shipped model: what a reader
who pastes them gets. A block that names the service's URL runs in
tests/service/test_docs_service.py against a real service instead; one just below
`<!-- not run: REASON -->` runs nowhere, and says why.
"""

import json
import re

import pytest
from docblocks import PAGES, ROOT, code_blocks, python_blocks, run_blocks, write_named_files

from posterq.genres import GENRES

#: The shipped model's answer for heat.jpg, the poster of Heat (1995): tt0113277.jpg of the project's
#: dataset, a validation poster. `posterq label heat.jpg` printed it with model 1.4.0, and
#: `POST /analysis/` of a service with that model answered the same genres.
HEAT_MODEL_VERSION = "1.4.0"
HEAT_GENRES = ["Drama", "Crime", "Action"]
HEAT_SCORES = {"Drama": 0.77, "Crime": 0.68, "Action": 0.66, "Thriller": 0.44, "History": 0.23}
# Longest names first, so that "Musical" is not read as "Music".
GENRE = "|".join(re.escape(name) for name in sorted(GENRES, key=len, reverse=True))
GENRE_LIST = re.compile(rf"""["']?(?:{GENRE})["']?(?:, ["']?(?:{GENRE})["']?)+""")
GENRE_SCORE = re.compile(rf"\b({GENRE}) (\d\.\d+)\b")


def _runnable(page):
    return [block for block in python_blocks(page) if not block.needs_service and block.not_run is None]


RUNNABLE = [page for page in PAGES if _runnable(page)]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(page.relative_to(ROOT)) for page in RUNNABLE])
def test_python_blocks_run(page, tmp_path):
    """A page's Python blocks (those that need no service) run in order without an error."""
    blocks = _runnable(page)
    result = run_blocks(blocks, write_named_files(tmp_path / "work"))
    if result.returncode:
        pytest.fail(f"the Python blocks of {page.name} at lines {[block.line for block in blocks]} fail:\n"
                    f"{result.stdout[-3000:]}{result.stderr[-3000:]}", pytrace=False)


def test_the_readme_has_python_to_run():
    """The README's Python examples are found (a parser that finds none would pass every page)."""
    readme = python_blocks(ROOT / "README.md")
    assert any(block.needs_service for block in readme)
    assert _runnable(ROOT / "README.md")


def test_blocks_are_found_and_marked(tmp_path):
    """Indented and fenced blocks are found at their lines; shell is not Python; not-run has its reason."""
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n    # help\n    posterq --help\n\nMore:\n\n<!-- not run: needs a GPU -->\n\n"
                    "    import posterq\n\n    print(1)\n\n"
                    "```python\n# the model\nfrom posterq import Labeller\n```\n\n    >>> 1 + 1\n    2\n")
    blocks = code_blocks(page)
    assert [(block.line, block.is_python, block.not_run) for block in blocks] == [
        (3, False, None), (10, True, "needs a GPU"), (15, True, None), (19, True, None)]
    assert blocks[1].source == "import posterq\n\nprint(1)"


def test_a_doctest_block_checks_its_output(tmp_path):
    """A `>>>` block runs as a doctest: the output it shows must be the output it gives."""
    page = tmp_path / "page.md"
    page.write_text("    >>> total = 1 + 1\n\nThen:\n\n    >>> total\n    2\n\n"
                    "Wrong:\n\n    >>> total\n    3\n")
    blocks = code_blocks(page)
    assert run_blocks(blocks[:2], tmp_path).returncode == 0
    wrong = run_blocks(blocks, tmp_path)
    assert wrong.returncode != 0 and f'File "{page}", line 10' in wrong.stdout


def test_every_not_run_mark_says_why_above_a_python_block():
    """Each `<!-- not run: ... -->` sits just above a Python block and gives a reason."""
    for page in PAGES:
        marks = sum("<!-- not run" in line for line in page.read_text(encoding="utf-8").splitlines())
        honoured = [block for block in python_blocks(page) if block.not_run]
        assert all(block.not_run.strip() for block in honoured), page.name
        assert marks == len(honoured), f"{page.name}: a not-run mark that is not just above a Python block"


def test_heat_shows_the_shipped_models_answer():
    """Every block that names heat.jpg shows the shipped model's genres and scores for Heat's poster."""
    meta = json.loads((ROOT / "models" / "effnet-lite0-posters" / "model.json").read_text())
    assert meta["version"] == HEAT_MODEL_VERSION, (
        "the shipped model changed: run `posterq label heat.jpg` on Heat's poster (tt0113277.jpg of the "
        "dataset) and update the answers the docs show for heat.jpg, and HEAT_* here")
    shown = 0
    for page in PAGES:
        for block in code_blocks(page):
            if "heat.jpg" not in block.source:
                continue
            for found in GENRE_LIST.finditer(block.source):
                genres = re.findall(GENRE, found.group())
                assert genres == HEAT_GENRES[:len(genres)], f"{block}: {found.group()}"
                shown += 1
            for genre, score in GENRE_SCORE.findall(block.source):
                assert HEAT_SCORES.get(genre) == float(score), f"{block}: {genre} {score}"
    assert shown, "no page shows an answer for heat.jpg any more: drop this test's HEAT_* too"
