"""Fine-tune EfficientNet-Lite0 on posters, cheaply: cache the frozen lower blocks, train the upper ones.

On a 2-core CPU a full forward and backward pass over every poster each epoch costs too much.
Blocks 0..CUT stay frozen at their ImageNet weights, so their activations are computed once per
poster (and once for its mirror image, the one augmentation) and cached; training then runs only
blocks CUT+1..15, the 1280-channel head conv and the genre head. Batch-norm statistics stay
frozen, as is usual when fine-tuning on a few thousand images.
"""

import json
import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from posterq.training.architectures import effnet_lite0_part, genre_head
from posterq.training.callbacks import fit_verbosity
from posterq.training.effnet_port import load_imagenet_weights, weights_file
from posterq.training.metrics import evaluate_scores
from posterq.training.torch_legacy import load_state_dict

log = logging.getLogger(__name__)


def split_models(input_size, cut: int, tap_blocks=()):
    """Return (lower, upper, state): the frozen lower part, the trainable upper part, the ImageNet weights.

    The lower part outputs the cut block's activations and, when taps lie below the cut, their
    pooled outputs (concatenated in block order); the upper part takes both.
    """
    state = load_state_dict(weights_file())
    image = keras.Input((*input_size, 3), name="image")
    taps = {}
    outputs = [effnet_lite0_part(image, 0, cut, stem=True, taps=taps, tap_blocks=tap_blocks)]
    below = [index for index in sorted(taps) if index < cut]
    if below:
        pooled = [layers.GlobalAveragePooling2D(name=f"pool_blocks_{index}")(taps[index]) for index in below]
        outputs.append(layers.Concatenate(name="lower_pooled")(pooled) if len(pooled) > 1 else pooled[0])
    lower = keras.Model(image, outputs, name="lower")
    load_imagenet_weights(lower, state)
    inputs = [keras.Input(outputs[0].shape[1:], name="features")]
    upper_taps = {cut: inputs[0]} if cut in tap_blocks else {}
    if below:
        # One vector standing for every tap below the cut: the head concatenates in block order.
        inputs.append(keras.Input(outputs[1].shape[1:], name="lower_pooled"))
        upper_taps[below[0]] = inputs[1]
    top = effnet_lite0_part(inputs[0], cut + 1, 15, taps=upper_taps, tap_blocks=tap_blocks)
    upper = keras.Model(inputs, genre_head(top, upper_taps), name="upper")
    load_imagenet_weights(upper, state)
    for layer in upper.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False  # frozen statistics: in inference mode while training
    return lower, upper, state


def lower_activations(lower: keras.Model, pixels: np.ndarray, flip: bool = False, batch: int = 64,
                      desc: str = "features") -> list[np.ndarray]:
    """Run the frozen lower part over uint8 posters (mirrored if flip): float16 arrays, one per output."""
    run = tf.function(lambda x: lower(x, training=False))
    parts = []
    for start in tqdm(range(0, len(pixels), batch), desc=desc, unit="batch"):
        chunk = pixels[start:start + batch].astype(np.float32)
        if flip:
            chunk = chunk[:, :, ::-1, :]
        outputs = run(chunk)
        parts.append([out.numpy().astype(np.float16)
                      for out in (outputs if isinstance(outputs, list) else [outputs])])
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def lower_outputs(lower: keras.Model, train_pixels: np.ndarray, val_pixels: np.ndarray) -> dict[str, list]:
    """The frozen lower part's outputs for the training posters, their mirror images and the validation
    posters."""
    return {"train": lower_activations(lower, train_pixels, desc="train features"),
            "mirror": lower_activations(lower, train_pixels, flip=True, desc="mirrored features"),
            "val": lower_activations(lower, val_pixels, desc="val features")}


class MirroredBatches(keras.utils.PyDataset):
    """Training batches drawn from the cached lower-part outputs of each poster or of its mirror image.

    `plain` and `mirrored` are lists of arrays, one per input of the upper part.
    """

    def __init__(self, plain: list, mirrored: list, labels, batch_size, seed):
        super().__init__()
        self.plain, self.mirrored, self.labels = plain, mirrored, labels.astype(np.float32)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.labels) / self.batch_size))

    def __getitem__(self, index):
        batch = self.order[index * self.batch_size:(index + 1) * self.batch_size]  # example indices
        flips = self.flips[batch]
        inputs = tuple(
            np.where(flips.reshape(-1, *[1] * (plain.ndim - 1)), mirrored[batch],
                     plain[batch]).astype(np.float32)
            for plain, mirrored in zip(self.plain, self.mirrored, strict=True))
        return inputs, self.labels[batch]

    def on_epoch_end(self):
        """Reshuffle and redraw which posters are mirrored."""
        self.order = self.rng.permutation(len(self.labels))
        self.flips = self.rng.random(len(self.labels)) < 0.5


class ValidationMetrics(keras.callbacks.Callback):
    """Score the validation split each epoch with the project's metrics (genres with 5+ positives).

    Keras' own multi-label AUC averages all 24 genres, one of which has a single validation
    poster; choosing epochs on that would chase noise.
    """

    def __init__(self, inputs: list, labels):
        super().__init__()
        self.inputs, self.labels = [part.astype(np.float32) for part in inputs], labels

    def measure(self) -> dict:
        """Return the model's validation macro ROC-AUC and AP now."""
        scores = self.model.predict(self.inputs, batch_size=128, verbose=0)
        metrics = evaluate_scores(self.labels, scores, (scores >= 0.5).astype(np.uint8))
        # None: too few positives
        auc, ap = metrics["macro_roc_auc"] or 0.0, metrics["macro_average_precision"] or 0.0
        return {"val_macro_roc_auc": auc, "val_macro_ap": ap, "val_selection": auc + ap}

    def on_epoch_end(self, epoch, logs=None):
        """Add the metrics to the epoch's logs (read by the checkpoint and the CSV log after it)."""
        logs.update(self.measure())


def linear_probe(upper: keras.Model, train_inputs: list, mirror_inputs: list, train_labels,
                 strength: float) -> None:
    """Fit the genre head alone on the frozen features (L2 logistic regression), in place.

    Fine-tuning from a fitted head rather than a random one keeps the large early gradients
    from wrecking the pretrained blocks (LP-FT, Kumar et al. 2022). Plain, unweighted logistic
    regression ranked posters better on validation than class-weighted (bench notes in the card).
    """
    head_input = upper.get_layer("genres").input  # the pooled features, after dropout (a no-op here)
    pooled = keras.Model(upper.inputs, head_input)
    features = np.concatenate([pooled.predict([p.astype(np.float32) for p in part], batch_size=128, verbose=0)
                               for part in (train_inputs, mirror_inputs)])
    labels = np.concatenate([train_labels, train_labels])
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    scaled = (features - mean) / std
    kernel = np.zeros((features.shape[1], labels.shape[1]), dtype=np.float32)
    bias = np.zeros(labels.shape[1], dtype=np.float32)
    for genre in tqdm(range(labels.shape[1]), desc="linear probe", unit="genre"):
        if labels[:, genre].min() == labels[:, genre].max():
            bias[genre] = -10.0 if labels[:, genre].max() == 0 else 10.0
            continue
        probe = LogisticRegression(C=strength, max_iter=1000).fit(scaled, labels[:, genre])
        # Fold the standardization into the dense layer: w' = w / std, b' = b - sum(w * mean / std).
        kernel[:, genre] = probe.coef_[0] / std
        bias[genre] = probe.intercept_[0] - np.sum(probe.coef_[0] * mean / std)
    upper.get_layer("genres").set_weights([kernel, bias])


def positive_weighted_bce(train_labels, cap: float = 10.0):
    """Binary cross-entropy whose positive terms weigh sqrt(negatives / positives) per genre (1 to cap).

    Macro ROC-AUC and AP count Musical (17 validation posters) as much as Drama (616); plain
    cross-entropy lets the common genres drive fine-tuning. The square root keeps the rare
    genres' few posters from being overfitted; fine-tuning blocks 11-15 under the plain head, it
    raised validation macro ROC-AUC by 0.004.
    """
    rate = np.clip(np.asarray(train_labels, dtype=np.float64).mean(axis=0), 1e-3, None)
    weights = tf.constant(np.clip(np.sqrt((1 - rate) / rate), 1.0, cap), dtype=tf.float32)

    def loss(y_true, y_pred):
        y_pred = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
        terms = weights * y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred)
        return -tf.reduce_mean(terms, axis=-1)

    return loss


def fit_upper(upper, train_inputs: list, mirror_inputs: list, train_labels, val_inputs: list, val_labels,
              out: Path, epochs: int, batch_size: int, learning_rate: float, seed: int, probe_strength: float,
              budget=None):
    """Linear probe, then fine-tune the upper part with resumable epochs; keep the best epoch.

    The probe alone is a candidate too: an epoch is kept only if it beats it on validation.
    A finished fit leaves `fit.done` in `out`; a rerun (say, after export failed) reuses its weights.
    """
    best, done = out / "best_weights.npz", out / "fit.done"
    if done.exists() and best.exists():
        log.info("fit already finished in %s; reusing its best weights", out)
        _load_weights(upper, best)
        return
    validation = ValidationMetrics(val_inputs, val_labels)
    if not (out / "backup").exists():
        linear_probe(upper, train_inputs, mirror_inputs, train_labels, probe_strength)
        validation.set_model(upper)
        probed = validation.measure()
        log.info("linear probe: %s", probed)
        (out / "probe.json").write_text(json.dumps(probed))
        _save_weights(upper, best)
        best.with_suffix(".json").unlink(missing_ok=True)  # a new selection starts from the probe
    probed = json.loads((out / "probe.json").read_text())
    steps = max(1, epochs * int(np.ceil(len(train_labels) / batch_size)))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    upper.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
                  loss=positive_weighted_bce(train_labels))
    callbacks = [
        validation,
        # Resume from the last finished epoch (weights and optimizer) after an interruption.
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        KeepBest(best, "val_selection", probed["val_selection"]),
        *([budget] if budget else []),
    ]
    batches = MirroredBatches(train_inputs, mirror_inputs, train_labels, batch_size, seed)
    upper.fit(batches, epochs=epochs, callbacks=callbacks, verbose=fit_verbosity())
    _load_weights(upper, best)
    done.touch()


class KeepBest(keras.callbacks.Callback):
    """Save the weights whenever `monitor` beats the best so far (the linear probe's to start with).

    The best value is saved beside the weights, so a resumed fit does not let a worse epoch
    overwrite a better one saved before the interruption.
    """

    def __init__(self, path: Path, monitor: str, best: float):
        super().__init__()
        self.path, self.monitor = path, monitor
        self.record = path.with_suffix(".json")
        self.best = json.loads(self.record.read_text())[monitor] if self.record.exists() else best

    def on_epoch_end(self, epoch, logs=None):
        """Save the weights if this epoch is the best."""
        if logs[self.monitor] > self.best:
            self.best = logs[self.monitor]
            _save_weights(self.model, self.path)
            self.record.write_text(json.dumps({self.monitor: self.best}))
            log.info("epoch %d is the best so far (%s %.4f)", epoch + 1, self.monitor, self.best)


def _save_weights(model: keras.Model, path: Path) -> None:
    # Plain arrays, not a Keras checkpoint: they load whether or not an optimizer has been built.
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, *model.get_weights())
    partial.replace(path)


def _load_weights(model: keras.Model, path: Path) -> None:
    with np.load(path) as stored:
        model.set_weights([stored[f"arr_{index}"] for index in range(len(stored.files))])


def assemble(input_size, upper: keras.Model, state: dict, tap_blocks=()) -> keras.Model:
    """The whole network, image to genres: ImageNet lower blocks plus the fine-tuned upper ones."""
    image = keras.Input((*input_size, 3), name="image")
    taps = {}
    top = effnet_lite0_part(image, 0, 15, stem=True, taps=taps, tap_blocks=tap_blocks)
    model = keras.Model(image, genre_head(top, taps), name="effnet_lite0_posters")
    load_imagenet_weights(model, state)
    for layer in upper.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model
