"""Scoring the benchmark: a file's violation events against its labels, per scenario (docs/quality.md).

The matching rule: within one file, a ``start`` matches an expected violation when its scenario and
its zone agree (a scenario that applies anywhere has the empty zone).  In each (scenario, zone) of a
file with ``E`` expected violations and ``S`` starts:

* true positives ``min(S, E)``, false positives ``S - min(S, E)`` (a second start for one object
  is a false alarm too), false negatives ``E - min(S, E)``;
* starts per violation: the starts in zones where violations are expected, over the true positives
  (1.0 is one start per physical violation; 6.0 is one van making six);
* false ends: ``end`` events in a zone where violations are expected, beyond one for each expected
  violation labelled ``stays: false`` (the object leaves before the clip ends); an ``end`` in a zone
  where nothing is expected ends a false positive and is not counted again.

Example: one van the model boxes twice (two starts), one end while it stays, in a zone expecting one::

    >>> van = Expected(scenario="sidewalk_parking", zone="z-walk")
    >>> events = [Observed("start", "sidewalk_parking", "z-walk", "v1"), Observed("start", "sidewalk_parking",
    ...           "z-walk", "v2"), Observed("end", "sidewalk_parking", "z-walk", "v2")]
    >>> score = score_file([van], events)["sidewalk_parking"]
    >>> (score.true_positives, score.false_positives, score.false_negatives, score.starts_per_violation,
    ...  score.false_ends, score.precision, score.recall)
    (1, 1, 0, 2.0, 1, 0.5, 1.0)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

from detector.evaluation.labels import Expected


@dataclass(frozen=True)
class Observed:
    """One lifecycle event as the scoring sees it (``update`` events are left out)."""

    kind: str  # start | end
    scenario: str
    zone: str
    violation_id: str


@dataclass
class Score:
    """Counts of one scenario over one file or many; the rates are None when undefined (nothing to divide)."""

    expected: int = 0
    starts: int = 0
    ends: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    starts_where_expected: int = 0
    false_ends: int = 0

    @property
    def precision(self) -> Optional[float]:
        fired = self.true_positives + self.false_positives
        return self.true_positives / fired if fired else None

    @property
    def recall(self) -> Optional[float]:
        return self.true_positives / self.expected if self.expected else None

    @property
    def starts_per_violation(self) -> Optional[float]:
        return self.starts_where_expected / self.true_positives if self.true_positives else None

    def add(self, other: "Score") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict:
        rates = {"precision": self.precision, "recall": self.recall, "starts_per_violation": self.starts_per_violation}
        return {**asdict(self), **{k: None if v is None else round(v, 3) for k, v in rates.items()}}


def score_group(expected: Sequence[Expected], starts: int, ends: int) -> Score:
    """One (scenario, zone) of one file: the expectations there, and how many starts and ends it had."""
    count = sum(e.count for e in expected)
    leaving = sum(e.count for e in expected if not e.stays)
    found = min(starts, count)
    return Score(expected=count, starts=starts, ends=ends, true_positives=found, false_positives=starts - found,
                 false_negatives=count - found, starts_where_expected=starts if count else 0,
                 false_ends=max(0, ends - leaving) if count else 0)


def score_file(expected: Sequence[Expected], events: Iterable[Observed]) -> dict[str, Score]:
    """Per scenario, the file's events scored against its expectations (scenarios with neither are left out)."""
    observed = [e for e in events if e.kind in ("start", "end")]
    groups = {(e.scenario, e.zone) for e in expected} | {(e.scenario, e.zone) for e in observed}
    scores: dict[str, Score] = {}
    for scenario, zone in sorted(groups):
        here = [e for e in observed if (e.scenario, e.zone) == (scenario, zone)]
        group = score_group([e for e in expected if (e.scenario, e.zone) == (scenario, zone)],
                            sum(e.kind == "start" for e in here), sum(e.kind == "end" for e in here))
        scores.setdefault(scenario, Score()).add(group)
    return scores


def total(scores: Iterable[dict[str, Score]]) -> dict[str, Score]:
    """Per scenario, the sum over files."""
    summed: dict[str, Score] = {}
    for per_file in scores:
        for scenario, score in per_file.items():
            summed.setdefault(scenario, Score()).add(score)
    return summed
