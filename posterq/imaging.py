"""Image bytes to model input: the one preprocessing function serving and training share."""

import contextlib
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from posterq.exceptions import ImageError

# Formats a poster plausibly comes in; anything else Pillow can open is refused by name.
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# A poster is well under a megapixel; 40 MP leaves room for scans and stops decompression bombs.
DEFAULT_MAX_PIXELS = 40_000_000


def identify(data: bytes) -> str:
    """The image format named by the bytes' header (no pixels decoded), or ImageError.

    Cheap enough for the API to refuse text or an unsupported format before queueing it; the
    worker still decodes the whole image and may find it truncated or corrupt.
    """
    with _image_errors(), _open(data) as image:
        return image.format


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes to an upright RGB image, or raise ImageError with a stable code."""
    with _image_errors():
        image = _open(data)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"{width}x{height} pixels is over the limit of {max_pixels}", "too_large")
        image.load()
        # Inside the guard: converting an odd mode can fail on malformed data too.
        return _to_rgb(ImageOps.exif_transpose(image))


def _open(data: bytes) -> Image.Image:
    # The header only: Pillow reads pixels when they are first needed.
    if not data:
        raise ImageError("the file is empty", "empty")
    image = Image.open(io.BytesIO(data))
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(f"{image.format} images are not supported", "unsupported_format")
    return image


@contextlib.contextmanager
def _image_errors():
    """Whatever Pillow raises on bad bytes becomes an ImageError with a stable code."""
    try:
        with warnings.catch_warnings():
            # Pillow's other warnings (odd EXIF, palette transparency) are about usable files;
            # where warnings are errors (pytest) they would turn into item errors otherwise.
            warnings.simplefilter("ignore")
            # Pillow only warns for images between its limit and twice it; make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("the file is not an image Pillow can read", "not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(str(exc), "too_large") from None
    except OSError as exc:
        # Bytes in memory cannot fail to be read, so an OSError here is about their content.
        # Pillow spells truncation "image file is truncated" and "Truncated File Read".
        text = str(exc)
        code = "truncated" if "truncated" in text.lower() else "corrupt"
        raise ImageError(f"the image could not be decoded: {text}", code) from None
    except Exception as exc:  # noqa: BLE001
        # Pillow's decoders raise many kinds on malformed data (SyntaxError, struct.error,
        # ValueError, ...); one bad poster must never fail the batch it came in.
        raise ImageError(f"the image could not be decoded: {exc}", "corrupt") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    # Pillow clips 16-bit and float pixels to 255 when converting, turning a 16-bit grayscale
    # scan white; scale them to 8 bits first.
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = _to_8bit(image)
    # Transparent posters are laid on white, as a browser would show them, not on black.
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and pixels.size and pixels.max() <= 1.0:
        pixels = pixels * 255.0  # float images usually hold [0, 1]
    elif image.mode != "F" and pixels.size and (image.mode.startswith("I;16") or pixels.max() > 255):
        pixels = pixels / 257.0  # 16-bit range [0, 65535] onto [0, 255]
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


def preprocess(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to (height, width) and return float32 HxWx3 pixels in [0, 255]."""
    height, width = size
    resized = image.resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def load_input(data: bytes, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes and preprocess them: the whole path from a file to one model input."""
    return preprocess(decode(data, max_pixels), size)
