"""Train the original project's network with its own recipe: Adam 1e-3, binary cross-entropy, batch 32."""

from pathlib import Path

import keras
import numpy as np

from posterq.training.architectures import seed_network
from posterq.training.callbacks import fit_verbosity


class PixelBatches(keras.utils.PyDataset):
    """Shuffled batches of uint8 posters as float32, so the whole set never exists in float."""

    def __init__(self, pixels, labels, batch_size, seed):
        super().__init__()
        self.pixels, self.labels, self.batch_size = pixels, labels.astype(np.float32), batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.labels) / self.batch_size))

    def __getitem__(self, index):
        batch = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        return self.pixels[batch].astype(np.float32), self.labels[batch]

    def on_epoch_end(self):
        """Reshuffle."""
        self.order = self.rng.permutation(len(self.labels))


def fit_seed(train_pixels, train_labels, val_pixels, val_labels, out: Path, epochs: int = 5,
             batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0, save_every: int = 20,
             budget=None):
    """Train the seed network exactly as the original project did; resumable every few steps."""
    keras.utils.set_random_seed(seed)
    model = seed_network(train_pixels.shape[1:3])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(curve="PR", multi_label=True, name="ap"),
                           keras.metrics.AUC(curve="ROC", multi_label=True, name="roc_auc")])
    callbacks = [
        # An epoch of the seed network takes long on a CPU: back up every few steps, not per epoch.
        keras.callbacks.BackupAndRestore(str(out / "backup"), save_freq=save_every),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        *([budget] if budget else []),
    ]
    history = model.fit(PixelBatches(train_pixels, train_labels, batch_size, seed),
                        validation_data=PixelBatches(val_pixels, val_labels, 64, seed),
                        epochs=epochs, callbacks=callbacks, verbose=fit_verbosity())
    return model, history.history
