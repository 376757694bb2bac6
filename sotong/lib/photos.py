"""Checking a citizen's photo and re-encoding it without its metadata.

A phone photo carries EXIF (often the GPS position of the citizen's home) and XMP: only the
pixels are kept. Pure: bytes in, bytes out, no Django, no storage.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a phone or a browser sends. HEIF (iPhones) only when a plugin such as pillow-heif
# registers it: Pillow alone cannot read it, and a file it cannot read is refused.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Officers need to see the pothole, not to print a poster: larger photos are scaled down,
# which also keeps a decompression bomb from costing more than this many pixels' memory.
MAX_SIDE = 4096
MAX_PIXELS = 50_000_000


class PhotoRejected(ValueError):
    """The upload is not a photo this site accepts; `reason` says why,
    for the form to tell the citizen in their language."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNREADABLE = "unreadable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CleanPhoto:
    content: bytes
    content_type: str
    extension: str
    width: int
    height: int


def accepted_formats() -> tuple[str, ...]:
    """The accepted formats this installation's Pillow can actually read."""
    Image.init()
    return tuple(f for f in ACCEPTED_FORMATS if f in Image.OPEN)


def clean_photo(source: IO[bytes], *, max_bytes: int) -> CleanPhoto:
    """The photo re-encoded from its pixels alone (JPEG, or PNG when it has transparency),
    turned upright first as its EXIF orientation says; PhotoRejected if it is too large,
    not an image, or in a format not accepted."""
    data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PhotoRejected(PhotoRejected.TOO_LARGE)
    if not data:
        raise PhotoRejected(PhotoRejected.EMPTY)
    formats = accepted_formats()
    try:
        with Image.open(io.BytesIO(data), formats=list(formats)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise PhotoRejected(PhotoRejected.TOO_MANY_PIXELS)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except PhotoRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise PhotoRejected(PhotoRejected.UNREADABLE) from None
    upright.thumbnail((MAX_SIDE, MAX_SIDE))
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
        upright.mode == "P" and "transparency" in upright.info
    )
    # A new image from the pixels: nothing of the original's info (EXIF, XMP, comments,
    # PNG text chunks) can follow it into the saved file.
    clean = Image.new("RGBA" if has_alpha else "RGB", upright.size)
    clean.paste(upright.convert(clean.mode))
    icc = upright.info.get("icc_profile")  # colours, not personal: kept so photos look right
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, "PNG", optimize=True, icc_profile=icc)
        kind, extension = "image/png", "png"
    else:
        clean.save(out, "JPEG", quality=85, optimize=True, icc_profile=icc)
        kind, extension = "image/jpeg", "jpg"
    return CleanPhoto(out.getvalue(), kind, extension, clean.width, clean.height)
