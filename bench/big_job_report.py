"""bench.big_job's report: the issue's targets, how the figures were taken, a Markdown table and a plot."""

from pathlib import Path

import pandas as pd

from bench.report import markdown_table, recorded_cpu, targets_table


def targets(figures: dict) -> list[dict]:
    """The issue's targets, each with its measured figure."""
    tiny, shipped = figures["tiny"], figures["shipped"]
    big, little = tiny["big_job"], tiny["small_job"]
    files, small = big["files"], little["files"]
    found = [{"target": f"POST of a {files}-file folder answers in under 1 s", "limit": 1.0,
              "measured": big["post_answer_s"], "met": big["post_answer_s"] < 1.0}]
    growth, bound = big["redis"]["growth_mb"], round(1.25 * little["redis"]["growth_mb"] + 1, 2)
    found += [{"target": f"Redis growth, {files}-file job: at most 1.25 x the {small}-file job's + 1 MB",
               "limit": bound, "measured": growth, "met": growth <= bound},
              {"target": f"Redis growth, {files}-file job: under 32 MB (the test's bound)", "limit": 32,
               "measured": growth, "met": growth < 32}]
    once = big["check"]["one_row_per_file"] and little["check"]["one_row_per_file"]
    found.append({"target": "every file has exactly one row, none pending (SQL)", "limit": True,
                  "measured": once, "met": once})
    grown = tiny["download"]["api_rss_peak_growth_mb"]
    found.append({"target": f"CSV download of {files} rows: API RSS growth under 64 MB (the test's bound)",
                  "limit": 64, "measured": grown, "met": grown < 64 and tiny["download"]["all_rows"]})
    for label, entry in (("tiny model", tiny["cancel"]), ("shipped model", shipped["big_job"]["cancel"])):
        found.append({"target": f"cancel ({label}): no result written later than 1 s after the DELETE",
                      "limit": 1.0, "measured": entry["results_stopped_after_s"],
                      "met": entry["results_stopped_after_s"] <= 1.0})
    share = shipped["big_over_small"]
    found.append({"target": "shipped model: the big job's posters/s at least 0.95 x a small job's (steady)",
                  "limit": 0.95, "measured": share, "met": share is not None and share >= 0.95})
    return found


def notes(quick: bool) -> list[str]:
    """How the figures were taken."""
    found = [
        "Redis growth: peak used_memory from the POST to the job final, less the median of the second before "
        "the POST; bytes per in-flight poster divide it by min(job_window, files) + the most posters seen in "
        "claimed batches, and by the most posters seen waiting and in batches at once (more than the window "
        "where top-ups raced); retained: the last sample (job final) less the baseline.",
        "rows/s: the job's posters / (finished_at - started_at), started_at being its first result.",
        "Posters/s of a big job: posters done between two counts / seconds between them (polls every 0.1 s, "
        "interpolated); a small job's steady figure is the same between 10 % and 90 % of it, its whole "
        "figure posters / (finished_at - created_at). The small job runs before and after the big one; the "
        "ratio is against the mean of their steady figures.",
        "Cancel: the job row polled every 10 ms from before the DELETE; results_stopped_after_s runs from "
        "sending the DELETE to the first poll that saw the final count (0 when none moved after it).",
        "Redis per poster (shipped small job): INFO cpu and commandstats diffed around it, no samples taken "
        "meanwhile; the idle worker's heartbeats and polls count too.",
        "Every process shares the machine's cores with PostgreSQL, Redis and this script, and other work "
        "may have run meanwhile: load_during gives the load average and CPU pressure through the run.",
    ]
    if quick:
        found.append("quick mode: a few thousand files; figures are rough")
    return found


def markdown(report: dict) -> str:
    """The headline figures and the targets as Markdown tables."""
    figures = report["figures"]
    tiny, shipped, far = figures["tiny"], figures["shipped"], figures["how_far"]
    big, little, table, load = tiny["big_job"], tiny["small_job"], tiny["results_table"], tiny["download"]
    small_ship, again, big_ship = shipped["small_job"], shipped["small_job_again"], shipped["big_job"]
    rows = [
        (f"POST of the {big['files']}-file folder / of the {little['files']}-file one",
         f"{big['post_answer_s']} / {little['post_answer_s']} s"),
        ("folder listed (enumerated true), s after the POST", f"{big['enumerated_after_s']} / "
                                                               f"{little['enumerated_after_s']} s"),
        ("Redis used_memory growth (peak), big / small job",
         f"{big['redis']['growth_mb']} / {little['redis']['growth_mb']} MB"),
        ("Redis bytes per in-flight poster, big job: growth / (window + in batches) / (the most seen)",
         f"{big['redis']['bytes_per_in_flight_poster']} B / "
         f"{big['redis'].get('bytes_per_poster_most_in_flight')} B "
         f"({big['redis'].get('most_in_flight')} posters)"),
        ("results written (tiny model), big / small job",
         f"{big['rows_per_second']} / {little['rows_per_second']} rows/s"),
        ("results table on disk per row", f"{table['bytes_per_row']} B ({table['rows']} rows)"),
        ("one row per file (SQL)",
         str(big["check"]["one_row_per_file"] and little["check"]["one_row_per_file"])),
        (f"CSV download of {load['rows']} rows",
         f"{load['seconds']} s, API RSS +{load['api_rss_peak_growth_mb']} MB"),
        ("cancel, tiny / shipped model: results stop after",
         f"{tiny['cancel']['results_stopped_after_s']} / {big_ship['cancel']['results_stopped_after_s']} s"),
        (f"shipped model, a {small_ship['files']}-poster job before / after the big one: whole (steady)",
         f"{small_ship['posters_per_second']} ({small_ship['steady_posters_per_second']}) / "
         f"{again['posters_per_second']} ({again['steady_posters_per_second']}) posters/s"),
        (f"shipped model, the big job from {big_ship['window'][0]} to {big_ship['window'][1]} done / "
         "after its listing",
         f"{big_ship['posters_per_second']} / {big_ship['posters_per_second_after_listing']} posters/s "
         f"({shipped['big_over_small']} / {shipped['big_after_listing_over_small']} x the small jobs' "
         "mean steady figure)"),
    ]
    rows += [(f"Ledger.write, {entry['writers']} writers, batch {entry['batch']}, {entry['jobs']}",
              f"{entry['rows_per_second']} rows/s (rounds: {', '.join(map(str, entry['every_round']))})")
             for entry in figures["ledger"]["scenarios"]]
    rows += [("one PostgreSQL, batch 2: many jobs / one job",
              f"{far['postgres_posters_per_second_many_jobs']} / "
              f"{far['postgres_posters_per_second_one_job']} "
              f"posters/s = {far['postgres_hosts_many_jobs']} / {far['postgres_hosts_one_job']} hosts of "
              f"{far['host_posters_per_second']} posters/s"),
             ("one Redis core, directory job (measured here): all / above the idle service's cost",
              f"{far['redis_posters_per_second']} / {far['redis_posters_per_second_above_idle']} posters/s = "
              f"{far['redis_hosts']} / {far['redis_hosts_above_idle']} hosts")]
    if far["redis_recorded"]:
        recorded = far["redis_recorded"]
        rows.append((f"one Redis core (bench.redis_cost, {recorded['commit']}, {recorded['file']})",
                     f"{recorded['redis_ceiling_posters_per_second']} posters/s = "
                     f"{far['redis_hosts_recorded']} hosts"))
    made = report["provenance"]
    load = made["machine"].get("load_during", {}).get("loadavg_1m", {})
    head = (f"Run of {made['git']['commit'][:7]}{' (dirty tree)' if made['git']['dirty'] else ''}, "
            f"{report['settings']['files']} files, {recorded_cpu(made['machine'])}, "
            f"{report['seconds']} s in all; load average through the run: median "
            f"{load.get('median')}, max {load.get('max')}.")
    return "\n".join([head, "", *markdown_table(pd.DataFrame(rows, columns=["measured", "figure"])), "",
                      *targets_table(report["targets"])]) + "\n"


def plot(report: dict, path: Path) -> None:
    """The tiny model's jobs (progress, Redis memory), the shipped model's jobs, Ledger.write's rows/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = report["figures"]
    tiny, shipped = figures["tiny"], figures["shipped"]
    fig, (jobs, memory, model, ledger) = plt.subplots(1, 4, figsize=(22, 5))
    for label, colour in (("big_job", "tab:blue"), ("small_job", "tab:orange")):
        series, files = tiny[label]["series"], tiny[label]["files"]
        t, done, total = zip(*series["progress"], strict=True)
        jobs.plot(t, done, color=colour, label=f"{files} files: done")
        jobs.plot(t, total, color=colour, linestyle=":", label=f"{files} files: listed")
        memory.plot(*zip(*series["redis_used_mb"], strict=True), color=colour, label=f"{files} files")
    jobs.set(xlabel="seconds since the POST", ylabel="posters", title="tiny model: one job per folder")
    jobs.legend(fontsize="small")
    memory.set(xlabel="seconds since the POST", ylabel="Redis used_memory, MB", title="Redis through the job")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize="small")
    for label, colour, what in (("big_job", "tab:blue", ""), ("small_job", "tab:orange", ""),
                                ("small_job_again", "tab:red", ", again")):
        t, done, _ = zip(*shipped[label]["series"]["progress"], strict=True)
        model.plot(t, done, color=colour, label=f"{shipped[label]['files']} files{what}")
    model.axhspan(*shipped["big_job"]["window"], color="tab:blue", alpha=0.1, label="the big job's window")
    model.set(xlabel="seconds since the POST", ylabel="posters done", title="shipped model")
    model.legend(fontsize="small")
    runs = figures["ledger"]["scenarios"]
    names = [f"{run['writers']}w b{run['batch']}\n{'1 job' if run['jobs'] == 'one job' else 'job each'}"
             for run in runs]
    bars = ledger.bar(range(len(runs)), [run["rows_per_second"] for run in runs], color="tab:green")
    ledger.bar_label(bars, fmt="%.0f", fontsize=8)
    ledger.set_xticks(range(len(runs)), names, fontsize=7)
    ledger.set(ylabel="rows / s", title="Ledger.write, one PostgreSQL (best round)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
