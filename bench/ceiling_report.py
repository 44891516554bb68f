"""bench.ceiling's summary (the ceiling, what saturated first, one Redis and one PostgreSQL in posters/s
and in worker hosts) and its plot."""

from pathlib import Path

from bench.report import recorded_cpu

#: A part counts as saturated at this share of what it has (Redis: one core; the machine: every core).
SATURATED = 0.85
#: The groups bench.ceiling measures, as the summary and the plot name them.
PARTS = {"redis": "Redis", "postgres": "PostgreSQL, this database's backends",
         "postgres_background": "PostgreSQL, background processes (server-wide)",
         "workers_main": "worker hosts' Celery main processes",
         "workers_pool": "worker hosts' pool processes", "api": "API (gunicorn)", "bench": "this benchmark"}


def other_cores(entry: dict) -> float:
    """Cores busy on the machine outside every measured group (other users of the machine)."""
    return round(max(0.0, entry["machine_cores_busy"] - sum(entry["cores"].values())), 3)


def first_saturated(entry: dict, cores: int) -> str:
    """Which part was at its limit at the ceiling, in words."""
    redis_share, machine_share = entry["cores"]["redis"], entry["machine_cores_busy"] / cores
    if redis_share >= SATURATED:
        return f"Redis: its one core was {redis_share:.0%} busy"
    if machine_share >= SATURATED:
        return (f"the machine's {cores} cores ({machine_share:.0%} busy): the worker hosts took "
                f"{entry['cores']['workers_main'] + entry['cores']['workers_pool']:.2f} cores (Celery's main "
                f"processes {entry['cores']['workers_main']:.2f}), Redis {redis_share:.2f}, PostgreSQL "
                f"{entry['cores']['postgres'] + entry['cores']['postgres_background']:.2f}, the API "
                f"{entry['cores']['api']:.2f}, other processes {other_cores(entry):.2f}")
    if entry["postgres_lock_waiters_mean"] >= 1:
        return (f"PostgreSQL's row locks: {entry['postgres_lock_waiters_mean']} backends waited on a lock "
                f"on average, with the machine {machine_share:.0%} busy")
    return f"no CPU: the machine was {machine_share:.0%} busy and Redis's core {redis_share:.0%}"


def per_core(usec: float) -> float | None:
    """Posters/s that one core feeds at `usec` µs a poster."""
    return round(1e6 / usec) if usec > 0 else None


def of_jobs(report: dict, jobs: int) -> list[dict]:
    """The steps measured with `jobs` jobs."""
    return [entry for entry in report["steps"] if entry["jobs"] == jobs]


def ceiling(steps: list[dict], cores: int) -> dict:
    """The best step of some, what saturated first there, and the CPU per poster there."""
    best = max(steps, key=lambda entry: entry["posters_per_second"])
    return {"ceiling_posters_per_second": best["posters_per_second"], "at_processes": best["processes"],
            "hosts_at_ceiling": best["hosts"], "saturated_first": first_saturated(best, cores),
            "cores_at_ceiling": {**best["cores"], "other": other_cores(best),
                                 "machine_busy": best["machine_cores_busy"]},
            "postgres_lock_waiters_mean_at_ceiling": best["postgres_lock_waiters_mean"],
            "usec_per_poster_at_ceiling": best["usec_per_poster"],
            "usec_per_poster_range": {group: [min(entry["usec_per_poster"][group] for entry in steps),
                                              max(entry["usec_per_poster"][group] for entry in steps)]
                                      for group in best["usec_per_poster"]},
            "rates": {entry["processes"]: entry["posters_per_second"] for entry in steps}}


def summary(report: dict) -> dict:
    """The ceiling (of the first count of jobs) and what follows from the CPU per poster at it."""
    cores, jobs = report["provenance"]["machine"]["cpus"], report["settings"]["jobs"]
    found = ceiling(of_jobs(report, jobs[0]), cores)
    usec = found["usec_per_poster_at_ceiling"]
    host = (report.get("host_rate") or {}).get("posters_per_second")
    feeds = {"redis_core": per_core(usec["redis"]), "postgres_core_backends": per_core(usec["postgres"]),
             "postgres_core_with_background": per_core(usec["postgres"] + usec["postgres_background"])}
    # Where posters/s still grew at the last step, the ceiling is a floor: more processes might go further.
    return {"jobs": jobs[0], "stopped_growing": report.get("stopped_growing"), **found,
            "posters_per_second_one_core_feeds": feeds,
            "worker_core_posters_per_second_noop_model":
                per_core(usec["workers_main"] + usec["workers_pool"]),
            "host_rate": report.get("host_rate"),
            "worker_hosts_fed": {name: round(rate / host, 1) if rate and host else None
                                 for name, rate in feeds.items()},
            "every_poster_once": all(entry["check"]["one_row_per_file"] for entry in report["steps"]),
            "other_jobs": {count: ceiling(of_jobs(report, count), cores) for count in jobs[1:]}}


def plot(report: dict, path: Path) -> None:
    """Posters/s, cores by part and µs a poster of Redis and PostgreSQL, against worker processes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jobs = report["settings"]["jobs"]
    fig, (rate, cores, usec) = plt.subplots(1, 3, figsize=(16, 4.8))
    waiters = rate.twinx()
    for count, style in zip(jobs, ("-", "--", ":", "-."), strict=False):
        steps = of_jobs(report, count)
        x = [entry["processes"] for entry in steps]
        rate.plot(x, [entry["posters_per_second"] for entry in steps], marker="o", linestyle=style,
                  label=f"posters/s, {count} job{'s' if count > 1 else ''}")
        waiters.plot(x, [entry["postgres_lock_waiters_mean"] for entry in steps], marker="x", color="grey",
                     linestyle=style, label=f"PostgreSQL backends waiting on a lock, {count} job(s)")
        for group, colour in (("redis", "C0"), ("postgres", "C1"), ("postgres_background", "C2")):
            usec.plot(x, [entry["usec_per_poster"][group] for entry in steps], marker="o", color=colour,
                      linestyle=style, label=f"{PARTS[group]}, {count} job{'s' if count > 1 else ''}")
    rate.set(title="posters/s, directory jobs (no-op model)", xlabel="worker processes", ylabel="posters/s",
             ylim=(0, None))
    waiters.set(ylabel="PostgreSQL backends waiting on a lock (mean)", ylim=(0, None))
    lines = rate.get_legend_handles_labels()[0] + waiters.get_legend_handles_labels()[0]
    rate.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="upper left")
    usec.set(title="CPU per poster", xlabel="worker processes", ylabel="µs a poster", ylim=(0, None))
    usec.legend(fontsize=6, loc="lower left")
    steps = of_jobs(report, jobs[0])
    x = [entry["processes"] for entry in steps]
    for group in ("redis", "postgres", "postgres_background", "workers_main", "workers_pool", "api"):
        cores.plot(x, [entry["cores"][group] for entry in steps], marker="o", label=PARTS[group])
    cores.plot(x, [other_cores(entry) for entry in steps], marker=".", linestyle=":", label="other processes")
    cores.plot(x, [entry["machine_cores_busy"] for entry in steps], color="black", label="the machine, busy")
    cores.axhline(report["provenance"]["machine"]["cpus"], color="grey", linestyle="--",
                  label="the machine's cores")
    cores.set(title=f"cores used during the job{'s' if jobs[0] > 1 else ''} ({jobs[0]})",
              xlabel="worker processes", ylabel="cores", ylim=(0, None))
    cores.legend(fontsize=7, loc="center right", bbox_to_anchor=(1.0, 0.62))
    for axis in (rate, cores, usec):
        axis.set_xscale("log", base=2)
        axis.set_xticks(x, [str(n) for n in x])
        axis.grid(alpha=0.3)
    machine = report["provenance"]["machine"]
    fig.suptitle(f"bench.ceiling, {report['provenance']['git']['commit'][:7]}, {recorded_cpu(machine)}, "
                 f"load before {machine['loadavg_before'][0]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
