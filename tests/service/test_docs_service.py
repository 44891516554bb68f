"""The docs' Python blocks that talk to the service run as written, against a real one.

A block naming the URL `make serve` answers on (http://127.0.0.1:8000) runs here, in order with
the page's other such blocks, in one fresh Python process, with that URL pointed at the test API
(real HTTP, Redis, PostgreSQL and a `posterq worker` on the tiny bundle). The page's other blocks
run in tests/test_docs.py, so each block that needs the service stands on its own.
"""

import pytest
from docblocks import PAGES, ROOT, SERVICE_URL, python_blocks, run_blocks, write_named_files


def _service_blocks(page):
    return [block for block in python_blocks(page) if block.needs_service and block.not_run is None]


SERVICE_PAGES = [page for page in PAGES if _service_blocks(page)]


@pytest.mark.parametrize("page", SERVICE_PAGES, ids=[str(page.relative_to(ROOT)) for page in SERVICE_PAGES])
def test_service_blocks_run(page, api, start_worker, tmp_path):
    """A page's Python blocks that call the service run in order without an error."""
    start_worker("docs@test")
    blocks = _service_blocks(page)
    result = run_blocks(blocks, write_named_files(tmp_path / "work"), replace={SERVICE_URL: api.url})
    if result.returncode:
        pytest.fail(f"the service blocks of {page.name} at lines {[block.line for block in blocks]} fail:\n"
                    f"{result.stdout[-3000:]}{result.stderr[-3000:]}", pytrace=False)
