"""City configuration: YAML files in one folder, validated into typed models at start.

The folder holds ``nonsite.yaml`` (system: Kafka, detector, stream), ``cameras.yaml``,
``scenarios.yaml`` and ``grids.yaml`` (grids, teams, officers, users).  Any mistake is
reported as one line naming the file and the field path::

    configs/cameras.yaml: cameras[1].zones[0].polygon: a polygon needs at least 3 points, got 2

String values may use ``${VAR}`` or ``${VAR:-default}``; the environment variables
``NONSITE_KAFKA_BOOTSTRAP`` and ``NONSITE_WEIGHTS`` override the file.

Example::

    >>> city = load_city("configs")
    >>> city.camera("cam-01").grid
    'G01'

The modules: :mod:`~nonsite.config.common` (ConfigError, the strict base model, kinds),
:mod:`~nonsite.config.city_files` (cameras, scenarios, grids), :mod:`~nonsite.config.system`
(``nonsite.yaml``), :mod:`~nonsite.config.city` (:class:`City`) and :mod:`~nonsite.config.loading`
(:func:`load_city`).  Import from the package: ``from nonsite.config import City, load_city``.
"""
from nonsite.config.city import City
from nonsite.config.city_files import (Camera, CamerasFile, Credentials, GeoPoint, Grid, GridsFile, Location, Officer,
                                       PrivacyZone, Scenario, ScenariosFile, Shift, Team, User, Zone)
from nonsite.config.common import DAYS, ZONE_KINDS, ConfigError, Identifier, Role, RuleKind, Strict, ZoneKind
from nonsite.config.loading import FILES, default_config_dir, load_city, unwatched_scenarios
from nonsite.config.system import (CitySettings, DetectorSettings, KafkaSettings, MaskingSettings, MotionSettings,
                                   PlateSettings, StreamSettings, SystemFile, Topics, WebSettings)

__all__ = [
    "City", "load_city", "default_config_dir", "ConfigError", "FILES", "unwatched_scenarios",
    "Camera", "CamerasFile", "GeoPoint", "Location", "Zone", "PrivacyZone",
    "Scenario", "ScenariosFile",
    "Shift", "Credentials", "Officer", "User", "Team", "Grid", "GridsFile",
    "SystemFile", "CitySettings", "KafkaSettings", "Topics", "DetectorSettings", "MotionSettings", "PlateSettings",
    "MaskingSettings",
    "StreamSettings", "WebSettings",
    "ZONE_KINDS", "ZoneKind", "RuleKind", "Role", "Identifier", "DAYS", "Strict",
]
