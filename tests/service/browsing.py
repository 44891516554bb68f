"""The web page in a browser tab: where Chromium is, and a tab that records what went wrong in it.

The `browser` fixture (conftest.py) launches Chromium; tests open tabs with `open_page`.
"""

import dataclasses
import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("POSTERQ_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000
# What the page shows of each card, in grid order.
CARDS_JS = """() => [...document.querySelectorAll('#grid .card')].map(card => ({
    name: card.querySelector('.card-name').textContent,
    state: card.dataset.state,
    visible: card.checkVisibility(),
    chips: [...card.querySelectorAll('.chip')].map(chip => chip.textContent),
    code: card.querySelector('.error-code')?.textContent ?? null,
    message: card.querySelector('.error-message')?.textContent ?? null}))"""


@dataclasses.dataclass
class Browsing:
    """One browser tab on the page, with every console message and page error it produced."""

    page: object
    problems: list[str]

    def pick(self, paths) -> None:
        """Pick files as the "Choose posters" button would."""
        self.page.set_input_files("#files", [str(path) for path in paths])

    def wait_over(self, timeout_ms: int = TIMEOUT_MS) -> list[str]:
        """Wait until every poster is settled; the ids of the run's jobs."""
        self.page.wait_for_selector("#run[data-state=over]", state="attached", timeout=timeout_ms)
        return self.page.get_attribute("#results", "data-jobs").split()

    def cards(self) -> list[dict]:
        """What the grid shows, card by card."""
        return self.page.evaluate(CARDS_JS)


def open_page(browser, url: str, width: int = 1280, height: int = 900,
              wait_for_limits: bool = True) -> Browsing:
    """The page at url in a fresh tab (its own context); by default once it shows the server's limits."""
    context = browser.new_context(accept_downloads=True, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto(url + "/")
    if wait_for_limits:
        page.wait_for_selector("#limits:not(:empty)", state="attached")
    return Browsing(page, problems)
