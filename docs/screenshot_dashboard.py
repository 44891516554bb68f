"""Make docs/dashboard.png: the page's jobs dashboard with a few jobs and two live workers.

    .venv/bin/python docs/screenshot_dashboard.py [--out docs/dashboard.png] [--minutes 3]

It starts everything it shows and stops it at the end: a private redis-server, a SQLite database in
a temporary folder, `posterq api` (gunicorn) and two `posterq worker`s on the shipped model. Then it
makes jobs the page never uploaded: two folder jobs and an upload with one broken file, with a
trickle of small jobs for --minutes (the hour's plot then has more than one bar), and a last big
folder job that is running when the page is saved. The posters are drawn here (screenshot_page.py's);
no real poster may be committed. Needs redis-server, Debian's Chromium (/usr/bin/chromium) and
Playwright for Python (the `dev` extra); no browser is downloaded.
"""

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screenshot_page import CHROMIUM_ARGS, TITLES, draw_poster  # noqa: E402 (beside this script)

from posterq.config import Settings  # noqa: E402
from tests.harness import ApiProcess, RedisServer, WorkerProcess  # noqa: E402

MODEL = ROOT / "models" / "effnet-lite0-posters"
WORKERS = ("studio-a@render-1", "studio-b@render-2")


def draw_folder(folder: Path, count: int, size=(150, 225)) -> Path:
    """A folder of `count` drawn posters (JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        poster = draw_poster(TITLES[seed % len(TITLES)], seed, size)
        poster.save(folder / f"poster-{seed:05d}.jpg", quality=80)
    return folder


def submit(api: str, name: str, **body) -> str:
    """POST a job (json= or files=), named where the service takes job names; its id."""
    named = {"json": {**body["json"], "name": name}} if "json" in body else {**body, "data": {"name": name}}
    response = requests.post(f"{api}/jobs", timeout=60, **named)
    if response.status_code != 202:  # a service from before job names: the same job, unnamed
        response = requests.post(f"{api}/jobs", timeout=60, **body)
    response.raise_for_status()
    return response.json()["id"]


def wait(api: str, job_id: str) -> dict:
    """The job once it is final."""
    while True:
        job = requests.get(f"{api}/jobs/{job_id}", params={"wait": 20, "limit": 1}, timeout=60).json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job


def make_jobs(api: str, data: Path, minutes: float) -> str:
    """The jobs the dashboard shows; the id of the big one left running."""
    wait(api, submit(api, "festival-shortlist", json={"directory": str(draw_folder(data / "festival", 60))}))
    drawn = data / "festival"
    posters = [("files", (f"{title.lower().replace(' ', '-')}.jpg",
                          (drawn / f"poster-{i:05d}.jpg").read_bytes())) for i, title in enumerate(TITLES)]
    posters.append(("files", ("scan-0042.jpg", b"\xff\xd8\xff\xe0 cut short")))
    wait(api, submit(api, "press-kit upload", files=posters))
    trickle = draw_folder(data / "trickle", 40)
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        wait(api, submit(api, "nightly sample", json={"directory": str(trickle)}))
        time.sleep(45)  # pacing the trickle of jobs over the minutes, not waiting for anything
    return submit(api, "archive-1990s", json={"directory": str(draw_folder(data / "archive", 1500))})


def main() -> None:
    """Start the service, make the jobs, save the page while the big job runs, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "dashboard.png")
    parser.add_argument("--minutes", type=float, default=3, help="minutes of small jobs before the big one")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as redis_server:
        data = Path(tmp) / "data"
        data.mkdir()
        settings = Settings.from_env({}, redis_url=redis_server.url, database_url=f"sqlite:///{tmp}/posterq.db",
                                     model=str(MODEL), data_roots=(data,))
        api = ApiProcess(settings, Path(tmp) / "api.log")
        workers = [WorkerProcess(name, settings, Path(tmp), concurrency=1) for name in WORKERS]
        try:
            api.wait_ready()
            for worker in workers:
                worker.wait_ready()
            running = make_jobs(api.url, data, args.minutes)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="light")
                page.goto(api.url + "/")
                row = page.locator(f"#jobs tr[data-id='{running}']")
                expect(row).to_have_attribute("data-status", "running", timeout=120_000)
                # Saved a while into the big job, so that the last minute's rates are its own, with an ETA.
                a_third = re.compile(r"^0\.[3-9]")
                expect(row.locator("progress")).to_have_attribute("value", a_third, timeout=300_000)
                expect(row.locator("td.number").nth(1)).not_to_have_text("—")
                expect(page.locator(f"#workers tr[data-hostname='{WORKERS[1]}']")).to_be_visible()
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
            print(f"wrote {args.out}")
        finally:
            for worker in workers:
                worker.stop()
            api.stop()


if __name__ == "__main__":
    main()
