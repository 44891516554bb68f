"""Fine-tune EfficientNet-Lite0 on posters, cheaply: cache the frozen lower blocks, train the upper ones.

On a 2-core CPU a full forward and backward pass over every poster each epoch costs too much.
Blocks 0..CUT stay frozen at their ImageNet weights, so their activations are computed once per
poster (and once for its mirror image, the one augmentation) and cached; training then runs only
blocks CUT+1..15, the 1280-channel head conv and the genre head. Batch-norm statistics stay
frozen, as is usual when fine-tuning on a few thousand images.
"""

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tqdm import tqdm

from training.architectures import effnet_lite0_part, genre_head
from training.effnet_port import load_imagenet_weights, weights_file
from training.losses import WeightedBinaryCrossentropy, positive_weights
from training.torch_legacy import load_state_dict

log = logging.getLogger(__name__)


def split_models(input_size, cut: int):
    """Return (lower, upper, state): the frozen lower part, the trainable upper part, the ImageNet weights."""
    state = load_state_dict(weights_file())
    image = keras.Input((*input_size, 3), name="image")
    lower = keras.Model(image, effnet_lite0_part(image, 0, cut, stem=True), name="lower")
    load_imagenet_weights(lower, state)
    features = keras.Input(lower.output.shape[1:], name="features")
    upper = keras.Model(features, genre_head(effnet_lite0_part(features, cut + 1, 15)), name="upper")
    load_imagenet_weights(upper, state)
    for layer in upper.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False  # frozen statistics: in inference mode while training
    return lower, upper, state


def lower_activations(lower: keras.Model, pixels: np.ndarray, flip: bool = False, batch: int = 64,
                      desc: str = "features") -> np.ndarray:
    """Run the frozen lower part over uint8 posters (mirrored if flip); float16 activations."""
    run = tf.function(lambda x: lower(x, training=False))
    parts = []
    for start in tqdm(range(0, len(pixels), batch), desc=desc, unit="batch"):
        chunk = pixels[start:start + batch].astype(np.float32)
        if flip:
            chunk = chunk[:, :, ::-1, :]
        parts.append(run(chunk).numpy().astype(np.float16))
    return np.concatenate(parts)


class MirroredBatches(keras.utils.PyDataset):
    """Training batches drawn from cached activations of each poster or of its mirror image."""

    def __init__(self, plain, mirrored, labels, batch_size, seed):
        super().__init__()
        self.plain, self.mirrored, self.labels = plain, mirrored, labels.astype(np.float32)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.labels) / self.batch_size))

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        flips = self.flips[rows]
        x = np.where(flips[:, None, None, None], self.mirrored[rows], self.plain[rows]).astype(np.float32)
        return x, self.labels[rows]

    def on_epoch_end(self):
        """Reshuffle and redraw which posters are mirrored."""
        self.order = self.rng.permutation(len(self.labels))
        self.flips = self.rng.random(len(self.labels)) < 0.5


def fit_upper(upper, train_acts, train_mirror, train_labels, val_acts, val_labels, out: Path,
              epochs: int, batch_size: int, learning_rate: float, seed: int, budget=None):
    """Train the upper part with resumable epochs; return the Keras history dict."""
    steps = epochs * int(np.ceil(len(train_labels) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    upper.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=WeightedBinaryCrossentropy(positive_weights(train_labels)),
        metrics=[keras.metrics.AUC(curve="PR", multi_label=True, name="ap"),
                 keras.metrics.AUC(curve="ROC", multi_label=True, name="roc_auc")],
    )
    callbacks = [
        # Resume from the last finished epoch (weights and optimizer) after an interruption.
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.ModelCheckpoint(str(out / "best.weights.h5"), monitor="val_ap", mode="max",
                                        save_best_only=True, save_weights_only=True),
        *([budget] if budget else []),
    ]
    batches = MirroredBatches(train_acts, train_mirror, train_labels, batch_size, seed)
    history = upper.fit(batches, validation_data=(val_acts.astype(np.float32), val_labels.astype(np.float32)),
                        epochs=epochs, callbacks=callbacks, verbose=2)
    upper.load_weights(str(out / "best.weights.h5"))
    return history.history


def assemble(input_size, upper: keras.Model, state: dict) -> keras.Model:
    """The whole network, image to genres: ImageNet lower blocks plus the fine-tuned upper ones."""
    image = keras.Input((*input_size, 3), name="image")
    model = keras.Model(image, genre_head(effnet_lite0_part(image, 0, 15, stem=True)), name="effnet_lite0_posters")
    load_imagenet_weights(model, state)
    for layer in upper.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model
