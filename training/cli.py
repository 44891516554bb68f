"""The training package's CLI commands; posterq/cli.py mounts them as subcommands.

    posterq evaluate --data DIR [--model BUNDLE] [--out metrics.json] [--batch-size 32] [--top-k K]
"""

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_evaluate_arguments(parser) -> None:
    """Add the `evaluate` command's options to an argparse parser."""
    parser.add_argument("--data", required=True, help="dataset folder (Kaggle, CCU or labels.csv) or CSV file")
    parser.add_argument("--model", default=None, help="model bundle folder (default: the shipped model)")
    parser.add_argument("--out", default=None, help="write the metrics as JSON to this file")
    parser.add_argument("--batch-size", type=int, default=32, help="posters per interpreter call")
    parser.add_argument("--top-k", type=int, default=None, help="most genres per poster (default: the bundle's)")
    parser.add_argument("--num-threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_evaluate(args) -> int:
    """Run `posterq evaluate`: print the per-genre table, write JSON when --out is given; return 0."""
    # Imported here so that `posterq --help` does not load the interpreter and scikit-learn.
    from training.evaluate import evaluate, format_table

    metrics = evaluate(args.data, model=args.model, batch_size=args.batch_size, top_k=args.top_k,
                       num_threads=getattr(args, "num_threads", None),
                       progress=not getattr(args, "no_progress", False))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        log.info("wrote %s", out)
    print(format_table(metrics))
    if args.out:
        print(f"\nmetrics written to {args.out}")
    return 0


def add_train_arguments(parser) -> None:
    """Add the `train` command's options to an argparse parser."""
    parser.add_argument("--data", required=True, help="dataset folder (Kaggle, CCU or labels.csv) or CSV file")
    parser.add_argument("--arch", default="effnet-lite0", choices=("effnet-lite0", "seed"),
                        help="effnet-lite0 (default, ships) or seed (the original project's CNN)")
    parser.add_argument("--out", default=None, help="bundle folder to write (default models/<arch>-posters)")
    parser.add_argument("--work", default=None, help="folder for caches and resumable state (default runs/<out name>)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--input-size", type=height_by_width, default=None, metavar="HxW",
                        help="override the recipe's input size, e.g. 384x256 (faster, less accurate)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop fitting after this long and finish with the weights reached (recorded)")
    parser.add_argument("--restart", action="store_true", help="discard an interrupted run's state and start over")
    parser.add_argument("--version", default="1.0.0", help="version written into the bundle")


def run_train(args) -> int:
    """Run `posterq train`; an interrupted run resumes where it stopped when run again."""
    from training.train import train

    out = args.out or f"models/{args.arch}-posters"
    meta = train(args.data, arch=args.arch, out=out, work=args.work, epochs=args.epochs, input_size=args.input_size,
                 max_minutes=args.max_minutes, restart=args.restart, version=args.version)
    metrics = meta["metrics"]
    print(f"\n{meta['name']} {meta['version']} ({meta['variant']}) written to {out} "
          f"in {meta['training']['total_seconds'] / 60:.1f} min "
          f"({meta['training']['seconds'] / 60:.1f} min to the end of fitting)")
    print(f"validation: macro ROC-AUC {metrics['macro_roc_auc']:.4f}, macro AP {metrics['macro_average_precision']:.4f}, "
          f"micro F1 {metrics['micro_f1']:.4f}, samples F1 {metrics['samples_f1']:.4f}")
    return 0


def height_by_width(text: str) -> tuple[int, int]:
    """Parse "576x384" (height x width) for argparse; a bad value is an argparse error naming it."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 576x384, got {text!r}") from None
    if height < 32 or width < 32:
        raise argparse.ArgumentTypeError(f"input size {text!r} is too small (32x32 at least)")
    return height, width
