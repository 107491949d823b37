"""``nonsite web``: serve the operator surfaces with uvicorn; ``nonsite report``: the closure figures;
``nonsite evidence purge``: the retention rule applied to the evidence store.

Example::

    nonsite evidence purge --dry-run     # one line per case whose files would be deleted, then the totals
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import date, datetime, timedelta
from typing import Optional, TextIO

import uvicorn

from nonsite.config import City
from nonsite.errors import CommandError


def serve(args: argparse.Namespace, city: Optional[City]) -> int:
    assert city is not None
    from web.app import create_app
    from web.bus import MissingTopics, check_topics

    try:
        check_topics(city)
    except MissingTopics as exc:
        raise CommandError(str(exc)) from None

    host = args.host or city.web.host
    port = args.port or city.web.port
    uvicorn.run(create_app(city), host=host, port=port, log_level="info", access_log=False,
                timeout_graceful_shutdown=3)  # live-wall streams never end on their own
    return 0


COLUMNS = ("filed", "due", "closed", "on_time", "reworked", "false_alarms", "closure_rate", "on_time_rate",
           "rework_rate", "false_alarm_rate", "mean_minutes_to_close", "dismissed_in_review", "awaiting_review")
RATES = ("closure_rate", "on_time_rate", "rework_rate", "false_alarm_rate")


def report(args: argparse.Namespace, city: Optional[City]) -> int:
    """``nonsite report``: record what the topics hold that the database has not yet, then print the figures.

    The same code and tables as the web reports (:mod:`history.statistics`): both give the same figures."""
    assert city is not None
    from history.statistics import summarise

    period = _report_period(args.date_from, args.date_to)
    store = _store_caught_up(city, sync=not args.no_sync)
    rows, total = summarise(store.engine, period, args.by)
    write_report([row.as_dict() for row in rows], total.as_dict(), args.by, bool(args.csv), sys.stdout)
    return 0


def evidence_purge(args: argparse.Namespace, city: Optional[City]) -> int:
    """``nonsite evidence purge [--dry-run] [--no-sync]``: delete the evidence files of the cases that ended more
    than ``history.evidence_retention_days`` ago and are not on legal hold (:mod:`history.retention`)."""
    assert city is not None
    from history.retention import finish_deletions, purge_case, purge_plan
    from nonsite.evidence import EvidenceStore

    days = city.system.history.evidence_retention_days
    store = _store_caught_up(city, sync=not args.no_sync)
    evidence = EvidenceStore(city.resolve_path(city.detector.evidence_dir))
    run_at = datetime.utcnow()
    cutoff = run_at - timedelta(days=days)
    if not args.dry_run and (left := finish_deletions(store.engine, evidence)):
        print(f"finished deleting {left} file(s) a stopped purge had recorded")
    cases, sizes = 0, {}
    for plan in purge_plan(store.engine, evidence, cutoff, run_at):
        if not args.dry_run and purge_case(store.engine, evidence, plan, days, run_at) is None:
            continue  # put on legal hold since it was listed
        cases += 1
        sizes.update({f.sha256: f.bytes for f in plan.files})
        print(_purge_line(city, plan))
    verb = "would be deleted (dry run: nothing changed)" if args.dry_run else "deleted"
    print(f"{cases} case(s), {len(sizes)} file(s), {sum(sizes.values())} bytes {verb}; cases that ended before "
          f"{_local_day(city, cutoff)} (history.evidence_retention_days = {days}), none on legal hold")
    return 0


def _purge_line(city: City, plan) -> str:
    kept = f"  kept {len(plan.kept)} still used by another case" if plan.kept else ""
    return (f"{plan.incident_id}  {plan.state} {_local_day(city, plan.ended_at)}  {len(plan.files)} file(s)  "
            f"{plan.bytes} bytes  {','.join(f.sha256 for f in plan.files)}{kept}")


def _local_day(city: City, moment: datetime) -> str:
    from history.facts import local_day

    return local_day(moment, city.system.city.timezone)


def _report_period(date_from: Optional[str], date_to: Optional[str]):
    from history.statistics import Period

    try:
        first = date.fromisoformat(date_from) if date_from else date.min
        last = date.fromisoformat(date_to) if date_to else date.max
    except ValueError as exc:
        raise CommandError(f"--from/--to: {exc} (use YYYY-MM-DD)") from None
    if last < first:
        raise CommandError(f"--to: {last} is before --from: {first}")
    return Period(first, last)


def _store_caught_up(city: City, sync: bool):
    """The city's case store, first fed what the topics hold that it lacks (unless ``sync`` is false)."""
    from history.database import DatabaseError

    try:
        store = _store(city)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    if sync:
        _catch_up(city, store)
    return store


def _store(city: City):
    from history.database import open_database
    from history.queries import CaseStore

    return CaseStore(open_database(city.system.history.database, city.root.parent))


def _catch_up(city: City, store) -> None:
    from web.app import history_writer
    from web.bus import Bus, MissingTopics

    bus = Bus(city, store, history_writer(city, store))
    try:
        asyncio.run(bus.catch_up())
    except MissingTopics as exc:
        raise CommandError(str(exc)) from None


def write_report(rows: list[dict], total: dict, by: str, as_csv: bool, out: TextIO) -> None:
    columns = (by, *COLUMNS)
    lines = [{by: row["group"], **row} for row in rows]
    if as_csv:
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for line in lines:
            writer.writerow({k: "" if line.get(k) is None else line[k] for k in columns})
        return
    shown = [[_cell(line.get(c), c) for c in columns] for line in [*lines, {by: "total", **total}]]
    widths = [max(len(c), *(len(r[i]) for r in shown)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)), file=out)
    for cells in shown:
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths)), file=out)
    if not rows:
        print("(no cases filed in this period)", file=out)


def _cell(value, column: str) -> str:
    if value is None:
        return "-"
    if column in RATES:
        return f"{value:.1%}"
    return f"{value:g}" if isinstance(value, float) else str(value)
