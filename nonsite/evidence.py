"""The evidence store: files addressed by their sha256, shared by every process.

The detector writes scene pictures into it, the web app writes officers' photos and serves files,
and ``nonsite evidence verify`` checks it.  A file lives at ``<root>/<sha[:2]>/<sha>.<ext>`` and is
written atomically; an :class:`~contract.Evidence` record carries its kind, sha256 and that relative
uri, and the sha256 of its masked copies (``masked``, docs/privacy.md), stored alike.  Only regular files
really inside the store are ever served (no symlink, no linked folder).

Example::

    >>> import tempfile
    >>> store = EvidenceStore(Path(tempfile.mkdtemp()))
    >>> saved = store.put(b"\\xff\\xd8\\xff...", "officer_photo")
    >>> saved.uri == f"{saved.sha256[:2]}/{saved.sha256}.jpg", store.locate(saved.sha256).read_bytes()[:3]
    (True, b'\\xff\\xd8\\xff')
    >>> store.locate("../etc/passwd") is None
    True
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from contract import Detection, Evidence

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class EvidenceStore:
    """A local folder of content-addressed files."""

    root: Path

    def put(self, data: bytes, kind: str, content_type: str = "image/jpeg") -> Evidence:
        """Store ``data`` (once: the same bytes have the same path) and return its record."""
        sha = hashlib.sha256(data).hexdigest()
        folder = self.root / sha[:2]
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.resolve().is_relative_to(self.root.resolve()):
            raise OSError(f"evidence folder {folder} leads outside the store {self.root}")
        target = folder / f"{sha}.{EXTENSIONS.get(content_type, 'bin')}"
        if not is_stored_file(self.root.resolve(), target):  # absent, or something planted there: (re)write it
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        return Evidence(kind=kind, sha256=sha, uri=str(target.relative_to(self.root)), content_type=content_type)

    def locate(self, sha256: str) -> Optional[Path]:
        """The stored file of a sha256, or None: only a regular file whose real path is inside the store.

        The flat ``<root>/<sha>.<ext>`` layout of early versions is still found.
        """
        if not SHA256.match(sha256) or not self.root.is_dir():
            return None
        real_root = self.root.resolve()
        for folder in (self.root / sha256[:2], self.root, self.root / sha256[:2] / sha256[2:4]):
            if folder.is_dir():
                for candidate in sorted(folder.glob(f"{sha256}*")):
                    if not candidate.name.startswith(".") and is_stored_file(real_root, candidate):
                        return candidate
        return None

    def path(self, evidence: Evidence) -> Path:
        return self.root / evidence.uri


def is_stored_file(real_root: Path, candidate: Path) -> bool:
    """Whether ``candidate`` is a regular file, not a symlink, and really inside ``real_root`` (no linked folder)."""
    try:
        if not stat.S_ISREG(candidate.lstat().st_mode):
            return False
        return candidate.resolve(strict=True).is_relative_to(real_root)
    except (OSError, RuntimeError):  # vanished, or a symlink loop on the way
        return False


def verify(events: Iterable[Detection], root: Path) -> list[str]:
    """One line per evidence file, or masked copy of one, that is missing or whose content no longer matches
    its sha256."""
    problems: list[str] = []
    checked: set[tuple[str, str]] = set()
    store = EvidenceStore(root)
    for event in events:
        for item in event.evidence:
            files = [(item.kind, item.uri, item.sha256)]
            for variant, sha in sorted(item.masked.items()):
                found = store.locate(sha)  # a copy's path follows from its sha256, as every file's does
                files.append((f"{item.kind} ({variant} copy)", str(found.relative_to(root)) if found else sha, sha))
            for what, uri, sha in files:
                if (uri, sha) not in checked:
                    checked.add((uri, sha))
                    problems += _check(event.violation_id, what, root / uri, sha)
    return problems


def _check(violation_id: str, what: str, path: Path, sha256: str) -> list[str]:
    if not path.is_file():
        return [f"{violation_id} {what}: missing file {path}"]
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != sha256:
        return [f"{violation_id} {what}: {path} has sha256 {actual}, event says {sha256}"]
    return []
