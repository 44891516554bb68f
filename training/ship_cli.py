"""`posterq ship`: choose from the front of several training runs and write the shipped bundle(s).

    posterq ship runs/effnet-lite0-posters/384x256 runs/effnet-lite0-posters/480x320 \
        runs/effnet-lite0-posters/576x384 --out models/effnet-lite0-posters \
        --fast-out models/effnet-lite0-posters-fast --version 1.4.0
"""

from posterq.cli import EXIT_OK


def add_arguments(parser) -> None:
    """Add the `ship` command's options to an argparse parser."""
    parser.add_argument("runs", nargs="+", help="work folders of `posterq train` runs (one per input size)")
    parser.add_argument("--out", default="models/effnet-lite0-posters", help="the default bundle's folder")
    parser.add_argument("--fast-out", default=None,
                        help="folder for a second, faster bundle when the front earns one")
    parser.add_argument("--version", default="1.0.0", help="version written into the bundle(s)")
    parser.add_argument("--seed", default="bench/results/seed_network.json",
                        help="the seed network's figures, for the model card's comparison row")


def run(args) -> int:
    """Run `posterq ship`."""
    from posterq.training.front import ship

    summary = ship(args.runs, args.out, args.version, args.fast_out, args.seed)
    for role, written in summary["written"].items():
        print(f"{role}: {written['shipped']} -> {written['bundle']}")
    print("front (fastest first): " + ", ".join(summary["front"]))
    print(summary["cpu_note"])
    return EXIT_OK
