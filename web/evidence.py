"""The evidence store as the web sees it: files addressed by their sha256.

Uploads are written to ``<store>/<sha[:2]>/<sha>.<ext>`` (atomically); lookups also accept the
flat ``<store>/<sha>.<ext>`` layout.  Only regular files really inside the store are served (no
symlinks), and an upload is kept only when it decodes completely as the image type it claims.

Example::

    >>> sniff_type(b"\\x89PNG\\r\\n\\x1a\\n....")
    'image/png'
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Optional

from PIL import Image

from contract import Evidence

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
MAX_PIXELS = 50_000_000  # a 200-megapixel camera would exceed it; officers' phones do not
SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


def store(root: Path, data: bytes, content_type: str, kind: str = "officer_photo") -> Evidence:
    sha = hashlib.sha256(data).hexdigest()
    folder = root / sha[:2]
    folder.mkdir(parents=True, exist_ok=True)
    if not folder.resolve().is_relative_to(root.resolve()):
        raise OSError(f"evidence folder {folder} leads outside the store {root}")
    target = folder / f"{sha}.{EXTENSIONS.get(content_type, 'bin')}"
    if not is_stored_file(root.resolve(), target):  # absent, or something planted there: (re)write it
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    return Evidence(kind=kind, sha256=sha, uri=str(target.relative_to(root)), content_type=content_type)


def locate(root: Path, sha256: str) -> Optional[Path]:
    """The stored file for a sha256, whichever supported layout holds it: only a regular file (no
    symlink) whose real path is inside the store, so a link planted in the store serves nothing."""
    if not SHA256.match(sha256) or not root.is_dir():
        return None
    real_root = root.resolve()
    for folder in (root / sha256[:2], root, root / sha256[:2] / sha256[2:4]):
        if folder.is_dir():
            for candidate in sorted(folder.glob(f"{sha256}*")):
                if not candidate.name.startswith(".") and is_stored_file(real_root, candidate):
                    return candidate
    return None


def is_stored_file(real_root: Path, candidate: Path) -> bool:
    """Whether ``candidate`` is a regular file, not a symlink, and really inside ``real_root`` (no linked folder)."""
    try:
        if not stat.S_ISREG(candidate.lstat().st_mode):
            return False
        return candidate.resolve(strict=True).is_relative_to(real_root)
    except (OSError, RuntimeError):  # vanished, or a symlink loop on the way
        return False


def media_type(path: Path) -> str:
    with path.open("rb") as handle:
        return sniff_type(handle.read(16)) or "application/octet-stream"
