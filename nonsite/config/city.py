"""The whole city: every file of the configuration folder, cross-checked (see :func:`nonsite.config.load_city`)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict

from nonsite.config.city_files import Camera, Grid, Officer, Scenario, Team, User
from nonsite.config.system import DetectorSettings, KafkaSettings, StreamSettings, SystemFile, WebSettings


class City(BaseModel):
    """Everything one deployment knows, cross-checked across files."""

    model_config = ConfigDict(frozen=True)

    root: Path
    system: SystemFile
    cameras: list[Camera]
    scenarios: list[Scenario]
    teams: list[Team]
    grids: list[Grid]
    officers: list[Officer]
    users: list[User]

    @property
    def kafka(self) -> KafkaSettings:
        return self.system.kafka

    @property
    def detector(self) -> DetectorSettings:
        return self.system.detector

    @property
    def stream(self) -> StreamSettings:
        return self.system.stream

    @property
    def web(self) -> WebSettings:
        return self.system.web

    @cached_property
    def cameras_by_id(self) -> dict[str, Camera]:
        return {c.id: c for c in self.cameras}

    @cached_property
    def scenarios_by_id(self) -> dict[str, Scenario]:
        return {s.id: s for s in self.scenarios}

    def camera(self, camera_id: str) -> Optional[Camera]:
        return self.cameras_by_id.get(camera_id)

    def scenario(self, scenario_id: str) -> Optional[Scenario]:
        return self.scenarios_by_id.get(scenario_id)

    def officers_of(self, grid_id: str) -> list[Officer]:
        return [o for o in self.officers if o.grid == grid_id]

    def resolve_path(self, path: str) -> Path:
        """A path from the config: absolute as is, relative to the folder's parent (the project)."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.root.parent / candidate
