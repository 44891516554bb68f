"""Make docs/page.png: the web page's results for eleven generated posters and one broken file.

    make serve                                          # in another shell: API on :8000 + workers
    .venv/bin/python docs/screenshot_page.py [--api http://127.0.0.1:8000] [--out docs/page.png]

It also times one poster from the pick to its genres on the page, through the queue, and prints it.
The posters are drawn here (no real poster may be committed). Needs Debian's Chromium
(/usr/bin/chromium) and Playwright for Python (the `dev` extra); no browser is downloaded.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TITLES = ["Night Harbor", "The Last Orbit", "Paper Hearts", "Dust Riders", "Laugh Track", "The Quiet House",
          "Iron Saints", "Summer of '84", "Deep Blue Below", "The Heist Club", "Winter Waltz"]
BROKEN_AT = 4  # where the broken file sits in the pick: in the first row of the grid


def draw_poster(title: str, seed: int, size: tuple[int, int] = (300, 450)) -> Image.Image:
    """A poster-like picture: a two-colour gradient, a few shapes, a title and a credit line."""
    rng = np.random.default_rng(seed)
    width, height = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 120, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).astype(np.uint8).repeat(width, axis=1)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(60, height - 120)), int(rng.integers(20, 90))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    font = ImageFont.load_default(size=30)
    small = ImageFont.load_default(size=14)
    draw.multiline_text((20, height - 110), title.replace(" ", "\n", 1), font=font, fill=(255, 255, 255))
    draw.text((20, height - 28), "A POSTERQ PICTURE  ·  COMING SOON", font=small, fill=(220, 220, 220))
    return image


def write_posters(folder: Path) -> list[Path]:
    """The generated posters (JPEG) and one broken file, in pick order."""
    paths = []
    for seed, title in enumerate(TITLES):
        path = folder / f"{title.lower().replace(' ', '-').replace(chr(39), '')}.jpg"
        draw_poster(title, seed).save(path, "JPEG", quality=88)
        paths.append(path)
    broken = folder / "scan-0042.jpg"
    broken.write_bytes(paths[0].read_bytes()[:2000])  # cut short: the worker reports it truncated
    return [*paths[:BROKEN_AT], broken, *paths[BROKEN_AT:]]


def main() -> None:
    """Time one poster, then pick them all and save the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "page.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        paths = write_posters(Path(tmp))
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="light")
        page.goto(args.api.rstrip("/") + "/")
        page.wait_for_selector("#limits:not(:empty)", state="attached")
        started = time.monotonic()
        page.set_input_files("#files", [str(paths[0])])
        page.wait_for_selector("#grid .card[data-state=ok] .chip")
        print(f"one poster: genres on the page {time.monotonic() - started:.2f} s after the pick")
        page.wait_for_selector("#run[data-state=over]", state="attached")
        page.set_input_files("#files", [str(path) for path in paths])
        page.wait_for_selector("#run[data-state=over]", state="attached", timeout=120_000)
        print(page.text_content("#run-status"), "|", page.text_content("#run-detail"))
        page.screenshot(path=str(args.out), full_page=True)
        print(f"wrote {args.out}")
        browser.close()


if __name__ == "__main__":
    main()
