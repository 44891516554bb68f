"""Where a bulk job's Redis commands go: every command of one upload job and one directory job, by part.

    .venv/bin/python -m bench.redis_breakdown ../shared/datasets/movie-posters/Images [--quick] [--posters N]

Starts `posterq api` and one `posterq worker` with default settings (bench.service.Service, private
key prefix and queue on POSTERQ_REDIS_URL), warms them up, then for an upload job and a directory job
of the same N posters (default 256, 64 with --quick) reads Redis's MONITOR stream while the job runs,
keeps the commands of this Redis database (other databases' clients are left out; the commands a Lua
script runs are listed by MONITOR as the script's, `lua`), and puts each command in one part:

- each Lua script (posterq/jobs/lua), by the name of its file: the script's EVALSHA and every command
  it ran (claim.lua: the fair queue's picks, the batch list, attempts, the items read);
- Celery/kombu: sending tokens (LPUSH on the queue), BRPOP, the unacked hash and index (reserve, ack);
- the stats hash and the throughput hashes (counters, histograms: stats.py);
- heartbeats; the window's top-up after a batch (WATCH/LLEN/HMGET of the job); the job's items,
  bytes and done list; its hash; anything else;

MULTI/EXEC go to the part of the first command between them on that connection. Prints the figures
as JSON and saves bench/results/redis_breakdown-<time>.json. MONITOR costs Redis time: the command
counts are exact, timings taken meanwhile are not.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import redis

from bench.service import (
    Service,
    chosen_posters,
    linked_settings,
    module_parser,
    provenance,
    save_report,
)
from posterq.jobs import scripts

#: A MONITOR line: time, [database client], command, first argument.
LINE = re.compile(r'^[\d.]+ \[(\d+) ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?')


def script_names() -> dict[str, str]:
    """The SHA1 each Lua command of posterq/jobs/lua runs under (EVALSHA), to its file's name."""
    folder = resources.files("posterq.jobs") / "lua"
    return {hashlib.sha1(scripts.source(path.name).encode()).hexdigest(): path.name
            for path in folder.iterdir() if path.name.endswith(".lua") and path.name != scripts.PRELUDE}


def part(command: str, key: str, queue: str) -> str:
    """The part of the service a command outside the Lua scripts belongs to, by its command and key."""
    if (command == "BRPOP" or "unacked" in key or key.startswith("_kombu")
            or (command == "LPUSH" and key.split("/")[0] == queue)):
        return "Celery/kombu: send, reserve, ack"
    if ":throughput:" in key or key.endswith(":stats"):
        return "stats: counters, histograms, throughput"
    if ":worker:" in key or key.endswith(":announced"):
        return "heartbeats"
    if command == "HGET" and key.endswith(":waiting"):
        return "one-poster calls waiting? (between a batch's invokes)"
    if command in ("WATCH", "UNWATCH") or (command == "LLEN" and ":ready:" in key) or (
            command == "HMGET" and re.search(r":job:[0-9a-f]{32}$", key)):
        return "window top-up after a batch"
    if re.search(r":job:[0-9a-f]{32}:(blob|items|done)", key):
        return "job: items, bytes, done list"
    if re.search(r":job:[0-9a-f]{32}", key):
        return "job: hash"
    return "other"


def breakdown(lines: list[str], database: int, queue: str, shas: dict[str, str]) -> Counter:
    """Commands of one database by part (see the module's docstring)."""
    parts: Counter = Counter()
    open_multi: dict[str, str | None] = {}  # client -> part of its transaction's first command
    script = "?"
    for line in lines:
        match = LINE.match(line)
        if not match or int(match[1]) != database:
            continue
        client, command, key = match[2], match[3].upper(), match[4] or ""
        if command in ("MONITOR", "INFO"):
            continue
        if client == "lua":
            parts[f"script {script}"] += 1
            continue
        if command in ("EVALSHA", "EVAL"):
            script = shas.get(key, "not in posterq/jobs/lua")
            parts[f"script {script}"] += 1
            continue
        if command == "MULTI":
            open_multi[client] = None
            continue
        if command == "EXEC":
            parts[open_multi.pop(client, None) or "other"] += 2
            continue
        name = part(command, key, queue)
        if client in open_multi and open_multi[client] is None:
            open_multi[client] = name
        parts[name] += 1
    return parts


def monitored(url: str, run) -> list[str]:
    """The MONITOR lines Redis sent while run() ran (read on a connection of their own)."""
    connection = redis.Redis.from_url(url).connection_pool.get_connection()
    connection.send_command("MONITOR")
    assert connection.read_response() in (b"OK", "OK")
    lines: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set() or connection.can_read(timeout=0.2):
            if connection.can_read(timeout=0.2):
                response = connection.read_response()
                lines.append(response.decode("utf-8", "replace") if isinstance(response, bytes) else response)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run()
        time.sleep(0.5)  # the last commands of the job (its finish) reach the stream
    finally:
        stop.set()
        reader.join()
        connection.disconnect()
    return lines


def measure(posters: list[Path], quick: bool) -> dict:
    """Commands per poster of an upload job and a directory job, by part; JSON-ready."""
    produced = provenance()
    shas = script_names()
    modes = {}
    with tempfile.TemporaryDirectory(prefix="posterq-breakdown-") as tmp:
        folder, links, settings = linked_settings("breakdown", posters, Path(tmp))
        database = redis.Redis.from_url(settings.redis_url).connection_pool.connection_kwargs.get("db", 0)
        with Service(settings, Path(tmp)) as service:
            service.start_worker()
            service.run_job(folder, links[:8], upload=True)  # warm-up: each pool process loads its model
            for mode, upload in (("upload_job", True), ("directory_job", False)):
                checks = {}

                def run(upload=upload, checks=checks) -> None:
                    checks.update(service.run_job(folder, links, upload=upload))

                parts = breakdown(monitored(settings.redis_url, run), int(database), settings.queue, shas)
                if not checks["exactly_once"] or checks["errors"]:
                    raise RuntimeError(f"{mode}: not every poster had exactly one good result: {checks}")
                total = sum(parts.values())
                modes[mode] = {"commands_per_poster": round(total / len(posters), 2),
                               "by_part": {name: round(count / len(posters), 2)
                                           for name, count in parts.most_common()},
                               "posters_per_second_under_monitor": checks["posters_per_second"]}
    command = " ".join(["python -m bench.redis_breakdown", *sys.argv[1:]])
    return {"name": "redis_breakdown", "command": command,
            "figures": {"posters": len(posters), "modes": modes}, "provenance": produced,
            "settings": {"api_and_worker": "defaults", "posters": len(posters)},
            "notes": ["MONITOR lines of this Redis database only, from just before the job's POST to half a "
                      "second after it finished; the worker's idle polling and heartbeats in that time count",
                      "a Lua script's part holds its EVALSHA and every command it ran"]}


def main() -> int:
    """Measure, print the figures as JSON and save them under bench/results/."""
    args = module_parser(__doc__, 256, 64).parse_args()
    save_report("redis_breakdown", measure(chosen_posters(args), args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
