"""Training pipeline: the only package that imports TensorFlow.

Only the modules that build, train or export models import it. `posterq evaluate` (evaluate,
evaluate_cli, datasets, metrics, exceptions) runs without it, with the `eval` extra
(scikit-learn, pandas) on top of the runtime: tests/test_cli_extras.py holds that.
"""
