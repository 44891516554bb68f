"""The model card: README.md with plots beside a bundle, written from its model.json and run files.

    python -m posterq.training.card models/effnet-lite0-posters --work runs/effnet-lite0-posters \
        --seed bench/results/seed_network.json
    python -m posterq.training.card models/effnet-lite0-posters --text-only \
        --seed bench/results/seed_network.json

--text-only rewrites README.md alone, linking the plots already beside the bundle: the card's text
changes without the training run's work folder, and without touching the model or its plots.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen on servers
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from posterq.cpu import describe
from posterq.training.shipping import cpu_note

MAIN_GENRES = 6  # the precision-recall plot shows the genres with the most validation posters
#: Each plot's file and title, in the card's order.
PLOTS = {"front.png": "Accuracy against speed: every input size and precision",
         "training_curves.png": "Training curves",
         "per_genre_ap.png": "Average precision per genre (validation)",
         "precision_recall.png": "Precision-recall, main genres (validation)"}


def write_card(bundle: Path, work: Path | None, seed_meta: Path | None = None, scores: Path | None = None,
               text_only: bool = False) -> Path:
    """Write README.md and its plots into the bundle folder; return the README's path.

    `scores` holds the shipped variant's validation labels and scores (default work/validation_scores.npz).
    With text_only, write README.md alone, linking the plots already in the folder (work is not read).
    """
    bundle = Path(bundle)
    meta = json.loads((bundle / "model.json").read_text())
    seed = json.loads(Path(seed_meta).read_text()) if seed_meta and Path(seed_meta).exists() else None
    if text_only:
        drawn = [name for name in PLOTS if (bundle / name).exists()]
    else:
        drawn = _draw(bundle, Path(work), meta, seed, scores)
    text = _markdown(meta, seed, [(PLOTS[name], name) for name in PLOTS if name in drawn])
    (bundle / "README.md").write_text(text, encoding="utf-8")
    return bundle / "README.md"


def _draw(bundle: Path, work: Path, meta: dict, seed: dict | None, scores: Path | None) -> list[str]:
    """Draw every plot the bundle and the work folder have the data for; return their file names."""
    drawn = [_plot_per_genre(meta, seed, bundle / "per_genre_ap.png")]
    if "front" in meta:
        drawn.append(_plot_front(meta["front"], bundle / "front.png"))
    history = work / "history.csv"
    if history.exists():
        drawn.append(_plot_history(history, bundle / "training_curves.png"))
    scores = Path(scores) if scores else work / "validation_scores.npz"
    if scores.exists():
        drawn.append(_plot_pr(scores, meta["genres"], bundle / "precision_recall.png"))
    return drawn


def _plot_front(front: dict, out: Path) -> str:
    candidates = front["candidates"]
    sizes = sorted({c["input_size"] for c in candidates.values()}, key=lambda s: int(s.split("x")[0]))
    variants = sorted({c["variant"] for c in candidates.values()})
    markers = dict(zip(sizes, "o^sDv", strict=False))
    colours = {v: f"C{i}" for i, v in enumerate(variants)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, key, label in ((axes[0], "macro_roc_auc", "validation macro ROC-AUC"),
                             (axes[1], "macro_average_precision", "validation macro AP")):
        for c in candidates.values():
            axis.scatter(c["ms_per_poster_1_core"], np.nan if c[key] is None else c[key],
                         marker=markers[c["input_size"]],
                         color=colours[c["variant"]], s=50, zorder=3)
        line = sorted((candidates[n]["ms_per_poster_1_core"], candidates[n][key] or np.nan)
                      for n in front["on_front"])
        axis.plot(*zip(*line, strict=True), color="grey", lw=1, zorder=2,
                  label="front (AUC, AP and micro-F1)")
        axis.axhline(front["best"][key] - front["tolerance"][key], color="grey", ls="--", lw=1,
                     label="best minus the shipping tolerance")
        for role in ("default", "fast"):
            if front.get(role):
                c = candidates[front[role]]
                axis.scatter(c["ms_per_poster_1_core"], c[key] or np.nan, s=260, facecolors="none",
                             edgecolors="red" if role == "default" else "black", lw=1.5, zorder=4,
                             label=f"{role}: {front[role]}")
        axis.set_xlabel("ms per poster, one core")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker=markers[s], ls="", color="grey", label=s) for s in sizes]
    handles += [plt.Line2D([], [], marker="o", ls="", color=colours[v], label=v) for v in variants]
    axes[0].legend(handles=handles, fontsize=8, loc="lower right")
    axes[1].legend(fontsize=8, loc="lower right")
    return _save(fig, out)


def _plot_history(path: Path, out: Path) -> str:
    # Keras logs epochs from 0; a resumed run appends to the log, so the last line of an epoch wins.
    history = pd.read_csv(path).drop_duplicates("epoch", keep="last").assign(epoch=lambda h: h["epoch"] + 1)
    probe = path.parent / "probe.json"
    if probe.exists():  # the linear probe the fine-tuning started from, as epoch 0
        history = pd.concat([pd.DataFrame([{**json.loads(probe.read_text()), "epoch": 0}]), history])
    history = history.set_index("epoch").sort_index()
    # Loss, ROC-AUC and AP each on their own axis: on one shared axis, changes of 0.005 vanish.
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    # The effnet recipe logs the project's validation metrics; the seed recipe Keras' own.
    keys = ((0, "loss", "train loss"),
            (1, "val_macro_roc_auc", "validation macro ROC-AUC"), (2, "val_macro_ap", "validation macro AP"),
            (1, "val_roc_auc", "validation ROC-AUC (Keras, all genres)"),
            (2, "val_ap", "validation AP (Keras, all genres)"))
    for axis, key, label in keys:
        points = pd.to_numeric(history[key], errors="coerce").dropna() if key in history else []
        if len(points):
            axes[axis].plot(points.index, points, marker="o", label=label)
    axes[0].set_title("training loss")
    start = " (epoch 0: the linear probe)" if probe.exists() else ""
    axes[1].set_title(f"validation ROC-AUC{start}")
    axes[2].set_title(f"validation AP{start}")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.legend()
        axis.grid(alpha=0.3)
    return _save(fig, out)


def _plot_per_genre(meta: dict, seed: dict | None, out: Path) -> str:
    per_genre = meta["metrics"]["per_genre"]
    genres = [g for g in meta["genres"] if per_genre[g]["average_precision"] is not None]
    genres.sort(key=lambda g: -per_genre[g]["positives"])
    x = np.arange(len(genres))
    fig, axis = plt.subplots(figsize=(11, 4))
    prior = [per_genre[g]["positives"] / meta["metrics"]["n_posters"] for g in genres]
    series = [("label prior", prior)]
    # bench/results/seed_network.json keeps the headline figures only
    if seed and "per_genre" in seed["metrics"]:
        series.append(("seed network",
                       [seed["metrics"]["per_genre"][g]["average_precision"] or 0 for g in genres]))
    series.append((meta["name"], [per_genre[g]["average_precision"] for g in genres]))
    width = 0.8 / len(series)
    for index, (label, values) in enumerate(series):
        axis.bar(x + (index - (len(series) - 1) / 2) * width, values, width, label=label)
    axis.set_xticks(x, [f"{g}\n({per_genre[g]['positives']})" for g in genres], rotation=60, fontsize=8)
    axis.set_ylabel("average precision")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def _plot_pr(path: Path, genres: list, out: Path) -> str:
    with np.load(path) as stored:
        labels, scores = stored["labels"], stored["scores"]
    main = np.argsort(-labels.sum(axis=0))[:MAIN_GENRES]
    fig, axis = plt.subplots(figsize=(6, 5))
    for j in main:
        precision, recall, _ = precision_recall_curve(labels[:, j], scores[:, j])
        axis.plot(recall, precision, label=f"{genres[j]} ({int(labels[:, j].sum())})")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend()
    axis.grid(alpha=0.3)
    return _save(fig, out)


def _save(fig, out: Path) -> str:
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out.name


def _row(label, metrics, size=None, ms=None) -> str:
    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    size_text = "n/a" if size is None else f"{size / 1e6:.1f} MB"
    ms_text = "n/a" if ms is None else f"{ms:.1f}"
    return (f"| {label} | {fmt(metrics['macro_roc_auc'])} | {fmt(metrics['macro_average_precision'])} | "
            f"{fmt(metrics['micro_f1'])} | {fmt(metrics['samples_f1'])} | {size_text} | {ms_text} |")


def _markdown(meta: dict, seed: dict | None, plots) -> str:
    training, comparison = meta["training"], meta["comparison"]
    shipped = comparison["variants"][meta["variant"]]
    header = ("| model | macro ROC-AUC | macro AP | micro F1 | samples F1 | size | ms/poster, 1 core |\n"
              "|---|---|---|---|---|---|---|")
    rows = [_row("label-prior baseline", meta["baseline_metrics"])]
    if seed:
        seed_variant = seed["comparison"]["variants"][seed["variant"]]
        note = " (partly trained, see below)" if seed["training"].get("stopped_early") else ""
        rows.append(_row(f"seed network{note}", seed["metrics"], seed_variant["size_bytes"],
                         seed_variant["ms_per_poster_1_core"]))
    rows.append(_row(f"**{meta['name']}** ({meta['variant']}, shipped)", meta["metrics"],
                     shipped["size_bytes"], shipped["ms_per_poster_1_core"]))
    variant_rows = [("| variant | macro ROC-AUC | macro AP | micro F1 | samples F1 | size | "
                    "ms/poster, 1 core | max score diff vs Keras | labels agree with Keras |"),
                    "|---|---|---|---|---|---|---|---|---|"]
    variant_rows.append(_row("Keras (reference)", comparison["keras"]["metrics"]) + " 0 | 100% |")
    for name, entry in comparison["variants"].items():
        vs = entry["vs_keras"]
        variant_rows.append(_row(name, entry["metrics"], entry["size_bytes"], entry["ms_per_poster_1_core"])
                            + f" {vs['max_abs_score_diff']:.4f} | {vs['labels_agree']:.1%} |")
    per_genre = ["| genre | validation positives | ROC-AUC | AP | threshold | precision | recall | F1 |",
                 "|---|---|---|---|---|---|---|---|"]
    for genre in meta["genres"]:
        g = meta["metrics"]["per_genre"][genre]

        def fmt(value):
            return "n/a" if value is None else f"{value:.3f}"

        per_genre.append(f"| {genre} | {g['positives']} | {fmt(g['roc_auc'])} | "
                         f"{fmt(g['average_precision'])} | {fmt(g.get('threshold'))} | "
                         f"{g['precision']:.3f} | {g['recall']:.3f} | {g['f1']:.3f} |")
    data = training["data"]
    recipe = training["recipe"]
    seed_note = ""
    if seed and seed["training"].get("stopped_early"):
        seed_note = (f"\nThe seed network's row is from a run cut short: "
                     f"{seed['training']['stopped_early']}; its full recipe "
                     f"({seed['training']['recipe']['epochs']} epochs at 350x350) needs hours "
                     "on this 2-core CPU."
                     + (f" Its figures: {seed['how']}." if seed.get("how") else "") + "\n")
    trained_on = _on(training.get("cpu"), training["machine"])
    figures = "\n".join(f"### {title}\n\n![{title}]({name})\n" for title, name in plots)
    return f"""# {meta['name']} {meta['version']}

Multi-label movie-poster genre classifier ({len(meta['genres'])} genres) for posterq's LiteRT runtime.
Architecture `{meta['architecture']}`, input {meta['input']['height']}x{meta['input']['width']} \
(height x width)
RGB pixels in [0, 255] (normalization is inside the model), shipped as the **{meta['variant']}** \
TFLite variant
(`model.tflite`, {shipped['size_bytes'] / 1e6:.1f} MB, sha256 `{meta['sha256'][:16]}...`).

## Figures on the validation split

{data['validation']} validation posters ({data['split']}), from {data['posters']} posters of the
`{data['layout']}` layout. Macro ROC-AUC and macro AP average the {len(meta['metrics']['genres_scored'])} \
genres
with at least 5 validation positives; F1 is of the labels the label rule assigns.

{header}
{chr(10).join(rows)}
{seed_note}
Speed: median of single-poster invokes through `posterq.classifier.Classifier` with one interpreter thread,
on {_on(_timing_cpu(meta), training['machine'])}.

{_front_section(meta)}## Keras vs TFLite variants at {meta['input']['height']}x{meta['input']['width']}

Every variant ran through posterq's runtime on the whole validation split, thresholds tuned on its own scores.
{_rule_line(meta)}

{chr(10).join(variant_rows)}

## Label rule

Per-genre thresholds ({meta['label_rule']['tuned_on']}); every poster gets at least one genre (its highest
score when none passes) and at most {meta['label_rule']['top_k']}, best first. Scores are always returned too.

{chr(10).join(per_genre)}

## Training

- Data: `{data['path']}` ({data['layout']}), {data['train']} training / {data['validation']} \
validation posters.
- Recipe: {recipe['epochs']} epochs, batch {recipe['batch_size']}, learning rate {recipe['learning_rate']}; \
{'; '.join(recipe['notes'])}.
- Took {training['seconds'] / 60:.1f} minutes on {trained_on} from the data to the end of fitting
  (decoding, features, fitting); {_export_time(training)}.
- Reproduce: {_reproduce(meta)}

## Plots

{figures}
## Limits

- Trained and tuned on IMDb posters of the 1980s-2010s; other eras, other countries' posters, fan art or
  DVD covers are out of its distribution.
- Genres with few examples (News, Reality-TV, Short, Western, Documentary...) get unreliable scores; their
  thresholds are shared rather than fitted to a handful of posters.
- A poster shows what the marketing chose to show: genre from pixels alone is a weak signal, and the figures
  above are far from what metadata or plot text would give.
"""


def _timing_cpu(meta: dict) -> dict | None:
    # posterq ship times every variant again, on its own machine: the training run's CPU is not theirs.
    return meta["front"].get("cpu") if "front" in meta else meta["training"].get("cpu")


def _on(cpu: dict | None, machine: str) -> str:
    return describe(cpu) if cpu else f"{machine} (CPU model and vector features not recorded)"


def _rule_line(meta: dict) -> str:
    if "front" in meta:
        return "The variant that ships was chosen from every input size's variants: see the front above."
    comparison = meta["comparison"]
    why = f" {comparison['why']}." if "why" in comparison else ""
    return (f"Rule for shipping: {comparison['rule']}.{why}\n\n"
            + cpu_note(_timing_cpu(meta), meta["training"]["machine"]))


def _front_section(meta: dict) -> str:
    if "front" not in meta:
        return ""
    front = meta["front"]
    rows = ["| input, variant | on the front | ms/poster, 1 core | macro ROC-AUC | macro AP | micro F1 | "
            "size | labels agree with Keras |", "|---|---|---|---|---|---|---|---|"]
    ordered = sorted(front["candidates"].items(), key=lambda item: item[1]["ms_per_poster_1_core"])
    for name, c in ordered:
        mark = {front["default"]: " **(default)**", front.get("fast"): " **(fast)**"}.get(name, "")
        scores = " | ".join("n/a" if c[key] is None else f"{c[key]:.4f}"
                            for key in ("macro_roc_auc", "macro_average_precision", "micro_f1"))
        rows.append(f"| {name}{mark} | {'yes' if c['on_front'] else ''} | {c['ms_per_poster_1_core']:.1f} | "
                    f"{scores} | {c['size_bytes'] / 1e6:.1f} MB | {c['labels_agree_with_keras']:.1%} |")
    others = "" if not front.get("fast") else (
        f" A second bundle ships beside the default, `{front['fast']}`: {_fast_line(front)}.")
    return f"""## The front: accuracy against speed

Each input size was trained by the same recipe and exported in every precision; every variant ran the
whole validation split through posterq's runtime with its own thresholds, and was timed again beside the
others ({front['timing']}). Shipping rule for the default: {front['default_rule']}.

**This bundle: {front['shipped']}**, because {front['why']}.{others}

{cpu_note(front.get('cpu'), meta['training']['machine'])}

{chr(10).join(rows)}

"""


def _fast_line(front: dict) -> str:
    fast, default = front["candidates"][front["fast"]], front["candidates"][front["default"]]
    def less(key):
        return "n/a" if None in (default[key], fast[key]) else f"{default[key] - fast[key]:.4f}"

    return (f"{default['ms_per_poster_1_core'] / fast['ms_per_poster_1_core']:.1f} times faster than the "
            f"default, for {less('macro_roc_auc')} less macro ROC-AUC and {less('macro_average_precision')} "
            "less macro AP")


def _reproduce(meta: dict) -> str:
    data = meta["training"]["data"]
    if "front" not in meta:
        return (f"`posterq train --data {data['path']} --arch {meta['architecture']} --out "
                f"models/{meta['name']}` then `python -m posterq.training.card models/{meta['name']} --work "
                f"runs/{meta['name']} --seed bench/results/seed_network.json`.")
    sizes = sorted({c["input_size"] for c in meta["front"]["candidates"].values()},
                   key=lambda size: int(size.split("x")[0]))
    runs = " ".join(f"runs/effnet-lite0-posters/{size}" for size in sizes)
    return (f"for each size in {', '.join(sizes)}: `posterq train --data {data['path']} --input-size SIZE "
            f"--work runs/effnet-lite0-posters/SIZE --out runs/effnet-lite0-posters/SIZE/bundle`; then "
            f"`posterq ship {runs} --out models/effnet-lite0-posters --fast-out "
            f"models/effnet-lite0-posters-fast --version {meta['version']}` (it writes this card too).")


def _export_time(training: dict) -> str:
    total = training.get("total_seconds")
    if total is None:
        return "exporting and comparing the variants came after and is not in that figure"
    return f"{total / 60:.1f} minutes in all with the export and comparison of the variants"


def main():
    parser = argparse.ArgumentParser(description="Write a bundle's model card.")
    parser.add_argument("bundle")
    parser.add_argument("--work", default=None,
                        help="the training run's work folder (history, validation scores); "
                             "required unless --text-only")
    parser.add_argument("--text-only", action="store_true",
                        help="rewrite README.md alone, linking the plots already in the bundle folder")
    parser.add_argument("--seed", default=None,
                        help="the seed network run's model.json (or bench/results/seed_network.json), "
                             "for the comparison row")
    args = parser.parse_args()
    if not (args.work or args.text_only):
        parser.error("--work is required unless --text-only")
    print(write_card(Path(args.bundle), args.work, args.seed, text_only=args.text_only))


if __name__ == "__main__":
    main()
