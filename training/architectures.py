"""Keras definitions of the two architectures: the original project's seed CNN and EfficientNet-Lite0."""

import keras
from keras import layers

from posterq.genres import GENRES

SEED_INPUT = (350, 350)
# (kernel, stride, expansion, output channels, repeats) of EfficientNet-B0/Lite0's seven stages.
EFFNET_LITE0_STAGES = (
    (3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1),
)
BN_EPSILON = 1e-3  # the port's batch norms were trained with TensorFlow's epsilon


def seed_network(input_size=SEED_INPUT, n_genres: int = len(GENRES)) -> keras.Model:
    """The original project's CNN, exactly: four conv blocks, two dense blocks, 24 sigmoids."""
    inputs = keras.Input((*input_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)  # the original divided pixels by 255
    for filters, dropout, pool in ((16, 0.3, False), (32, 0.3, True), (64, 0.4, True), (128, 0.5, True)):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.BatchNormalization()(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    for _ in range(2):
        x = layers.Dense(128, activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", name="genres")(x)
    return keras.Model(inputs, outputs, name="seed")


def _conv_bn(x, filters, kernel, stride, name, bn_name, activation=True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    return layers.ReLU(6.0)(x) if activation else x


def effnet_lite0_blocks() -> list[tuple[int, int, int, int, int]]:
    """The 16 MBConv blocks as (kernel, stride, expansion, in channels, out channels)."""
    blocks, channels = [], 32
    for kernel, stride, expand, out, repeats in EFFNET_LITE0_STAGES:
        for repeat in range(repeats):
            blocks.append((kernel, stride if repeat == 0 else 1, expand, channels, out))
            channels = out
    return blocks


def effnet_lite0_backbone(input_size) -> keras.Model:
    """EfficientNet-Lite0 up to its 1280-channel head (ReLU6, no squeeze-excite), layers named as the
    port's keys."""
    inputs = keras.Input((*input_size, 3), name="image")
    return keras.Model(inputs, effnet_lite0_part(inputs, 0, 15, stem=True), name="effnet_lite0")


def effnet_lite0_part(x, first: int, last: int, stem: bool = False, head: bool = True,
                      taps: dict | None = None, tap_blocks=()):
    """Apply blocks first..last (and the stem before / the 1280 head conv after) to tensor x.

    Cutting the network lets training cache the frozen lower part's activations once and
    fine-tune only the upper part; layer names stay those of the whole network. Outputs of
    the blocks in `tap_blocks` are stored in `taps` (block index -> tensor) when it is given.
    """
    if stem:
        # EfficientNet-Lite's preprocessing: (pixel - 127) / 128.
        x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="normalize")(x)
        x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0")
    for index, (kernel, stride, expand, channels, out) in enumerate(effnet_lite0_blocks()):
        if first <= index <= last:
            x = _mbconv(x, channels, out, kernel, stride, expand, f"blocks_{index}")
            if taps is not None and index in tap_blocks:
                taps[index] = x
    if head and last == 15:
        x = _conv_bn(x, 1280, 1, 1, "conv_head", "bn1")
    return x


def _mbconv(x, channels, out, kernel, stride, expand, name):
    shortcut = x
    if expand != 1:
        x = _conv_bn(x, channels * expand, 1, 1, f"{name}_expand_conv", f"{name}_bn0")
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                               name=f"{name}_depthwise_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn1")(x)
    x = layers.ReLU(6.0)(x)
    x = _conv_bn(x, out, 1, 1, f"{name}_project_conv", f"{name}_bn2", activation=False)
    if stride == 1 and channels == out:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def genre_head(features, taps: dict | None = None, n_genres: int = len(GENRES), dropout: float = 0.3):
    """Pool the head's features and the tapped blocks' outputs, drop out, map to one sigmoid per genre.

    A tap is a block's output (pooled here) or, for a cut network's frozen lower blocks, its
    already pooled vector. Without taps this is the plain EfficientNet head.
    """
    pooled = [layers.GlobalAveragePooling2D(name="pool")(features)]
    for index in sorted(taps or {}):
        tap = taps[index]
        pooled.append(tap if len(tap.shape) == 2
                      else layers.GlobalAveragePooling2D(name=f"pool_blocks_{index}")(tap))
    x = layers.Concatenate(name="pooled")(pooled) if len(pooled) > 1 else pooled[0]
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(n_genres, activation="sigmoid", name="genres")(x)
