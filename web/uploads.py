"""Officers' uploads: kept only when they decode completely as the image type they claim.

The files go to the one evidence store (:mod:`nonsite.evidence`); this module says what a file is.

Example::

    >>> sniff_type(b"\\x89PNG\\r\\n\\x1a\\n....")
    'image/png'
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from PIL import Image

PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
MAX_PIXELS = 50_000_000  # a 200-megapixel camera would exceed it; officers' phones do not


def sniff_type(data: bytes) -> Optional[str]:
    """The image type the bytes really are, from their magic number."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def image_problem(data: bytes, claimed: str) -> Optional[str]:
    """Why ``data`` is not one complete image of the ``claimed`` type, or None when it is.

    The magic number alone lets any file through behind three bytes of JPEG header; decoding the
    whole image (after checking its size, so a small file cannot claim a huge canvas) does not.
    """
    actual = sniff_type(data)
    if actual != claimed:
        return f"the file is {actual or 'not an image'}, not {claimed}"
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[claimed]]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return f"the image is {width}x{height} pixels, more than {MAX_PIXELS:,} in all"
            image.load()
    except Exception as exc:  # whatever the decoder says about a broken file, it is the uploader's problem
        return f"not a complete {claimed} image ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def media_type(path: Path) -> str:
    with path.open("rb") as handle:
        return sniff_type(handle.read(16)) or "application/octet-stream"
