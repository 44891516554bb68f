"""Does a larger input help the shipped recipe? Its own linear probe (head on frozen taps), per size.

    .venv/bin/python -m posterq.training.probe_resolution --data ../shared/datasets/movie-posters \
        [--sizes 320x224 384x256 480x320 576x384]

For each size (height x width), the recipe's frozen lower blocks and taps run over every training
poster and its mirror image, the recipe's logistic-regression probe is fitted exactly as in
`posterq train`, and the validation split is scored. Unlike training/input_shape.py (a weak probe on
the last features of 2,400 posters), this is the starting point the fine-tuning builds on.
Results are merged into bench/results/probe_resolution.json by size, so sizes can be measured one
run at a time (each run takes minutes per size).
"""

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

from posterq.cpu import cpu_facts
from posterq.training.datasets import load_dataset
from posterq.training.effnet_train import ValidationMetrics, linear_probe, lower_outputs, split_models
from posterq.training.train import RECIPES, decoded_split
from posterq.training.train_cli import height_by_width


def probe(data, size, cache: Path) -> dict:
    """Fit the recipe's probe at one input size; return its validation figures and time."""
    recipe = replace(RECIPES["effnet-lite0"], input_size=size)
    started = time.time()
    train_pixels, train_labels, val_pixels, val_labels = decoded_split(load_dataset(data), recipe, cache)
    lower, upper, _ = split_models(size, recipe.cut_block, recipe.taps)
    outputs = lower_outputs(lower, train_pixels, val_pixels)
    linear_probe(upper, outputs["train"], outputs["mirror"], train_labels, recipe.probe_strength)
    validation = ValidationMetrics(outputs["val"], val_labels)
    validation.set_model(upper)
    measured = validation.measure()
    return {"height": size[0], "width": size[1], "macro_roc_auc": measured["val_macro_roc_auc"],
            "macro_average_precision": measured["val_macro_ap"], "seconds": round(time.time() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sizes", nargs="+", type=height_by_width, metavar="HxW",
                        default=[(320, 224), (384, 256), (480, 320), (576, 384)])
    parser.add_argument("--cache", default="runs/cache",
                        help="decoded-poster cache shared with posterq train")
    args = parser.parse_args()
    # With every other measured figure, in bench/results/.
    out = Path(__file__).resolve().parents[1] / "bench" / "results" / "probe_resolution.json"
    # Earlier runs' sizes are kept; a size measured again replaces its old figure.
    measured = ({(r["height"], r["width"]): r for r in json.loads(out.read_text())["results"]}
                if out.exists() else {})
    for size in args.sizes:
        measured[size] = probe(args.data, size, Path(args.cache))
        print(json.dumps(measured[size]), flush=True)
        out.write_text(json.dumps({"what": "the effnet-lite0 recipe's linear probe on frozen taps, "
                                           "per input size",
                                   "machine": f"{platform.machine()}", "cpu": cpu_facts(),
                                   "command":
                                   "python -m posterq.training.probe_resolution --data DIR --sizes HxW",
                                   "results": [measured[key] for key in sorted(measured)]}, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
