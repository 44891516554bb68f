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
# Bytes one decoded image may take in memory, whatever its file size: a 92 KB PNG can hold
# 6300x6300 16-bit pixels. Pillow keeps most modes at 4 bytes a pixel, so this allows 24 MP of
# colour and 40 MP of greyscale; a JPEG over it is decoded at 1/2, 1/4 or 1/8 scale instead
# (libjpeg scales while decoding), anything else is refused as too_large. With the copies made
# on the way to model input, what one decode adds to a worker stays bounded by it
# (tests/service/test_hostile_files.py holds the bound).
MAX_DECODE_BYTES = 96 * 1024 * 1024
# Bytes a pixel takes once loaded and made 8-bit (P and 1-bit images become RGB(A) and L).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Rows of a 16-bit or float image made 8-bit at a time: a whole 40 MP image as float64 is 320 MB.
_CHUNK_PIXELS = 1 << 20
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
            7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def identify(data: bytes) -> str:
    """The image format named by the bytes' header (no pixels decoded), or ImageError.

    Cheap enough for the API to refuse text or an unsupported format before queueing it; the
    worker still decodes the whole image and may find it truncated or corrupt.
    """
    with _image_errors(), _open(data) as image:
        return image.format


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, size: tuple[int, int] | None = None,
           ) -> Image.Image:
    """Decode image bytes to an upright RGB image, or raise ImageError with a stable code.

    With `size` (the model input, height x width), an image at least twice as large on its short
    side is box-reduced by a whole factor first, so the copies on the way to RGB stay small.
    """
    with _image_errors():
        image = _open(data)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"{width}x{height} pixels is over the limit of {max_pixels}", "too_large")
        _fit_memory(image)
        image.load()
        factor = min(image.size) // (2 * max(size)) if size else 0
        # Inside the guard: converting an odd mode can fail on malformed data too.
        if factor < 2:
            return _to_rgb(ImageOps.exif_transpose(image))  # every poster of a usual size
        orientation = image.getexif().get(0x0112)  # read before reduce() drops the metadata
        small = _eight_bit(image).reduce(factor)
        del image
        return _to_rgb(small.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else small)


def _fit_memory(image: Image.Image) -> None:
    # Before any pixel is decoded: a JPEG too big for MAX_DECODE_BYTES is decoded scaled down.
    width, height = image.size
    per_pixel = _BYTES_PER_PIXEL.get(image.mode, 4)
    if width * height * per_pixel <= MAX_DECODE_BYTES:
        return
    if image.format in ("JPEG", "MPO"):
        for scale in (2, 4, 8):
            if width * height * per_pixel <= MAX_DECODE_BYTES * scale * scale:
                image.draft(None, (-(-width // scale), -(-height // scale)))
                if image.size[0] * image.size[1] * per_pixel <= MAX_DECODE_BYTES:
                    return
                break
    needed = width * height * per_pixel >> 20
    raise ImageError(f"{width}x{height} {image.mode} pixels would take {needed} MB to "
                     f"decode, over the limit of {MAX_DECODE_BYTES >> 20} MB", "too_large")


def _eight_bit(image: Image.Image) -> Image.Image:
    # A mode reduce() averages correctly: palette indices and 1-bit pixels cannot be averaged.
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return _to_8bit(image)
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image
    transparent = image.mode == "PA" or (image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA" if transparent else "RGB")


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
    highest = image.getextrema()[1]
    width, height = image.size
    out = np.empty((height, width), dtype=np.uint8)
    band = max(1, _CHUNK_PIXELS // width)  # pixel lines per band
    for top in range(0, height, band):  # a band at a time: bounded memory on a 40 MP image
        pixels = np.asarray(image.crop((0, top, width, min(height, top + band))), dtype=np.float64)
        if image.mode == "F" and highest <= 1.0:
            pixels = pixels * 255.0  # float images usually hold [0, 1]
        elif image.mode != "F" and (image.mode.startswith("I;16") or highest > 255):
            pixels = pixels / 257.0  # 16-bit range [0, 65535] onto [0, 255]
        out[top:top + band] = np.clip(np.round(pixels), 0, 255)
    return Image.fromarray(out)


def preprocess(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to (height, width) and return float32 HxWx3 pixels in [0, 255]."""
    height, width = size
    resized = image.resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def load_input(data: bytes, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes and preprocess them: the whole path from a file to one model input."""
    return preprocess(decode(data, max_pixels, size), size)
