"""Losses for imbalanced multi-label training."""

import keras
import numpy as np
from keras import ops


def positive_weights(labels: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """Per-genre weight of a positive: sqrt(negatives / positives), between 1 and cap.

    Drama is on half the posters and Western on a few dozen; without weights the rare genres'
    scores collapse towards zero. The square root keeps rare genres from dominating the loss.
    """
    positives = labels.sum(axis=0).astype(np.float64)
    negatives = len(labels) - positives
    return np.clip(np.sqrt(negatives / np.maximum(positives, 1.0)), 1.0, cap).astype(np.float32)


@keras.saving.register_keras_serializable(package="posterq")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy whose positive terms are weighted per genre."""

    def __init__(self, weights, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weights = [float(w) for w in weights]

    def call(self, y_true, y_pred):
        """Mean over genres of the weighted binary cross-entropy."""
        y_pred = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        y_true = ops.cast(y_true, y_pred.dtype)
        weights = ops.convert_to_tensor(self.weights, dtype=y_pred.dtype)
        terms = weights * y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred)
        return -ops.mean(terms, axis=-1)

    def get_config(self):
        """Serializable config (the weights travel with the model)."""
        return {**super().get_config(), "weights": self.weights}
