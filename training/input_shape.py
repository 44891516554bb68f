"""Which input shape suits 2:3 posters? Frozen EfficientNet-Lite0 features + a linear head, per shape.

    .venv/bin/python -m posterq.training.input_shape --data ../shared/datasets/movie-posters \
        [--train-subset 2400]

Each candidate shape decodes the posters through posterq's preprocessing, pools the frozen
ImageNet backbone's features, fits one logistic regression per genre on (a subset of) the
training split and scores the validation split. Writes bench/results/input_shape.json (run it from
the repository's root), where the figures of every measurement live.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from posterq.cpu import cpu_facts
from posterq.training.datasets import load_dataset
from posterq.training.effnet_port import pretrained_backbone
from posterq.training.metrics import evaluate_scores
from posterq.training.pixels import poster_pixels
from posterq.training.split import split

SHAPES = [(224, 224), (288, 192), (320, 224)]


def pooled_features(size, pixels, batch=64):
    """Global-average-pooled backbone features of every poster."""
    backbone = pretrained_backbone(size)
    pooled = tf.function(lambda x: tf.reduce_mean(backbone(x, training=False), axis=(1, 2)))
    return np.concatenate([pooled(pixels[i:i + batch].astype(np.float32)).numpy()
                           for i in range(0, len(pixels), batch)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--train-subset", type=int, default=2400)
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--out", default="bench/results/input_shape.json")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    train, val = split(dataset)
    train = train.subset(range(min(args.train_subset, len(train))))
    rows = []
    for size in SHAPES:
        started = time.time()
        parts = []
        for part in (train, val):
            pixels, _ok = poster_pixels([e.path for e in part.examples], size, Path(args.cache))
            parts.append((pooled_features(size, pixels), part.labels()))
        (x_train, y_train), (x_val, y_val) = parts
        scores = np.zeros(y_val.shape, dtype=np.float32)
        for g in range(y_train.shape[1]):
            if y_train[:, g].sum() < 2:
                scores[:, g] = y_train[:, g].mean()
                continue
            model = LogisticRegression(C=0.5, max_iter=2000, class_weight="balanced")
            scores[:, g] = model.fit(x_train, y_train[:, g]).predict_proba(x_val)[:, 1]
        metrics = evaluate_scores(y_val, scores, (scores > 0.5).astype(np.uint8))
        row = {"height": size[0], "width": size[1], "pixels": size[0] * size[1],
               "macro_roc_auc": metrics["macro_roc_auc"],
               "macro_average_precision": metrics["macro_average_precision"],
               "seconds": round(time.time() - started, 1)}
        print(row, flush=True)
        rows.append(row)
    result = {"what": "frozen EfficientNet-Lite0 ImageNet features + logistic regression per genre",
              "train_posters": len(train), "val_posters": len(val),
              "machine": platform.processor() or platform.machine(), "cpu": cpu_facts(),
              "command": "python -m posterq.training.input_shape --data DIR", "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
