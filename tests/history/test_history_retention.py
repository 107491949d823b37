"""History outlives Kafka: once the broker has deleted a month of events, a restarted web app still shows
every case, its whole audit log and the same reports, and ``nonsite report`` gives the web's figures.

The script's cases are dated October 2026, more than 30 days before these tests run; the broker's
retention is moved past them with DeleteRecords (what retention does, without waiting for the log
cleaner).  Each test runs on SQLite and on a real PostgreSQL server."""
from __future__ import annotations

import argparse
import contextlib
import csv
import io

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from web.cli import report
from web_harness import SCRIPT, WebHarness, count_rows, publish_script, start_web

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}


def what_people_see(web: WebHarness) -> dict:
    """Every report a supervisor reads for October, and every case with its tasks and history."""
    supervisor, operator = web.client("sup"), web.client("ops")
    seen = {by: supervisor.get("/api/reports/summary", params={**OCTOBER, "by": by}).json()
            for by in ("scenario", "grid", "officer", "camera")}
    seen["daily"] = supervisor.get("/api/reports/daily", params=OCTOBER).json()
    cases = operator.get("/api/cases", params={"from": "2026-10-01", "to": "2026-10-31", "per_page": 100}).json()
    seen["cases"] = {c["incident_id"]: operator.get(f"/api/incidents/{c['incident_id']}").json()
                     for c in cases["cases"]}
    return seen


def delete_everything(web: WebHarness) -> None:
    """Move every topic's log start offset to its end, as retention would once the records are old enough."""
    topics = list(web.city.kafka.topics.all().values())
    probe = KafkaConsumer(bootstrap_servers=web.city.kafka.bootstrap)
    partitions = [TopicPartition(t, p) for t in topics for p in sorted(probe.partitions_for_topic(t) or [])]
    ends = probe.end_offsets(partitions)
    probe.close()
    admin = KafkaAdminClient(bootstrap_servers=web.city.kafka.bootstrap)
    try:
        admin.delete_records({tp: end for tp, end in ends.items() if end > 0})
    finally:
        admin.close()
    probe = KafkaConsumer(bootstrap_servers=web.city.kafka.bootstrap)
    assert probe.beginning_offsets(partitions) == ends  # nothing left to replay
    probe.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("new_postgres_database")()


def test_reports_and_histories_survive_the_broker_forgetting(kafka_bootstrap, city, tmp_path, database) -> None:
    web = start_web(city, kafka_bootstrap, tmp_path / "evidence", database=database)
    try:
        publish_script(web)
        closing_steps = sum(c.outcome in ("closed", "late") for c in SCRIPT[::2])
        web.wait_for(lambda: count_rows(web, "case_events") >= closing_steps, what="the closing steps recorded")
        before = what_people_see(web)
    finally:
        web.stop()
    assert len(before["cases"]) == len(SCRIPT) and before["scenario"]["total"]["filed"] == len(SCRIPT)
    delete_everything(web)

    again = start_web(web.city, kafka_bootstrap, tmp_path / "evidence", fresh_topics=False, database=database)
    try:
        again.wait_for(lambda: again.client().get("/api/health").status_code == 200, what="the restarted web")
        assert what_people_see(again) == before
        assert again.app.state.bus.recorded == 0  # nothing was read again: it all came from the database
    finally:
        again.stop()

    empty = start_web(web.city, kafka_bootstrap, tmp_path / "evidence-2", fresh_topics=False,
                      database=str(tmp_path / "fresh.sqlite"))
    try:  # the broker really has forgotten: a web without the database sees no case at all
        assert empty.client("sup").get("/api/reports/summary", params=OCTOBER).json()["total"]["filed"] == 0
    finally:
        empty.stop()


def test_the_command_and_the_web_give_the_same_figures(kafka_bootstrap, city, tmp_path, database) -> None:
    web = start_web(city, kafka_bootstrap, tmp_path / "evidence", database=database)
    try:
        publish_script(web)
        for by in ("scenario", "grid", "officer", "camera"):
            shown = web.client("sup").get("/api/reports/summary", params={**OCTOBER, "by": by}).json()["rows"]
            printed = run_report(web, by)
            assert printed == {row["group"]: {k: _text(row[k]) for k in printed[row["group"]]} for row in shown}, by
    finally:
        web.stop()


def run_report(web: WebHarness, by: str) -> dict[str, dict[str, str]]:
    """``nonsite report --by BY --csv`` for October on the web's city (its topics and its database)."""
    args = argparse.Namespace(date_from=OCTOBER["from"], date_to=OCTOBER["to"], by=by, csv=True, no_sync=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert report(args, web.city) == 0
    return {row.pop(by): row for row in csv.DictReader(io.StringIO(out.getvalue()))}


def _text(value) -> str:
    return "" if value is None else str(value)
