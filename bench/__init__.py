"""posterq's benchmarks (not tests): modules that measure, print and save figures with what produced them.

Run them from the repository's root as modules, for example

    .venv/bin/python -m bench.all ../shared/datasets/movie-posters/Images [--quick]
    .venv/bin/python -m bench.scale ../shared/datasets/movie-posters/Images --quick

Those that start the service need Redis at POSTERQ_REDIS_URL (else the service's default) and
use private key prefixes and queues. Figures go to bench/results/; docs/benchmarks.md reads them.
"""
