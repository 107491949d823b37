"""The benchmark's report: per scenario true and false positives, false negatives, precision, recall,
starts per physical violation and false ends; the run time and the machine's load; per file what was
expected and what started.  As a text table or as one JSON document (``--json``).

Example::

    >>> from detector.evaluation.scoring import Score
    >>> print(scenario_table({"stray_dog": Score(expected=4, starts=3, true_positives=2, false_positives=1,
    ...                                          false_negatives=2, starts_where_expected=2)}))
    scenario          expected  TP  FP  FN  precision  recall  starts/violation  false ends
    stray_dog                4   2   1   2       0.67    0.50              1.00           0
    all                      4   2   1   2       0.67    0.50              1.00           0
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

from detector.evaluation.run import FileResult
from detector.evaluation.scoring import Score, total

COLUMNS = ("scenario", "expected", "TP", "FP", "FN", "precision", "recall", "starts/violation", "false ends")


@dataclass
class Report:
    labels: str
    files: list[FileResult]
    scenarios: list[str]  # every enabled scenario, in config order: one that never fired still shows
    run_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def per_scenario(self) -> dict[str, Score]:
        summed = total(f.scores for f in self.files)
        extra = sorted(set(summed) - set(self.scenarios))
        return {scenario: summed.get(scenario, Score()) for scenario in self.scenarios + extra}

    def as_dict(self) -> dict:
        per_scenario = self.per_scenario
        overall = Score()
        for score in per_scenario.values():
            overall.add(score)
        return {"labels": self.labels, "run_s": round(self.run_s, 1), "cpus": os.cpu_count(),
                "load_average_before": list(self.load_before), "load_average_after": list(self.load_after),
                "frames": sum(f.frames for f in self.files), "inferred": sum(f.inferred for f in self.files),
                "scenarios": {s: score.as_dict() for s, score in per_scenario.items()}, "all": overall.as_dict(),
                "files": [f.as_dict() for f in self.files]}

    def text(self) -> str:
        frames, inferred = sum(f.frames for f in self.files), sum(f.inferred for f in self.files)
        load = " ".join(f"{v:.2f}" for v in self.load_after)
        head = (f"{self.labels}: {len(self.files)} files, {frames} frames ({inferred} through the model), "
                f"{self.run_s:.0f} s on {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) at the end")
        return "\n".join([head, "", scenario_table(self.per_scenario), "", *file_lines(self.files)])


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def scenario_table(per_scenario: dict[str, Score]) -> str:
    """The per-scenario table, with a last line over all scenarios."""
    overall = Score()
    rows = []
    for scenario, score in per_scenario.items():
        overall.add(score)
        rows.append(_row(scenario, score))
    rows.append(_row("all", overall))
    widths = [max(16, *(len(r[0]) for r in rows))] + [len(c) for c in COLUMNS[1:]]
    lines = [[c for c in COLUMNS]] + rows
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(line, widths))).rstrip() for line in lines)


def _row(name: str, score: Score) -> list[str]:
    return [name, str(score.expected), str(score.true_positives), str(score.false_positives),
            str(score.false_negatives), _rate(score.precision), _rate(score.recall),
            _rate(score.starts_per_violation), str(score.false_ends)]


def file_lines(files: Sequence[FileResult]) -> list[str]:
    """One line per file: what was expected and what started, per scenario; and the time it took."""
    lines = []
    for result in files:
        parts = [f"{s} {score.expected} expected / {score.starts} started"
                 + (f" / {score.false_ends} false ends" if score.false_ends else "")
                 for s, score in result.scores.items()]
        lines.append(f"{result.path}: {'; '.join(parts) or 'nothing expected, nothing started'} "
                     f"({result.frames} frames, {result.inferred} inferred, {result.run_s:.1f} s)")
    return lines
