"""`posterq train`: train a model and export its bundle; an interrupted run resumes.

    posterq train --data DIR [--arch effnet-lite0|seed] [--out models/NAME] [--input-size 576x384]
"""

import argparse

from posterq.cli import EXIT_OK


def add_arguments(parser) -> None:
    """Add the `train` command's options to an argparse parser."""
    parser.add_argument("--data", required=True,
                        help="dataset folder (Kaggle, CCU or labels.csv) or CSV file")
    parser.add_argument("--arch", default="effnet-lite0", choices=("effnet-lite0", "seed"),
                        help="effnet-lite0 (default, ships) or seed (the original project's CNN)")
    parser.add_argument("--out", default=None, help="bundle folder to write (default models/<arch>-posters)")
    parser.add_argument("--work", default=None,
                        help="folder for caches and resumable state (default runs/<out name>)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--input-size", type=height_by_width, default=None, metavar="HxW",
                        help="override the recipe's input size, e.g. 384x256 (faster, less accurate)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop fitting after this long and finish with the weights reached (recorded)")
    parser.add_argument("--restart", action="store_true",
                        help="discard an interrupted run's state and start over")
    parser.add_argument("--version", default="1.0.0", help="version written into the bundle")


def run(args) -> int:
    """Run `posterq train`; an interrupted run resumes where it stopped when run again."""
    from posterq.training.train import train

    out = args.out or f"models/{args.arch}-posters"
    meta = train(args.data, arch=args.arch, out=out, work=args.work, epochs=args.epochs,
                 input_size=args.input_size, max_minutes=args.max_minutes, restart=args.restart,
                 version=args.version)
    metrics = meta["metrics"]
    print(f"\n{meta['name']} {meta['version']} ({meta['variant']}) written to {out} "
          f"in {meta['training']['total_seconds'] / 60:.1f} min "
          f"({meta['training']['seconds'] / 60:.1f} min to the end of fitting)")
    print(f"validation: macro ROC-AUC {metrics['macro_roc_auc']:.4f}, "
          f"macro AP {metrics['macro_average_precision']:.4f}, "
          f"micro F1 {metrics['micro_f1']:.4f}, samples F1 {metrics['samples_f1']:.4f}")
    return EXIT_OK


def height_by_width(text: str) -> tuple[int, int]:
    """Parse "576x384" (height x width) for argparse; a bad value is an argparse error naming it."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 576x384, got {text!r}") from None
    if height < 32 or width < 32:
        raise argparse.ArgumentTypeError(f"input size {text!r} is too small (32x32 at least)")
    return height, width
