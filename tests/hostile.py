"""A generated corpus of hostile poster files: small files that decode huge, odd modes, lies, junk.

Each kind names the outcomes it may get: "ok" (a real image, however odd) or a stable error code.
Large images are one flat colour, so they compress to a few kilobytes and build in seconds.
"""

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image
from samples import corrupt_png, png_bomb, png_chunk, poster_bytes


@dataclass(frozen=True)
class Hostile:
    """One hostile file: its bytes, a file suffix and the outcomes it may get."""

    data: bytes
    suffix: str
    outcomes: frozenset


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _flat(mode: str, size: tuple[int, int], value) -> Image.Image:
    return Image.new(mode, size, value)


def _png_lying_header(width: int, height: int) -> bytes:
    # An IHDR that claims width x height RGB, then one small IDAT: Pillow allocates by the header.
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + idat + png_chunk(b"IEND", b"")


def _png_text_bomb() -> bytes:
    # A compressed text chunk of 64 MB of zeros: Pillow caps text chunks, the image itself is tiny.
    base = _save(_flat("RGB", (40, 60), (10, 20, 30)), "PNG")
    ztxt = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * (64 << 20), 9))
    return base[:33] + ztxt + base[33:]


def _exif_rotated_jpeg(size: tuple[int, int]) -> bytes:
    image = _flat("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 270 to be upright
    return _save(image, "JPEG", quality=50, exif=exif.tobytes())


def _bmp_lying_header(width: int, height: int) -> bytes:
    data = _save(_flat("RGB", (4, 4), (1, 2, 3)), "BMP")
    return data[:18] + struct.pack("<ii", width, height) + data[26:]


def _animated_gif(frames: int) -> bytes:
    images = [_flat("P", (40, 60), i % 256) for i in range(frames)]
    return _save(images[0], "GIF", save_all=True, append_images=images[1:])


def hostile_files() -> dict[str, Hostile]:
    """Every hostile kind by name (at least 30)."""
    ok, too_large = frozenset({"ok"}), frozenset({"too_large"})
    unreadable = frozenset({"corrupt", "truncated", "not_an_image"})
    jpeg = poster_bytes(3, "JPEG", (200, 300))
    png = poster_bytes(4, "PNG", (200, 300))
    gradient16 = Image.fromarray((np.arange(6300 * 6300, dtype=np.uint32) % 65536).astype(np.uint16)
                                 .reshape(6300, 6300))
    kinds = {
        "empty": Hostile(b"", ".jpg", frozenset({"empty"})),
        "one_byte": Hostile(b"\xff", ".jpg", unreadable),
        "text": Hostile(b"Casablanca (1942)\nDrama, Romance\n", ".txt", frozenset({"not_an_image"})),
        "html": Hostile(b"<!doctype html><title>poster</title><img src=x>", ".html",
                        frozenset({"not_an_image"})),
        "svg": Hostile(b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"/>', ".svg",
                       frozenset({"not_an_image"})),
        "pdf": Hostile(b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", ".pdf",
                       frozenset({"not_an_image"})),
        "zip": Hostile(b"PK\x05\x06" + b"\0" * 18, ".zip", frozenset({"not_an_image"})),
        "random_with_jpeg_magic": Hostile(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40, ".jpg", unreadable),
        "truncated_jpeg": Hostile(jpeg[: len(jpeg) // 2], ".jpg", frozenset({"truncated", "ok"})),
        "truncated_png": Hostile(png[: len(png) // 2], ".png", frozenset({"truncated", "corrupt"})),
        "corrupt_png": Hostile(corrupt_png(), ".png", frozenset({"corrupt"})),
        "png_pixel_bomb": Hostile(png_bomb(), ".png", too_large),
        "png_lying_header_huge": Hostile(_png_lying_header(30000, 30000), ".png", too_large),
        "png_lying_header_small_data": Hostile(_png_lying_header(3000, 3000), ".png", unreadable | ok),
        "png_text_chunk_bomb": Hostile(_png_text_bomb(), ".png", ok | unreadable),
        "png_16bit_grey_6300": Hostile(_save(gradient16, "PNG"), ".png", ok),
        "png_16bit_grey_flat_6300": Hostile(_save(_flat("I;16", (6300, 6300), 40000), "PNG"), ".png", ok),
        "tiff_float_6300": Hostile(_save(_flat("F", (6300, 6300), 0.5), "TIFF", compression="tiff_deflate"),
                                   ".tif", too_large),
        "tiff_float_4000": Hostile(_save(_flat("F", (4000, 4000), 0.5), "TIFF", compression="tiff_deflate"),
                                   ".tif", ok),
        "tiff_int32_4000": Hostile(_save(_flat("I", (4000, 4000), 70000), "TIFF", compression="tiff_deflate"),
                                   ".tif", ok),
        "tiff_rgb_lzw_6500": Hostile(_save(_flat("RGB", (6500, 6500), (9, 9, 9)), "TIFF",
                                           compression="tiff_lzw"), ".tif", too_large),
        "png_rgba_6000": Hostile(_save(_flat("RGBA", (6000, 6000), (0, 0, 0, 0)), "PNG"), ".png", too_large),
        "png_rgba_4800": Hostile(_save(_flat("RGBA", (4800, 4800), (50, 60, 70, 128)), "PNG"), ".png", ok),
        "png_palette_transparent_4800": Hostile(_save(_flat("P", (4800, 4800), 3), "PNG", transparency=3),
                                                ".png", ok),
        "png_1bit_6300": Hostile(_save(_flat("1", (6300, 6300), 1), "PNG"), ".png", ok),
        "png_la_4800": Hostile(_save(_flat("LA", (4800, 4800), (90, 200)), "PNG"), ".png", ok),
        "png_extreme_aspect": Hostile(_save(_flat("RGB", (40000, 1), (1, 2, 3)), "PNG"), ".png", ok),
        "png_one_pixel": Hostile(_save(_flat("RGB", (1, 1), (1, 2, 3)), "PNG"), ".png", ok),
        "jpeg_7000x5000": Hostile(_save(_flat("RGB", (7000, 5000), (10, 100, 10)), "JPEG", quality=30),
                                  ".jpg", ok),
        "jpeg_progressive_6200": Hostile(_save(_flat("RGB", (6200, 6200), (10, 10, 100)), "JPEG", quality=30,
                                               progressive=True), ".jpg", ok),
        "jpeg_cmyk_6000": Hostile(_save(_flat("CMYK", (6000, 6000), (0, 50, 100, 0)), "JPEG", quality=30),
                                  ".jpg", ok | too_large),
        "jpeg_exif_rotated_6000x4000": Hostile(_exif_rotated_jpeg((6000, 4000)), ".jpg", ok),
        "jpeg_bad_exif": Hostile(jpeg[:2] + b"\xff\xe1\x00\x10Exif\0\0MM\0*\0\0\0\xff" + jpeg[2:], ".jpg",
                                 ok | unreadable),
        "bmp_lying_header": Hostile(_bmp_lying_header(6000, 6000), ".bmp", too_large | unreadable),
        "gif_1000_frames": Hostile(_animated_gif(1000), ".gif", ok),
        "webp_3000": Hostile(_save(_flat("RGB", (3000, 3000), (5, 5, 5)), "WEBP", quality=10), ".webp", ok),
        "ico_unsupported": Hostile(_save(_flat("RGB", (32, 32), (1, 1, 1)), "ICO"), ".ico",
                                   frozenset({"unsupported_format"})),
    }
    return kinds
