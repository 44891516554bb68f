"""`posterq evaluate`: score a model bundle on a labelled dataset through the serving runtime.

    posterq evaluate --data DIR [--model BUNDLE] [--out metrics.json] [--batch-size 32] [--top-k K]
"""

import json
import logging
from pathlib import Path

from posterq.cli import EXIT_OK
from posterq.config import BATCH_SIZE

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    """Add the `evaluate` command's options to an argparse parser."""
    parser.add_argument("--data", required=True,
                        help="dataset folder (Kaggle, CCU or labels.csv) or CSV file")
    parser.add_argument("--model", default=None,
                        help="a shipped bundle's name or a bundle folder (default: the shipped default)")
    parser.add_argument("--out", default=None, help="write the metrics as JSON to this file")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"posters per interpreter call (default: {BATCH_SIZE})")
    parser.add_argument("--top-k", type=int, default=None,
                        help="most genres per poster (default: the bundle's)")
    parser.add_argument("--num-threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    """Run `posterq evaluate`: print the per-genre table, write JSON when --out is given."""
    # Imported here so that `posterq --help` does not load the interpreter and scikit-learn.
    from posterq.training.evaluate import evaluate, format_table

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
    return EXIT_OK
