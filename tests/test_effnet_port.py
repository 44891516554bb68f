"""The EfficientNet-Lite0 port: ImageNet weights in Keras must see a poster as a poster."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from posterq.imaging import preprocess

pytestmark = pytest.mark.slow


def _poster(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (300, 450), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 60, 280, 330], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw.text((30, 10), "THE MOVIE", fill=(255, 255, 255), font=ImageFont.load_default(size=36))
    for line in range(6):
        draw.text((20, 345 + line * 16), "STARRING SOMEONE FAMOUS AND ANOTHER", fill=(255, 255, 255),
                  font=ImageFont.load_default(size=14))
    return image


def test_imagenet_head_calls_generated_posters_poster_things():
    from posterq.training.effnet_port import IMAGENET_POSTER_CLASSES, imagenet_classifier

    model = imagenet_classifier((224, 224))
    batch = np.stack([preprocess(_poster(seed), (224, 224)) for seed in range(6)])
    probabilities = model.predict(batch, verbose=0)
    top = probabilities.argmax(axis=1)
    # A wrong transpose or padding gives near-uniform, scattered classes instead.
    assert np.mean([label in IMAGENET_POSTER_CLASSES for label in top]) >= 5 / 6
    assert probabilities.max(axis=1).mean() > 0.15


def test_split_network_equals_the_whole():
    import keras

    from posterq.training.architectures import effnet_lite0_part
    from posterq.training.effnet_port import pretrained_backbone
    from posterq.training.effnet_train import split_models

    size = (64, 48)
    lower, upper, state = split_models(size, cut=10)
    whole = pretrained_backbone(size, state)
    features = keras.Input(lower.outputs[0].shape[1:])
    top = keras.Model(features, effnet_lite0_part(features, 11, 15))
    for layer in top.layers:
        if layer.weights:
            layer.set_weights(upper.get_layer(layer.name).get_weights())
    batch = np.stack([preprocess(_poster(seed), size) for seed in range(2)])
    np.testing.assert_allclose(top.predict(lower.predict(batch, verbose=0), verbose=0),
                               whole.predict(batch, verbose=0), atol=1e-4)


def test_assembled_network_equals_lower_then_upper_with_every_tap():
    """The shipped image-to-genres model must compute what training fitted on cached lower outputs."""
    from posterq.training.effnet_train import assemble, split_models
    from posterq.training.train import RECIPES

    size, taps = (64, 48), RECIPES["effnet-lite0"].taps
    lower, upper, state = split_models(size, cut=10, tap_blocks=taps)
    head = upper.get_layer("genres")
    # 1280 head features plus the pooled taps: blocks 4, 10, 11-14 and 15.
    assert taps == (4, 10, 11, 12, 13, 14, 15)
    assert head.kernel.shape[0] == 1280 + 40 + 112 + 4 * 192 + 320
    # A random head, so that every tap's features move the scores.
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(0, 0.05, head.kernel.shape).astype(np.float32),
                      np.zeros(head.bias.shape, np.float32)])
    whole = assemble(size, upper, state, taps)
    batch = np.stack([preprocess(_poster(seed), size) for seed in range(3)])
    split_scores = upper.predict(lower.predict(batch, verbose=0), verbose=0)
    np.testing.assert_allclose(whole.predict(batch, verbose=0), split_scores, atol=1e-5)
    assert split_scores.std() > 1e-3  # the comparison is not between two constants
