"""The capacity model of bench.big_job: Redis's cost per poster, and how many worker hosts one
PostgreSQL and one Redis carry."""

import json
import time

from bench.redis_cost import snapshot
from bench.service import RESULTS


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, rounded, or None without both."""
    return round(a / b, 3) if a and b else None


def timed_snapshot(client) -> dict:
    """bench.redis_cost's snapshot of Redis's counters, with when it was taken."""
    return {**snapshot(client), "time": time.monotonic()}


def _spent(before: dict, after: dict) -> tuple[int, float, float]:
    # Commands, commandstats seconds and INFO cpu seconds between two bench.redis_cost snapshots.
    calls = usec = 0
    for name, (count, spent) in after["commands"].items():
        if name != "info":  # this benchmark's own snapshots
            calls += count - before["commands"].get(name, (0, 0))[0]
            usec += spent - before["commands"].get(name, (0, 0))[1]
    return calls, usec / 1e6, after["cpu_s"] - before["cpu_s"]


def redis_cost(idle: dict, before: dict, after: dict, posters: int) -> dict:
    """Redis CPU and commands per poster of a job (after - before); one Redis core's ceiling.

    The idle service's own rate (idle -> before: heartbeats, Celery's polls) gives a second figure,
    the job's cost above it.
    """
    seconds = after["time"] - before["time"]
    calls, commands_s, cpu_s = _spent(before, after)
    idle_calls, idle_commands_s, idle_cpu_s = (value * seconds / (before["time"] - idle["time"])
                                               for value in _spent(idle, before))
    above_idle, commands_above = (cpu_s - idle_cpu_s) / posters, (commands_s - idle_commands_s) / posters
    return {"job_seconds": round(seconds, 2), "commands_per_poster": round(calls / posters, 1),
            "info_cpu_usec_per_poster": round(1e6 * cpu_s / posters, 1),
            "commandstats_usec_per_poster": round(1e6 * commands_s / posters, 1),
            "above_idle": {"commands_per_poster": round((calls - idle_calls) / posters, 1),
                           "info_cpu_usec_per_poster": round(1e6 * above_idle, 1),
                           "commandstats_usec_per_poster": round(1e6 * commands_above, 1)},
            # The conservative figure, as bench.redis_cost's: INFO cpu, the idle service's share included.
            "redis_ceiling_posters_per_second": round(posters / cpu_s) if cpu_s > 0 else None,
            "redis_ceiling_above_idle": round(1 / above_idle) if above_idle > 0 else None}


def recorded_redis_ceiling() -> dict | None:
    """bench.redis_cost's directory-job ceiling from the latest bench.all result that has one."""
    for path in sorted(RESULTS.glob("all-*.json"), reverse=True):
        report = json.loads(path.read_text())
        modes = report.get("results", {}).get("redis_cost", {}).get("figures", {}).get("modes", {})
        if "directory_job" in modes:
            mode = modes["directory_job"]
            ceiling = mode["redis_ceiling_posters_per_second"]
            return {"file": path.name, "commit": report["git"]["commit"][:7],
                    "info_cpu_usec_per_poster": mode["redis_cpu_usec_per_poster"]["info_cpu_usec"],
                    "redis_ceiling_posters_per_second": ceiling.get("info_cpu_usec")
                    or ceiling.get("commandstats_usec")}
    return None


def how_far(shipped: dict, ledger: dict, recorded: dict | None) -> dict:
    """Posters/s one PostgreSQL and one Redis carry, and so how many worker hosts like this one."""
    host = shipped["big_job"]["posters_per_second_after_listing"] or shipped["big_job"]["posters_per_second"]
    best = ledger["best_rows_per_second"]
    # The service writes batches of 2: many jobs spread over rows of their own, while every batch
    # of one big job locks that job's row.
    many, one = best.get("batch_2_job_per_writer"), best.get("batch_2_one_job")
    measured = shipped["redis_cost_small_job"]["redis_ceiling_posters_per_second"]
    above_idle = shipped["redis_cost_small_job"]["redis_ceiling_above_idle"]

    def hosts(ceiling):
        return round(ceiling / host, 1) if ceiling and host else None

    return {"host_posters_per_second": host,
            "postgres_posters_per_second_many_jobs": many, "postgres_hosts_many_jobs": hosts(many),
            "postgres_posters_per_second_one_job": one, "postgres_hosts_one_job": hosts(one),
            "redis_posters_per_second": measured, "redis_hosts": hosts(measured),
            "redis_posters_per_second_above_idle": above_idle, "redis_hosts_above_idle": hosts(above_idle),
            "redis_recorded": recorded,
            "redis_hosts_recorded": hosts(recorded["redis_ceiling_posters_per_second"]) if recorded else None}
