"""Image bytes to model input: the one preprocessing function serving and training share."""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from posterq.exceptions import ImageError

# Formats a poster plausibly comes in; anything else Pillow can open is refused by name.
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# A poster is well under a megapixel; 40 MP leaves room for scans and stops decompression bombs.
DEFAULT_MAX_PIXELS = 40_000_000


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes to an upright RGB image, or raise ImageError with a stable code."""
    if not data:
        raise ImageError("the file is empty", "empty")
    try:
        with warnings.catch_warnings():
            # Pillow only warns for images between its limit and twice it; make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in SUPPORTED_FORMATS:
                raise ImageError(f"{image.format} images are not supported", "unsupported_format")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{width}x{height} pixels is over the limit of {max_pixels}", "too_large"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("the file is not an image Pillow can read", "not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(str(exc), "too_large") from None
    except OSError as exc:
        text = str(exc)
        code = "truncated" if "truncated" in text or "broken data stream" in text else "unreadable"
        raise ImageError(f"the image could not be decoded: {text}", code) from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}", "unreadable") from None
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    # Transparent posters are laid on white, as a browser would show them, not on black.
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def preprocess(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to (height, width) and return float32 HxWx3 pixels in [0, 255]."""
    height, width = size
    resized = image.resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def load_input(data: bytes, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes and preprocess them: the whole path from a file to one model input."""
    return preprocess(decode(data, max_pixels), size)
