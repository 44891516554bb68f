"""Export a Keras genre model to TFLite (float32, float16, int8) and compare the variants properly."""

import logging
import time

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)
VARIANTS = ("float32", "float16", "int8-dynamic", "int8-full")


def to_tflite(model, variant: str, calibration: np.ndarray | None = None) -> bytes:
    """Convert a Keras model taking (N, H, W, 3) float pixels to a TFLite flatbuffer of one variant."""
    # from_keras_model freezes the weights into constants; converting a concrete function with the
    # model as trackable kept them as resource variables that LiteRT read as NaN.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8-dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    elif variant == "int8-full":
        if calibration is None:
            raise ValueError("full-integer quantization needs calibration posters")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([poster[None].astype(np.float32)]
                                                    for poster in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Keep float input and output so the runtime and the bundle contract stay the same.
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    elif variant != "float32":
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    return converter.convert()


def agreement(reference_scores, scores, reference_labels, labels) -> dict:
    """How far a variant is from the reference: largest score difference, share of posters whose labels
    agree."""
    same = np.all(np.asarray(reference_labels) == np.asarray(labels), axis=1)
    return {"max_abs_score_diff": float(np.max(np.abs(reference_scores - scores))),
            "mean_abs_score_diff": float(np.mean(np.abs(reference_scores - scores))),
            "labels_agree": float(same.mean())}


def milliseconds_per_poster(classifier, posters: np.ndarray, repeats: int = 30) -> float:
    """Median milliseconds of one single-poster invoke (the classifier's threads decide the cores)."""
    classifier.predict(posters[:1])  # warm-up: allocation and first-run costs
    times = []
    for index in range(repeats):
        poster = posters[index % len(posters)][None]
        started = time.perf_counter()
        classifier.predict(poster)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)
