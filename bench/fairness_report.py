"""bench.fairness's report: the issue's targets with this run's figures, how they were taken, the plot."""

from pathlib import Path

from bench.fairness_runs import PAUSE, POLL, SMALL
from bench.report import draw_fairness


def targets(figures: dict) -> list[dict]:
    """The issue's targets, each with its figure of this run."""
    idle, busy = figures["analysis_idle"], figures["analysis_during_bulk"]
    small, pair, lone = figures["small_job"], figures["two_keys"], figures["lone_bulk"]
    bulk = figures["bulk_posters"]
    found = []
    for what, extra, key in (("p50", 60, "p50_ms"), ("p95", 150, "p95_ms")):
        limit = round(idle["p50_ms"] + extra, 1)
        found.append({"target": f"/analysis/ during a {bulk}-poster bulk job: {what} at most idle p50 + "
                                f"{extra} ms", "limit": limit, "measured": busy[key],
                      "met": busy[key] is not None and busy[key] <= limit})
    found.append({"target": "/analysis/ during the bulk job: no 504", "limit": 0,
                  "measured": busy["status_504"], "met": busy["status_504"] == 0 and busy["calls"] > 0})
    found.append({"target": f"key B's {SMALL}-poster job 1 s after key A's bulk job: done in at most "
                            "3 x its time alone (s)", "limit": round(3 * small["alone_s"], 2),
                  "measured": small["during_bulk_s"], "met": small["during_bulk_s"] <= 3 * small["alone_s"]})
    for key in ("A", "B"):
        share = pair[f"share_{key}"]
        found.append({"target": f"two keys' bulk jobs started together: key {key}'s share of the total "
                                "between 0.4 and 0.6", "limit": "0.4-0.6", "measured": share,
                      "met": share is not None and 0.4 <= share <= 0.6})
    found.append({"target": "two keys' bulk jobs: total at least 0.95 x one job alone (posters/s)",
                  "limit": round(0.95 * pair["lone_posters_per_second"], 1),
                  "measured": pair["total_posters_per_second"],
                  "met": pair["total_posters_per_second"] >= 0.95 * pair["lone_posters_per_second"]})
    fifo = figures["fifo"]["commit"][:7]
    found.append({"target": f"a lone bulk job: at least 0.97 x FIFO's throughput ({fifo}, posters/s)",
                  "limit": round(0.97 * lone["fifo_posters_per_second"], 1),
                  "measured": lone["current_posters_per_second"],
                  "met": lone["current_posters_per_second"] >= 0.97 * lone["fifo_posters_per_second"]})
    return found


def notes(figures: dict, quick: bool) -> list[str]:
    """How the figures were taken, and what to keep in mind reading them."""
    found = [
        "One API and one worker, default settings and the shipped model, POSTERQ_API_KEYS with two "
        "random keys; the FIFO side ran the same settings from a git worktree of "
        f"{figures['fifo']['commit'][:7]} (cwd and PYTHONPATH checked, imports recorded under fifo).",
        f"/analysis/ calls: sequential, one poster as base64 text, {PAUSE} s apart, by key A (the bulk "
        "job's own key); during the bulk job they run from its POST's answer until it is final; a 504 "
        "counts at the time it took.",
        "Throughput of a bulk job: posters / (the job seen final with GET ?wait - just before its POST), "
        "upload included; own_posters_per_second is the job's own created_at -> finished_at.",
        "Two keys' shares: posters each job did between the later job's created_at and the earlier "
        f"one's finished_at, from progress polled every {POLL} s; the total is both jobs' posters over "
        "the first POST to the last job seen final.",
        f"Key B's {SMALL}-poster job: POST to final seen; alone is the median of three runs on the idle "
        "service.",
    ]
    if figures["rounds_of_lone_job"] > 1:
        found.append(f"The lone bulk job ran {figures['rounds_of_lone_job']} times on each side, interleaved "
                     f"({', '.join(figures['order_of_lone_jobs'])}); each side's mean counts, every run "
                     "is kept.")
    if not figures["exactly_once"]:
        found.append("SOME JOB DID NOT GIVE EVERY POSTER EXACTLY ONE RESULT: see the runs' problems")
    if quick:
        found.append(f"quick mode: a {figures['bulk_posters']}-poster bulk job, one round each; the "
                     "issue's targets are for at least 1,500 posters; figures are rough")
    return found


def plot(figures: dict, path: Path) -> None:
    """bench.fairness in three panels (bench.report.draw_fairness), saved at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [2, 3, 2]})
    draw_fairness(axes, figures)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
