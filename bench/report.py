"""The summary of bench.all: targets that span benchmarks, the Markdown tables, the plot."""

from pathlib import Path

import numpy as np
import pandas as pd

from posterq.cpu import describe

#: The stages of one job on the client's clock, consecutive: the POST answered, the job final, every row read.
STAGES = {"upload_and_store": "upload and store", "wait_answered_after_post": "queue and classify",
          "download": "download results"}


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """The lines of a Markdown table: the frame's columns, then its rows."""
    rows = [list(map(str, frame.columns)), *frame.astype(str).values.tolist()]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return [lines[0], "|" + "---|" * frame.shape[1], *lines[1:]]


def targets_table(targets: list[dict]) -> list[str]:
    """Every target with its limit, its measured figure and whether it was met, as Markdown."""
    frame = pd.DataFrame(targets, columns=["target", "limit", "measured", "met"], dtype=object)
    return markdown_table(frame.assign(met=frame["met"].map({True: "yes", False: "NO"})))


def _figure(report_or_results: dict, name: str, key: str):
    results = report_or_results.get("results", report_or_results)
    return results.get(name, {}).get("figures", {}).get(key)


def cross_targets(results: dict) -> list[dict]:
    """The issue's targets whose two figures come from different benchmarks of the same run."""
    targets = []
    limit = _figure(results, "limit", "limit_posters_per_second")
    default = _figure(results, "scale", "default_posters_per_second")
    if limit and default:
        targets.append({"target": "service end to end, default settings: at least 0.95 x the limit "
                                  "(decode + invoke, one process per core, no queue, no HTTP)",
                        "limit": round(0.95 * limit, 1), "measured": default, "met": default >= 0.95 * limit})
    original = results.get("original", {}).get("figures", {}).get("runs", {}).get("original_seed_fp16")
    if original and default:
        ratio = default / max(original["posters_per_second"], 1e-9)
        targets.append({"target": "service end to end, default settings, against the original design "
                                  "with the seed network's float16 model: at least 30 x",
                        "limit": 30, "measured": round(ratio, 2), "met": ratio >= 30})
    return targets


def _rows(report: dict) -> list[tuple[str, str]]:
    rows = []
    limit = report["results"].get("limit", {}).get("figures", {})
    cores = limit.get("cores", 2)
    for key, what in (("decode_1p_posters_per_second", "decode + preprocess alone, 1 process"),
                      (f"decode_{cores}p_posters_per_second", f"decode + preprocess, {cores} processes"),
                      ("model_1p_posters_per_second", "model alone (batched invoke, 1 thread), 1 process"),
                      (f"model_{cores}p_posters_per_second", f"model alone, {cores} processes"),
                      ("limit_posters_per_second", f"the limit: decode + invoke, {cores} processes"),
                      ("label_posters_per_second", "`posterq label`, default settings")):
        if key in limit:
            rows.append((what, f"{limit[key]} posters/s"))
    scale = report["results"].get("scale", {}).get("figures", {})
    for key, what in (("one_thread_1p_posters_per_second", "service, 1 worker process x 1 thread"),
                      ("one_thread_2p_posters_per_second", "service, 2 worker processes x 1 thread"),
                      ("default_posters_per_second", "service, default settings"),
                      ("pinned_1_host_posters_per_second", "service, 1 worker host pinned to 1 core"),
                      ("pinned_2_hosts_posters_per_second", "service, 2 worker hosts, 1 core each")):
        if key in scale:
            rows.append((what, f"{scale[key]} posters/s"))
    original = report["results"].get("original", {}).get("figures", {}).get("runs", {})
    for key, what in (("original_shipped", "original design (new interpreter per request), shipped model"),
                      ("original_seed_fp16", "original design, the seed network (float16)"),
                      ("posterq_analysis", "posterq `POST /analysis/`, same client")):
        if key in original:
            run = original[key]
            rows.append((what, f"{run['posters_per_second']} posters/s, p50 {run.get('p50_ms')} ms"))
    memory = report["results"].get("memory", {}).get("figures", {})
    for key, what in (("api", "peak RSS, largest API process"),
                      ("worker", "peak RSS, largest worker process")):
        if key in memory:
            rows.append((what, f"{memory[key]['largest_peak_rss_mb']} MB"))
    redis_modes = report["results"].get("redis_cost", {}).get("figures", {}).get("modes", {})
    for mode, entry in redis_modes.items():
        cpu = entry["redis_cpu_usec_per_poster"]
        ceiling = entry["redis_ceiling_posters_per_second"]
        rows.append((f"Redis per poster, {mode.replace('_', ' ')}",
                     f"{entry['commands_per_poster']} commands, {cpu['info_cpu_usec']} µs of Redis CPU, "
                     f"{entry['net_in_bytes_per_poster']} B in; one Redis core: "
                     f"{ceiling.get('info_cpu_usec') or ceiling.get('commandstats_usec')} posters/s, "
                     f"enough for {entry['worker_hosts_one_redis_can_feed']} worker hosts like this one"))
    return rows + _fairness_rows(report["results"].get("fairness", {}).get("figures", {}))


def _fairness_rows(fair: dict) -> list[tuple[str, str]]:
    if not fair:
        return []
    idle, busy, small = fair["analysis_idle"], fair["analysis_during_bulk"], fair["small_job"]
    pair, lone, bulk = fair["two_keys"], fair["lone_bulk"], fair["bulk_posters"]
    return [
        ("`/analysis/`, idle: p50 / p95", f"{idle['p50_ms']} / {idle['p95_ms']} ms"),
        (f"`/analysis/` during a {bulk}-poster bulk job of the same key: p50 / p95",
         f"{busy['p50_ms']} / {busy['p95_ms']} ms, {busy['status_504']} of {busy['calls']} calls 504"),
        (f"key B's {fair['small_posters']}-poster job: alone / 1 s after key A's bulk job",
         f"{small['alone_s']} / {small['during_bulk_s']} s ({small['over_alone']} x)"),
        ("two keys' bulk jobs started together: shares of key A / key B",
         f"{pair['share_A']} / {pair['share_B']}, total {pair['total_posters_per_second']} posters/s "
         f"({pair['total_over_lone']} x one job alone)"),
        (f"service, a lone {bulk}-poster bulk job (API keys on)",
         f"{lone['current_posters_per_second']} posters/s"),
        (f"the same on the FIFO claim of {fair['fifo']['commit'][:7]}",
         f"{lone['fifo_posters_per_second']} posters/s ({lone['over_fifo']} x)"),
    ]


def _figures(report: dict) -> pd.DataFrame:
    return pd.DataFrame(_rows(report), columns=["measured", "figure"])


def recorded_cpu(machine: dict) -> str:
    """The CPU a result file's provenance names, in words; older files say less, and this says so."""
    if machine.get("cpu"):
        return describe(machine["cpu"])
    if machine.get("cpu_model"):
        return f"{machine['cpu_model']} ({machine.get('cpus')} CPUs; vector features not recorded)"
    return f"{machine.get('cpus')} CPUs (CPU not recorded)"


def markdown(report: dict) -> str:
    """Every headline figure and every target with its measured figure, as Markdown tables."""
    lines = [f"Run of {report['git']['commit'][:7]}{' (dirty tree)' if report['git']['dirty'] else ''}, "
             f"model {report['model']['name']} {report['model']['version']}, "
             f"{report['parameters']['posters']} posters, {recorded_cpu(report['machine'])}, "
             f"{report['seconds']} s in all.", "", *markdown_table(_figures(report)), "",
             *targets_table(report["targets"])]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Throughput of each layer and worker layout, and the time per stage of the service's job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = _figures(report)
    rates = figures[figures["figure"].str.match(r"\S+ posters/s")].set_index("measured")["figure"]
    runs = report["results"].get("scale", {}).get("figures", {}).get("runs", [])
    fairness = report["results"].get("fairness", {}).get("figures")
    if fairness:
        fig = plt.figure(figsize=(16, 10))
        grid = fig.add_gridspec(2, 7)
        left, right = fig.add_subplot(grid[0, :4]), fig.add_subplot(grid[0, 4:])
        draw_fairness([fig.add_subplot(grid[1, a:b]) for a, b in ((0, 2), (2, 5), (5, 7))], fairness)
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    if len(rates):
        rates.str.split().str[0].astype(float).iloc[::-1].plot.barh(ax=left, color="tab:blue")
        left.set(xlabel="posters / s", ylabel="", title="throughput, same posters, same run")
        left.tick_params(axis="y", labelsize=8)
    if runs and all("stages_s" in run for run in runs):
        stages = pd.DataFrame([run["stages_s"] for run in runs],
                              index=[run.get("configuration", str(i)) for i, run in enumerate(runs)])
        stages = stages.reindex(columns=list(STAGES)).fillna(0.0).rename(columns=STAGES)
        stages.plot.barh(stacked=True, ax=right)
        right.set(xlabel="seconds for the job", title="time per stage of one job")
        right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def draw_fairness(axes, fair: dict) -> None:
    """bench.fairness in three panels: /analysis/ idle and during a bulk job, two keys' bulk jobs'
    progress against one job alone (and FIFO's), key B's small job alone and during the bulk job."""
    from matplotlib.ticker import FuncFormatter

    latency, progress, small = axes
    idle, busy = fair["analysis_idle"], fair["analysis_during_bulk"]
    width = 0.38
    for offset, key, colour in ((-width / 2, "p50_ms", "tab:blue"), (width / 2, "p95_ms", "tab:orange")):
        bars = latency.bar([offset, 1 + offset], [idle[key] or 0, busy[key] or 0], width, color=colour,
                           label=key.removesuffix("_ms"))
        latency.bar_label(bars, fmt="%.0f", fontsize=8)
    latency.axhline(idle["p50_ms"] + 60, color="tab:blue", linestyle="--", linewidth=1,
                    label="target p50: idle p50 + 60 ms")
    latency.axhline(idle["p50_ms"] + 150, color="tab:orange", linestyle=":", linewidth=1,
                    label="target p95: idle p50 + 150 ms")
    latency.set_yscale("log")
    latency.set_ylim(top=3 * max(busy["p95_ms"] or 0, idle["p95_ms"] or 0, idle["p50_ms"] + 150))
    latency.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    latency.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25"
                                                    else ""))
    latency.set_xticks([0, 1], ["idle", f"during key A's\n{fair['bulk_posters']}-poster job"])
    latency.set(ylabel="ms per call", title=f"/analysis/, one poster: {busy['status_504']} of "
                                            f"{busy['calls']} calls 504")
    latency.legend(fontsize="x-small", loc="upper left")

    series, pair = fair["series"], fair["two_keys"]
    lines = {key: np.array(series["two_keys"][key], dtype=float) for key in ("A", "B")}
    for key, colour in (("A", "tab:blue"), ("B", "tab:orange")):
        progress.plot(*lines[key].T, color=colour, label=f"key {key}: share {pair[f'share_{key}']}")
    times = np.union1d(*(line[:, 0] for line in lines.values()))
    both = sum(np.interp(times, *line.T) for line in lines.values())
    progress.plot(times, both, color="black", linewidth=1,
                  label=f"A + B: {pair['total_posters_per_second']} posters/s")
    for key, style, what in (("lone_current", "--", "one job alone"),
                             ("lone_fifo", ":", f"one job alone, FIFO ({fair['fifo']['commit'][:7]})")):
        line = np.array(series[key], dtype=float)
        progress.plot(*line.T, color="grey", linestyle=style, label=what)
    progress.set(xlabel="seconds since the POSTs", ylabel="posters done",
                 title="two keys' bulk jobs started together")
    progress.legend(fontsize="x-small", loc="upper left")

    jobs = fair["small_job"]
    bars = small.bar([0, 1], [jobs["alone_s"], jobs["during_bulk_s"]], color=["tab:green", "tab:orange"])
    small.bar_label(bars, fmt="%.2f s", fontsize=8)
    small.axhline(3 * jobs["alone_s"], color="grey", linestyle="--", linewidth=1, label="target: 3 x alone")
    small.set_xticks([0, 1], ["alone", "1 s after key A's\nbulk job"])
    small.set(ylabel="seconds to done", title=f"key B's {fair['small_posters']}-poster job: "
                                               f"{jobs['over_alone']} x alone")
    small.legend(fontsize="x-small")
