"""Keras callbacks of the training pipeline."""

import sys
import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stop fitting once a time budget is spent; the run records how far it got."""

    def __init__(self, minutes: float | None):
        super().__init__()
        self.seconds = None if minutes is None else minutes * 60
        self.started = time.monotonic()
        self.stopped_at = None
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        """Count the step and stop the model when the budget is gone."""
        self.steps += 1
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            self.model.stop_training = True
            self.stopped_at = self.stopped_at or self.steps


def fit_verbosity() -> int:
    """Keras' per-step progress bar on a terminal; one line per epoch in a log file."""
    return 1 if sys.stdout.isatty() else 2
