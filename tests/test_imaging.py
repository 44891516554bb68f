"""posterq.imaging: every bad file gets its stable code; every good one becomes upright RGB."""

import numpy as np
import pytest
from PIL import Image
from samples import encode, make_poster, png_bomb, poster_bytes

from posterq.exceptions import ImageError
from posterq.imaging import decode, load_input, preprocess


@pytest.mark.parametrize("kind", ["empty", "truncated_jpeg", "text", "unsupported", "bomb", "corrupt_png"])
def test_bad_file_gets_its_code(bad_files, kind):
    bad = bad_files[kind]
    with pytest.raises(ImageError) as caught:
        decode(bad.data)
    assert caught.value.code == bad.code
    assert caught.value.message


def test_truncated_png_is_truncated():
    data = poster_bytes(3, "PNG", (80, 120))
    with pytest.raises(ImageError) as caught:
        decode(data[: len(data) // 2])
    assert caught.value.code == "truncated"


def test_over_the_pixel_limit_is_too_large():
    # Under Pillow's own bomb limit but over ours: our limit must apply.
    with pytest.raises(ImageError) as caught:
        decode(png_bomb(7000, 7000))
    assert caught.value.code == "too_large"
    with pytest.raises(ImageError):
        decode(poster_bytes(0, "PNG", (60, 90)), max_pixels=60 * 90 - 1)


@pytest.mark.parametrize("mode, fmt", [("RGBA", "PNG"), ("P", "PNG"), ("L", "JPEG"), ("CMYK", "JPEG"),
                                       ("LA", "PNG"), ("1", "PNG"), ("RGB", "WEBP"), ("RGB", "GIF")])
def test_modes_become_rgb(mode, fmt):
    image = decode(encode(make_poster(4, (30, 40), mode), fmt))
    assert image.mode == "RGB" and image.size == (30, 40)


def test_transparency_is_laid_on_white():
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert np.asarray(decode(encode(clear, "PNG"))).min() == 255


def test_16_bit_grayscale_keeps_its_brightness():
    half = Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16))  # 32896 / 257 = 128
    pixels = np.asarray(decode(encode(half, "PNG")))
    assert pixels.shape == (8, 8, 3) and np.all(pixels == 128)


def test_exif_rotated_image_is_upright():
    # Stored landscape with a red left half; orientation 6 means "rotate 90 degrees clockwise".
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = decode(encode(stored, "JPEG", exif=exif, quality=95))
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[5, 10], np.asarray(upright)[35, 10]
    assert top[0] > 200 and top[2] < 60  # the red half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_preprocess_shape_dtype_range():
    pixels = preprocess(make_poster(5, (61, 97)), (48, 32))
    assert pixels.shape == (48, 32, 3) and pixels.dtype == np.float32
    assert 0.0 <= pixels.min() and pixels.max() <= 255.0 and pixels.max() > 1.0


def test_load_input_is_decode_then_preprocess():
    data = poster_bytes(6, "JPEG")
    assert np.array_equal(load_input(data, (48, 32)), preprocess(decode(data), (48, 32)))


def test_pillow_bomb_warning_zone_is_too_large():
    # Between Pillow's limit and twice it Pillow only warns; that must still refuse the file.
    with pytest.raises(ImageError) as caught:
        decode(png_bomb(10000, 10000), max_pixels=10**9)
    assert caught.value.code == "too_large"


def test_palette_transparency_in_bytes_is_usable():
    # Pillow warns about this kind of file; where warnings are errors it must still decode.
    image = Image.new("P", (8, 8))
    image.putpalette([0, 0, 0, 255, 0, 0] * 128)
    assert decode(encode(image, "PNG", transparency=bytes([0, 255]))).mode == "RGB"
