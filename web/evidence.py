"""The evidence store as the web sees it: files addressed by their sha256.

Uploads are written to ``<store>/<sha[:2]>/<sha>.<ext>`` (atomically); lookups also accept the
flat ``<store>/<sha>.<ext>`` layout and an Evidence ``uri`` that points inside the store.

Example::

    >>> sniff_type(b"\\x89PNG\\r\\n\\x1a\\n....")
    'image/png'
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from stream.records import Evidence

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
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


def store(root: Path, data: bytes, content_type: str, kind: str = "officer_photo") -> Evidence:
    sha = hashlib.sha256(data).hexdigest()
    folder = root / sha[:2]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha}.{EXTENSIONS.get(content_type, 'bin')}"
    if not target.exists():
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    return Evidence(kind=kind, sha256=sha, uri=str(target.relative_to(root)), content_type=content_type)


def locate(root: Path, sha256: str) -> Optional[Path]:
    """The stored file for a sha256, whichever supported layout holds it."""
    if not SHA256.match(sha256) or not root.is_dir():
        return None
    for folder in (root / sha256[:2], root, root / sha256[:2] / sha256[2:4]):
        if folder.is_dir():
            for candidate in folder.glob(f"{sha256}*"):
                if candidate.is_file() and not candidate.name.startswith("."):
                    return candidate
    return None


def media_type(path: Path) -> str:
    with path.open("rb") as handle:
        return sniff_type(handle.read(16)) or "application/octet-stream"
