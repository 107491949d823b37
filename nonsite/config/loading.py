"""Reading the configuration folder: YAML, ``${VAR}`` expansion, environment overrides, one-line errors, and
the scenarios no camera watches (a warning, :func:`unwatched_scenarios`)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from nonsite.config.city import City
from nonsite.config.city_files import Camera, CamerasFile, GridsFile, Scenario, ScenariosFile
from nonsite.config.common import ConfigError, FieldError
from nonsite.config.system import SystemFile

FILES = {"system": "nonsite.yaml", "cameras": "cameras.yaml", "scenarios": "scenarios.yaml",
         "grids": "grids.yaml"}

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: str, filename: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), filename) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", filename) for i, v in enumerate(node)]
    if isinstance(node, str):
        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1), match.group(2))
            if value is None:
                raise ConfigError(f"{filename}: {path}: environment variable {match.group(1)} is not set")
            return value
        return _ENV_PATTERN.sub(substitute, node)
    return node


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "value_error")):
            path += f".{part}" if path else part
    return path or "(top level)"


def _read_model(folder: Path, key: str, model: type[BaseModel], required: bool = True) -> BaseModel:
    file = folder / FILES[key]
    shown = str(file)
    if not file.exists():
        if required:
            raise ConfigError(f"{shown}: file not found")
        return model()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError(f"{shown}: {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    raw = _expand_env(raw if raw is not None else {}, "", shown)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(shown, exc)) from None


def _one_line(shown: str, exc: ValidationError) -> str:
    return f"{shown}: {field_error(exc)}"


def field_error(exc: ValidationError) -> str:
    """The first error as one line, its field path first: ``zones[1].polygon: a polygon needs at least 3 points``."""
    error = exc.errors(include_url=False)[0]
    original = (error.get("ctx") or {}).get("error")
    if isinstance(original, FieldError):
        prefix = _location(error["loc"])
        path = original.path if prefix == "(top level)" else f"{prefix}.{original.path}"
        return f"{path}: {original.message}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "literal_error":
        message = f"{message}, got {error.get('input')!r}"
    return f"{_location(error['loc'])}: {message}"


def _apply_env_overrides(system: SystemFile) -> SystemFile:
    bootstrap = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    weights = os.environ.get("NONSITE_WEIGHTS")
    if bootstrap:
        system = system.model_copy(update={"kafka": system.kafka.model_copy(update={"bootstrap": bootstrap})})
    if weights:
        system = system.model_copy(update={"detector": system.detector.model_copy(update={"weights": weights})})
    return system


def _cross_check(folder: Path, cameras: CamerasFile, scenarios: ScenariosFile, grids: GridsFile) -> None:
    grid_ids = {g.id for g in grids.grids}
    for index, camera in enumerate(cameras.cameras):
        if camera.grid not in grid_ids:
            raise ConfigError(f"{folder / FILES['cameras']}: cameras[{index}].grid: unknown grid '{camera.grid}' "
                              f"(not in {FILES['grids']})")


def unwatched_scenarios(cameras: Sequence[Camera], scenarios: Sequence[Scenario]) -> list[str]:
    """One line per enabled scenario that no camera can see: none has a zone of any of its kinds.

    Not an error: a city starting with one camera configures the scenarios of the cameras it will add
    (the rules skip a scenario on a camera without its zone kinds). A scenario with no zone kinds
    applies anywhere and is always watched.

    >>> walk = Camera(id="cam-1", name="c", source="x", location={"lat": 0, "lon": 0}, grid="G1",
    ...               zones=[{"id": "z", "kind": "sidewalk", "polygon": [[0, 0], [1, 0], [1, 1]]}])
    >>> shops = Scenario(id="road_occupation", label_zh="占道经营", label_en="x", classes=["chair"],
    ...                  zone_kinds=["storefront"])
    >>> unwatched_scenarios([walk], [shops])
    ["scenario 'road_occupation' is watched by no camera: no zone of kind 'storefront' (it starts nowhere)"]
    """
    present = {z.kind for c in cameras for z in c.zones}
    lines = []
    for scenario in scenarios:
        if scenario.enabled and scenario.zone_kinds and not present & set(scenario.zone_kinds):
            kinds = " or ".join(f"'{k}'" for k in scenario.zone_kinds)
            lines.append(f"scenario '{scenario.id}' is watched by no camera: no zone of kind {kinds} "
                         f"(it starts nowhere)")
    return lines


def default_config_dir() -> Path:
    return Path(os.environ.get("NONSITE_CONFIG", "configs"))


def load_city(folder: str | Path | None = None) -> City:
    """Read and cross-check the whole configuration folder; raises :class:`ConfigError`."""
    root = Path(folder) if folder is not None else default_config_dir()
    if not root.is_dir():
        raise ConfigError(f"{root}: configuration folder not found (set --config or NONSITE_CONFIG)")
    system = _apply_env_overrides(_read_model(root, "system", SystemFile, required=False))
    cameras = _read_model(root, "cameras", CamerasFile)
    scenarios = _read_model(root, "scenarios", ScenariosFile)
    grids = _read_model(root, "grids", GridsFile)
    _cross_check(root, cameras, scenarios, grids)
    return City(root=root.resolve(), system=system, cameras=cameras.cameras, scenarios=scenarios.scenarios,
                teams=grids.teams, grids=grids.grids, officers=grids.officers, users=grids.users)
