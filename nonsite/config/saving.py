"""Writing one camera's zones and privacy zones back to ``cameras.yaml`` (the web's zone editor).

The zones are checked with the loader's own models (:class:`Zone`, :class:`PrivacyZone`, unique zone ids),
one line naming the field as every config error does (``zones[1].polygon: a polygon needs at least 3
points, got 2``). The new file must then load as a whole with :func:`load_city`: a change that would stop
the detector from starting (the last zone of a kind some scenario needs removed, say) is refused.

Only the camera's ``zones`` and ``privacy_zones`` are rewritten, in place, in the file's text; every other
line and comment stays as it was. ruamel.yaml is not a dependency, so PyYAML's node positions say where
they are. The file is replaced atomically (a temporary file in the same folder, then a rename), and the
version it replaces is kept as ``cameras.yaml.bak``. ``version`` (a hash of the file) lets a caller refuse
to overwrite a file that changed since it was read.

Example::

    >>> wanted = camera_zones({"zones": [{"id": "z-1", "kind": "sidewalk",
    ...                                   "polygon": [[0, 0.5], [1, 0.5], [1, 1]]}]})
    >>> render_zones_value("zones", wanted.items("zones"), 4, block=True).splitlines()
    ['zones:', '      - {id: z-1, kind: sidewalk, polygon: [[0, 0.5], [1, 0.5], [1, 1]]}']
    >>> camera_zones({"zones": [{"id": "z-1", "kind": "sidewalk", "polygon": [[0, 0]]}]})
    Traceback (most recent call last):
    ...
    nonsite.config.common.ConfigError: zones[0].polygon: a polygon needs at least 3 points, got 1
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from pydantic import ValidationError, model_validator
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nonsite.config.city_files import PrivacyZone, Zone
from nonsite.config.common import ConfigError, Strict, no_duplicates
from nonsite.config.loading import FILES, field_error, load_city

CAMERAS = FILES["cameras"]
EDITED_KEYS = ("zones", "privacy_zones")
DECIMALS = 4  # 1/10,000 of the image: under half a pixel of a 4K frame
_SAVING = threading.Lock()  # one save at a time in this process; `version` guards against other writers


class CameraZones(Strict):
    """What the zone editor changes on one camera, with the loader's models and its unique-id rule."""

    zones: list[Zone] = []
    privacy_zones: list[PrivacyZone] = []

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> "CameraZones":
        no_duplicates([z.id for z in self.zones], "zones", "zone id")
        return self

    def items(self, key: str) -> list[dict[str, Any]]:
        """``zones`` or ``privacy_zones`` as the plain data written to the file (rounded coordinates)."""
        if key == "zones":
            return [_zone_item(zone) for zone in self.zones]
        return [_privacy_item(zone) for zone in self.privacy_zones]


class StaleFile(ConfigError):
    """The file changed since the caller read it."""


@dataclass(frozen=True)
class SavedZones:
    before: dict[str, Any]  # the camera's zones and privacy zones as the replaced file held them
    after: dict[str, Any]
    version: str  # of the new file
    backup: Optional[Path]  # the replaced file; None when nothing changed (and nothing was written)


def camera_zones(raw: Any) -> CameraZones:
    """Check a body ``{"zones": [...], "privacy_zones": [...]}``; :class:`ConfigError` with one line if wrong."""
    try:
        return CameraZones.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(field_error(exc)) from None


def file_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_cameras(folder: Path) -> tuple[str, str]:
    """The text of ``cameras.yaml`` and its version."""
    text = (folder / CAMERAS).read_text(encoding="utf-8")
    return text, file_version(text)


def save_camera_zones(folder: Path, camera_id: str, wanted: CameraZones, expected_version: Optional[str] = None,
                      record: Callable[[SavedZones], None] = lambda saved: None) -> SavedZones:
    """Write ``wanted`` as the camera's zones, then ``record`` the change (if that fails, the file is put back
    and the error raised: no change goes unrecorded); zones equal to the file's change nothing.

    :class:`StaleFile` if the file is no longer ``expected_version``, :class:`ConfigError` (one line naming
    the file and field) if the new configuration would not load, ``LookupError`` for a camera the file does
    not have."""
    file = folder / CAMERAS
    with _SAVING:
        text, version = read_cameras(folder)
        if expected_version and expected_version != version:
            raise StaleFile(f"{CAMERAS} changed since it was read (version {expected_version}, now {version}): "
                            "reload and edit again")
        camera = _camera_node(yaml.compose(text), camera_id)
        before = zones_of(text, camera_id)
        new_text = replace_zones(text, camera, wanted, before)
        if new_text == text:  # nothing changed: nothing written, nothing to record
            return SavedZones(before=before, after=before, version=version, backup=None)
        check_loads(folder, new_text)
        saved = SavedZones(before=before, after={k: wanted.items(k) for k in EDITED_KEYS},
                           version=file_version(new_text), backup=write_atomically(file, new_text))
        try:
            record(saved)
        except BaseException:
            write_atomically(file, text, keep_backup=False)
            raise
    return saved


def zones_of(text: str, camera_id: str) -> dict[str, Any]:
    """The camera's zones and privacy zones as the file's text says (empty lists when absent)."""
    cameras = (yaml.safe_load(text) or {}).get("cameras") or []
    entry = next((c for c in cameras if isinstance(c, dict) and c.get("id") == camera_id), {})
    return {key: entry.get(key) or [] for key in EDITED_KEYS}


def check_loads(folder: Path, cameras_text: str) -> None:
    """Load the whole configuration as the detector will, with ``cameras_text`` as its cameras file; the error
    names the file, not the scratch folder."""
    with tempfile.TemporaryDirectory(prefix="nonsite-zones-") as scratch:
        for name in FILES.values():
            if name != CAMERAS and (folder / name).exists():
                os.symlink((folder / name).resolve(), Path(scratch) / name)
        (Path(scratch) / CAMERAS).write_text(cameras_text, encoding="utf-8")
        try:
            load_city(scratch)
        except ConfigError as exc:
            shown = str(exc).replace(f"{scratch}{os.sep}", "")
            raise ConfigError(f"{shown} (the configuration would not load with this change)") from None


def write_atomically(file: Path, text: str, keep_backup: bool = True) -> Path:
    """Replace ``file`` by ``text`` in one rename (a reader sees the old file or the new one, never half of
    it); the old one is kept as ``<name>.bak`` (the path returned) unless ``keep_backup`` is False."""
    backup = file.with_name(file.name + ".bak")
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, stat.S_IMODE(file.stat().st_mode))
        if keep_backup:
            shutil.copy2(file, backup)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return backup


# ---------------------------------------------------------------- editing the text in place
def replace_zones(text: str, camera: MappingNode, wanted: CameraZones, current: dict[str, Any]) -> str:
    """``text`` with the camera's ``zones`` and ``privacy_zones`` replaced, each unless equal to the ``current``
    one (then its lines stay as written); the later key first, so the positions of the earlier one hold."""
    edits: list[tuple[int, int, str]] = []
    for key in EDITED_KEYS:
        items = wanted.items(key)
        if items == current[key]:
            continue
        found = next(((k, v) for k, v in camera.value if isinstance(k, ScalarNode) and k.value == key), None)
        if found is not None:
            start, end = found[0].start_mark.index, content_end(found[1])
            edits.append((start, end, render_zones_value(key, items, found[0].start_mark.column,
                                                         not camera.flow_style)))
        elif items:
            edits.append(_insertion(text, camera, key, items))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def render_zones_value(key: str, items: list[dict[str, Any]], column: int, block: bool) -> str:
    """``key: [...]`` for a flow mapping or an empty list, else ``key:`` and one flow item a line, indented
    two more than the key; the text starts at the key's column (its indentation is already in the file)."""
    flows = [_flow(item) for item in items]
    if not block or not flows:
        return f"{key}: [{', '.join(flows)}]"
    return f"{key}:" + "".join(f"\n{' ' * (column + 2)}- {flow}" for flow in flows)


def content_end(node: Node) -> int:
    """Where a node's own text ends: PyYAML ends a block collection at the next token, after any comment or
    blank line that follows it, and those belong to what comes next."""
    if isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return content_end(last[1] if isinstance(last, tuple) else last)
    return node.end_mark.index


def _insertion(text: str, camera: MappingNode, key: str, items: list[dict[str, Any]]) -> tuple[int, int, str]:
    if camera.flow_style:
        closing = text.rindex("}", 0, camera.end_mark.index)
        return closing, closing, ", " + render_zones_value(key, items, 0, block=False)
    line_end = text.find("\n", content_end(camera))  # after a comment that ends the camera's last line
    end = len(text) if line_end < 0 else line_end
    column = camera.value[0][0].start_mark.column
    return end, end, "\n" + " " * column + render_zones_value(key, items, column, block=True)


def _camera_node(document: Optional[Node], camera_id: str) -> MappingNode:
    cameras = _value(document, "cameras")
    for entry in cameras.value if isinstance(cameras, SequenceNode) else []:
        identifier = _value(entry, "id")
        if isinstance(identifier, ScalarNode) and identifier.value == camera_id:
            return entry
    raise LookupError(f"{CAMERAS}: no camera '{camera_id}'")


def _value(node: Optional[Node], key: str) -> Optional[Node]:
    if not isinstance(node, MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)


def _flow(item: dict[str, Any]) -> str:
    """One item in YAML flow style; PyYAML quotes any string that would read back as another type."""
    return yaml.safe_dump(item, default_flow_style=True, sort_keys=False, allow_unicode=True, width=1 << 20).strip()


def _points(polygon: list[tuple[float, float]]) -> list[list[float]]:
    return [[_coordinate(x), _coordinate(y)] for x, y in polygon]


def _coordinate(value: float) -> float:
    rounded = round(float(value), DECIMALS)
    return int(rounded) if rounded.is_integer() else rounded  # 0 and 1 as the files write them, not 0.0


def _zone_item(zone: Zone) -> dict[str, Any]:
    item: dict[str, Any] = {"id": zone.id, "kind": zone.kind, "polygon": _points(zone.polygon)}
    if zone.anchor is not None:
        item["anchor"] = {"lat": zone.anchor.lat, "lon": zone.anchor.lon}
    return item


def _privacy_item(zone: PrivacyZone) -> dict[str, Any]:
    return {**({"name": zone.name} if zone.name else {}), "polygon": _points(zone.polygon)}
