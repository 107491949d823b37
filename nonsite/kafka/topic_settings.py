"""Topics' settings as the cluster has them, compared with their :class:`~nonsite.kafka.lifecycle.TopicSpec`.

* :func:`hold_to_specs` brings existing topics to their specs with incremental alter configs (the
  topics' other settings are kept), one structured log line per changed setting; a refusal is one
  line naming the topic and the setting (:class:`TopicSettingError`).  It never shortens the life of
  a kept record (:data:`~nonsite.kafka.lifecycle.KEPT_KINDS`) unless asked to (``shorten=True``,
  ``nonsite kafka topics --shorten-retention``): a mistaken ``legal_years`` would delete the audit log;
* :func:`check_topics` only compares, for ``nonsite kafka topics --check``.

Example::

    >>> checks = check_topics("localhost:9092", project_topics(city))          # doctest: +SKIP
    >>> [c.name for c in checks if c.differs]                                  # doctest: +SKIP
    ['nonsite.case-events']
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import structlog

from nonsite.errors import KafkaSetupError
from nonsite.kafka import clients
from nonsite.kafka.lifecycle import CLEANUP, FOREVER, KEPT_KINDS, RETENTION_MS, TopicSpec

log = structlog.get_logger("nonsite.kafka")


class TopicSettingError(KafkaSetupError):
    """The cluster refused a setting of the policy; ``str()`` is the one line naming the topic and setting."""


@dataclass(frozen=True)
class SettingChange:
    """One setting of one topic brought to its spec."""

    topic: str
    kind: str
    setting: str
    was: Optional[str]
    now: str

    def as_dict(self) -> dict[str, object]:
        return {"topic": self.topic, "setting": self.setting, "was": self.was, "now": self.now}

    @property
    def shortens_a_kept_record(self) -> bool:
        """Would this change let Kafka delete records the policy keeps for the legal period (or forever)?"""
        if self.kind not in KEPT_KINDS or self.was is None:
            return False
        if self.setting == RETENTION_MS:
            was, now = int(self.was), int(self.now)
            return now != FOREVER and (was == FOREVER or now < was)
        if self.setting == CLEANUP:
            return "delete" in _policies(self.now) and "delete" not in _policies(self.was)
        return False


@dataclass(frozen=True)
class TopicCheck:
    """A topic's settings, actual and wanted; ``actual`` is None for every setting when the topic is missing."""

    name: str
    kind: str
    settings: dict[str, tuple[Optional[str], str]]  # setting -> (actual, wanted)
    missing: bool = False

    @property
    def differing(self) -> list[str]:
        return [key for key, (actual, wanted) in self.settings.items() if not same_value(key, actual, wanted)]

    @property
    def differs(self) -> bool:
        return self.missing or bool(self.differing)

    def as_dict(self) -> dict[str, object]:
        return {"topic": self.name, "kind": self.kind, "missing": self.missing, "differs": self.differing,
                "settings": {key: {"actual": actual, "wanted": wanted}
                             for key, (actual, wanted) in self.settings.items()}}


def _policies(value: str) -> set[str]:
    return {p.strip() for p in value.split(",")}


def same_value(setting: str, actual: Optional[str], wanted: str) -> bool:
    """Equal as Kafka means them: ``cleanup.policy`` is a set (``delete,compact`` is ``compact,delete``)."""
    if actual is None:
        return False
    if setting == CLEANUP:
        return _policies(actual) == _policies(wanted)
    return actual.strip() == wanted.strip()


def describe_settings(admin: Any, specs: Sequence[TopicSpec]) -> dict[str, dict[str, Optional[str]]]:
    """``topic -> {setting: effective value}`` for the settings each spec names (existing topics only)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    named = [s for s in specs if s.configs]
    if not named:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name, configs={key: None for key in s.configs})
                 for s in named]
    described = admin.describe_configs(resources, config_filter="all")["topic"]
    return {s.name: {key: (described.get(s.name, {}).get(key) or {}).get("value") for key in s.configs}
            for s in named}


def _set(admin: Any, change: SettingChange) -> None:
    """One incremental alter configs request for one setting, so a refusal names exactly that setting."""
    from kafka.admin import ConfigResource, ConfigResourceType

    resource = ConfigResource(ConfigResourceType.TOPIC, change.topic, configs={change.setting: change.now})
    try:
        result: object = admin.alter_configs([resource], incremental=True).get("topic", {}).get(change.topic)
    except Exception as exc:  # the client's own checks (unknown topic or setting), a lost connection
        result = f"{type(exc).__name__}: {exc}"
    if result != "OK":
        reason = " ".join(str(result).split())
        raise TopicSettingError(f"cannot set {change.setting}={change.now} on topic {change.topic} (it has "
                                f"{change.was}): {reason}")


def _refuse_shortening(changes: Sequence[SettingChange]) -> None:
    shortening = [c for c in changes if c.shortens_a_kept_record]
    if shortening:
        first = shortening[0]
        raise TopicSettingError(
            f"refusing to shorten the life of topic {first.topic} ({first.kind}): {first.setting} {first.was} -> "
            f"{first.now} would let Kafka delete records kept for the legal period"
            f"{f' (and {len(shortening) - 1} more such change(s))' if len(shortening) > 1 else ''}; if "
            f"kafka.retention is what you mean, apply it once with `nonsite kafka topics --shorten-retention`")


def hold_to_specs(admin: Any, specs: Sequence[TopicSpec], shorten: bool = False) -> list[SettingChange]:
    """Bring every existing topic of ``specs`` to its settings; returns (and logs) what was changed.

    Settings the specs do not name are left as they are.  Raises :class:`TopicSettingError`, changing
    nothing, when a change would shorten the life of a kept record and ``shorten`` is False; and at
    the first setting the cluster refuses.
    """
    actual = describe_settings(admin, specs)
    changes = [SettingChange(s.name, s.kind, key, actual[s.name][key], wanted)
               for s in specs if s.name in actual for key, wanted in s.configs.items()
               if not same_value(key, actual[s.name][key], wanted)]
    if not shorten:
        _refuse_shortening(changes)
    for change in changes:
        _set(admin, change)
        log.warning("kafka topic setting changed", topic=change.topic, kind=change.kind, setting=change.setting,
                    was=change.was, now=change.now)
    _await_applied(admin, specs, changes)
    return changes


def _await_applied(admin: Any, specs: Sequence[TopicSpec], changes: Sequence[SettingChange],
                   timeout_s: float = 30.0) -> None:
    """Return once the cluster describes every change: a KRaft broker applies an accepted change a moment
    later, and a ``--check`` (or a consumer) right after the start must see it."""
    changed = [s for s in specs if s.name in {c.topic for c in changes}]
    deadline = time.monotonic() + timeout_s
    while changed:
        actual = describe_settings(admin, changed)
        pending = [c for c in changes if not same_value(c.setting, actual[c.topic][c.setting], c.now)]
        if not pending:
            return
        if time.monotonic() > deadline:
            first = pending[0]
            raise TopicSettingError(f"{first.setting}={first.now} on topic {first.topic} was accepted but the cluster "
                                    f"still describes {actual[first.topic][first.setting]} after {timeout_s:.0f}s")
        time.sleep(0.2)


def check_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> list[TopicCheck]:
    """Every topic of ``specs`` with its actual and wanted settings; changes nothing."""
    from kafka.errors import KafkaError

    try:
        admin = clients.admin(bootstrap, "nonsite-topics-check", request_timeout_ms=30_000)
    except KafkaError as exc:
        raise KafkaSetupError(f"Kafka at {bootstrap} does not answer: {exc}") from None
    try:
        existing = set(admin.list_topics())
        actual = describe_settings(admin, [s for s in specs if s.name in existing])
    finally:
        admin.close()
    return [TopicCheck(s.name, s.kind, {key: (actual.get(s.name, {}).get(key), wanted)
                                        for key, wanted in s.configs.items()}, missing=s.name not in existing)
            for s in specs]
