"""Redis: commands, CPU, network bytes and memory per poster, and how many worker hosts one Redis can feed.

    .venv/bin/python -m bench.redis_cost ../shared/datasets/movie-posters/Images [--quick] [--posters N]

Starts `posterq api` and one `posterq worker` with their default settings (bench.service.Service,
private key prefix and queue on POSTERQ_REDIS_URL; only the request size limit is raised so that one
upload can hold every poster) and runs three modes over the same N posters: one upload job, one
directory job (POSTERQ_DATA_ROOTS holds a temporary folder of symlinks) and N single POST /analysis/
calls from 2 client threads. Around each it diffs INFO commandstats, cpu and stats (no CONFIG
RESETSTAT: nothing is reset) and samples INFO memory every 50 ms. From Redis CPU seconds per poster
it derives the ceiling of one Redis instance (one core) in posters/s, and divides it by this worker
host's posters/s in the same mode. These counters are server-wide: other clients' traffic during a
run counts too. Prints the figures as JSON. bench.all calls `measure`.
"""

import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from bench.service import Service, analysed, client, linked_settings, provenance, run_alone

# This benchmark's own commands (snapshots, memory samples), left out of the per-poster counts.
OWN_COMMANDS = {"info"}


class MemorySampler(threading.Thread):
    """Samples used_memory every `interval` s on its own connection until stopped; keeps the peak."""

    def __init__(self, client: redis.Redis, interval: float = 0.05):
        super().__init__(daemon=True)
        self.client, self.interval = client, interval
        self.peak, self.samples = 0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.halt.is_set():
            self.peak = max(self.peak, int(self.client.info("memory")["used_memory"]))
            self.samples += 1
            self.halt.wait(self.interval)


def snapshot(client: redis.Redis) -> dict:
    """The server-wide counters this benchmark diffs."""
    info = client.info("all")
    return {"commands": {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                         for name, v in info.items() if name.startswith("cmdstat_")},
            "cpu_s": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            "net_in": int(info["total_net_input_bytes"]), "net_out": int(info["total_net_output_bytes"]),
            "used_memory": int(info["used_memory"])}


def cost(client: redis.Redis, posters: int, run) -> dict:
    """Run `run()` (which returns its posters/s) and the Redis cost per poster it caused."""
    sampler = MemorySampler(redis.Redis(connection_pool=client.connection_pool))
    before = snapshot(client)
    sampler.start()
    started = time.monotonic()
    posters_per_second = run()
    seconds = time.monotonic() - started
    sampler.halt.set()
    sampler.join()
    after = snapshot(client)
    calls, usec = {}, 0
    for name, (count, spent) in after["commands"].items():
        count -= before["commands"].get(name, (0, 0))[0]
        spent -= before["commands"].get(name, (0, 0))[1]
        if count > 0 and name not in OWN_COMMANDS:
            calls[name] = round(count / posters, 2)
            usec += spent
    cpu_s = after["cpu_s"] - before["cpu_s"]
    per_poster_cpu = {"commandstats_usec": round(usec / posters, 1),
                      "info_cpu_usec": round(1e6 * cpu_s / posters, 1)}
    ceilings = {key: round(1e6 / value, 1) if value > 0 else None for key, value in per_poster_cpu.items()}
    # The conservative figure: INFO cpu also counts the event loop, networking and replies.
    ceiling = ceilings["info_cpu_usec"] or ceilings["commandstats_usec"]
    return {"posters": posters, "seconds": round(seconds, 2),
            "worker_host_posters_per_second": posters_per_second,
            "commands_per_poster": round(sum(calls.values()), 2),
            "commands_per_poster_by_command": dict(sorted(calls.items(), key=lambda item: -item[1])),
            "redis_cpu_usec_per_poster": per_poster_cpu,
            "net_in_bytes_per_poster": round((after["net_in"] - before["net_in"]) / posters),
            "net_out_bytes_per_poster": round((after["net_out"] - before["net_out"]) / posters),
            "used_memory_before_mb": round(before["used_memory"] / 2**20, 2),
            "peak_used_memory_mb": round(max(sampler.peak, before["used_memory"]) / 2**20, 2),
            "memory_samples": sampler.samples,
            "bytes_per_poster_held_while_queued": round(max(0, sampler.peak - before["used_memory"])
                                                        / posters),
            "redis_ceiling_posters_per_second": ceilings,
            "worker_hosts_one_redis_can_feed": (round(ceiling / posters_per_second, 1)
                                                if ceiling and posters_per_second else None)}


def analysis_calls(url: str, posters: list[Path], clients: int = 2) -> float:
    """Each poster once through POST /analysis/ from `clients` threads; posters/s."""
    images = [path.read_bytes() for path in posters]
    local = threading.local()

    def call(data: bytes) -> bool:
        if not hasattr(local, "client"):
            local.client = client(url, timeout=120)
        return analysed(local.client, data)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        ok = sum(pool.map(call, images))
    if ok != len(images):
        raise RuntimeError(f"{len(images) - ok} of {len(images)} /analysis/ calls failed")
    return round(len(images) / (time.monotonic() - started), 1)


def measure(posters: list[Path], quick: bool) -> dict:
    """Redis cost per poster of an upload job, a directory job and single /analysis/ calls; JSON-ready."""
    produced = provenance()
    modes = {}
    with tempfile.TemporaryDirectory(prefix="posterq-redis-") as tmp:
        folder, links, settings = linked_settings("redis", posters, Path(tmp))
        client = redis.Redis.from_url(settings.redis_url)
        with Service(settings, Path(tmp)) as service:
            service.start_worker()
            analysis_calls(service.url, posters[:2])  # warm-up: each pool process loads its model
            checks = {}

            def job(upload: bool):
                def run() -> float:
                    result = service.run_job(folder, links, upload=upload)
                    checks["upload" if upload else "directory"] = {
                        key: result[key] for key in ("exactly_once", "ok", "errors")}
                    if result["errors"]:
                        raise RuntimeError(f"{result['errors']} posters failed in the job: {result}")
                    return result["posters_per_second"]
                return run

            modes["upload_job"] = cost(client, len(posters), job(True))
            modes["directory_job"] = cost(client, len(posters), job(False))
            modes["analysis_calls"] = cost(client, len(posters), lambda: analysis_calls(service.url, posters))
    return {"name": "redis_cost", "figures": {"modes": modes, "exactly_once": checks},
            "settings": {"posters": len(posters), "api_and_worker": "defaults",
                         "env_changed": {"POSTERQ_MAX_REQUEST_BYTES": 1 << 30,
                                         "POSTERQ_DATA_ROOTS": "a temporary folder of symlinks"},
                         "analysis_clients": 2, "memory_sample_interval_s": 0.05},
            "provenance": produced,
            "targets": [],
            "notes": ["INFO commandstats, cpu, stats and memory are server-wide: any other client's traffic "
                      "during a run (and the idle worker's own polling and heartbeats) counts too",
                      "counters are diffed before/after each mode; CONFIG RESETSTAT was not used",
                      "this benchmark's own INFO calls (snapshots and 50 ms memory samples) are left out of "
                      "the command counts and commandstats usec, but their CPU is in info_cpu_usec",
                      "redis ceiling = 1e6 / usec per poster for one Redis core; worker hosts = ceiling "
                      "(from info_cpu_usec, the conservative one) / this host's posters/s in the same mode "
                      f"({os.cpu_count()} cores, one default worker)",
                      "bytes per poster held while queued = (peak used_memory - used_memory before) / "
                      "posters; for uploads it includes the poster bytes stored in Redis until classified",
                      "analysis_calls sends each poster once from 2 client threads"]}


if __name__ == "__main__":
    sys.exit(run_alone(measure, __doc__, 300, 32))
